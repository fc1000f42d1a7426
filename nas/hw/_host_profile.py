"""Profile this machine: time whole deployed networks, fit a per-operator-kind model.

The first host model timed single operators over a shape grid in PyTorch eager
and summed them; on whole networks it missed by far more than +-10 % (0 % within):
eager PyTorch spends most of a small network's time dispatching modules, and the
deployed form (ONNX Runtime, BatchNorm folded, activations fused, int8 kernels at 8
bits) is a different program. So the samples here are what a trial deploys:
random networks of the search spaces, over a grid of input sizes, channel-pruned
or not, at bit-widths, exported to ONNX Runtime (``measure_deployed_ms``: fixed
threads, warm-up, median of repeats, the lowest median of ``rounds`` timings to
shed other processes' load), each timed in ``passes`` separate passes so the
noise ceiling (the same networks measured twice) comes with them.

The model is ``LatencyPredictor``'s: an intercept (the session's per-run cost) plus,
per operator kind, non-negative coefficients on layer count (per-kernel dispatch),
MACs and activation elements read and written, summed over the layers and fitted by
NNLS on relative error (nn-Meter's kernel-level idea, Zhang et al., MobiSys 2021,
with linear kernels). One coefficient set per kernel family: fp32 (every bit-width
but 8, which run dequantized), and int8, fitted on int8 deployments.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from nas.hw._deploy import bake, deploys_int8, export_deployed, time_onnx_ms
from nas.hw._features import layer_features
from nas.hw._predictor import LatencyPredictor, network_features

__all__ = [
    "COMPRESSIONS",
    "HOST_FEATURES",
    "NetSample",
    "accuracy",
    "build_sample",
    "fit_host_predictor",
    "measure_samples",
    "sample_networks",
]

COMPRESSIONS: tuple[tuple[int, float, float], ...] = (
    (32, 0.0, 0.0),
    (8, 0.5, 0.0),
    (4, 0.8, 0.0),
    (8, 0.0, 0.5),
    (32, 0.0, 0.5),
    (2, 0.3, 0.0),
    (16, 0.0, 0.0),
    (8, 0.0, 0.0),
)
"""(bits, unstructured sparsity, channel-pruning ratio), cycled over sampled networks."""

_HOST_KINDS = ("conv_full", "conv_pw", "conv_dw", "conv_group", "linear", "bn", "act", "pool")
HOST_FEATURES: tuple[str, ...] = tuple(
    f"{k}.{s}" for k in _HOST_KINDS for s in ("count", "macs", "input_elements", "output_elements")
)
"""The features a host model is fitted on (parameters add nothing once MACs are known)."""


@dataclass
class NetSample:
    """One network as deployed, and its measured latencies (one per pass)."""

    space: str
    arch: dict[str, Any]
    input_shape: tuple[int, ...]
    bits: int
    sparsity: float
    channel_ratio: float
    features: dict[str, float] = field(default_factory=dict)
    ms: list[float] = field(default_factory=list)

    @property
    def int8(self) -> bool:
        return deploys_int8(self.bits)


def sample_networks(
    n: int,
    *,
    seed: int,
    sizes: Sequence[tuple[int, int]],
    spaces: Sequence[str] = ("mbconv",),
    compressions: Sequence[tuple[int, float, float]] = COMPRESSIONS,
) -> list[NetSample]:
    """``n`` seeded random networks, each with a random compression and input.

    ``mbconv`` networks get one of the ``(channels, side)`` ``sizes``; each other
    space (``tiny``) is one more choice, at its own 28 px digits input and without
    channel pruning.
    """
    from nas.hw._random_arch import random_archs

    rng = np.random.default_rng(seed)
    slots: list[tuple[str, tuple[int, int]]] = [("mbconv", size) for size in sizes]
    slots += [(space, (1, 28)) for space in spaces if space != "mbconv"]
    if "mbconv" not in spaces:
        slots = slots[len(sizes) :]
    archs = {s: iter(random_archs(s, n, seed=seed + i)) for i, s in enumerate(spaces)}
    out: list[NetSample] = []
    for _ in range(n):
        space, (chans, side) = slots[int(rng.integers(len(slots)))]
        bits, sparsity, ratio = compressions[int(rng.integers(len(compressions)))]
        if space != "mbconv":
            ratio = 0.0
        arch = next(archs[space])
        out.append(NetSample(space, arch, (1, chans, side, side), bits, sparsity, ratio))
    return out


def build_sample(s: NetSample, *, seed: int = 0) -> nn.Module:
    """The compressed model of ``s`` (random weights), as a trial would have it."""
    import compress
    from search_spaces import InputSpec, get_search_space

    torch.manual_seed(seed)
    spec = InputSpec(s.input_shape[1], s.input_shape[2], 10)
    model = get_search_space(s.space).build(s.arch, spec)
    cfgs: list[Any] = []
    if s.channel_ratio:
        cfgs.append(compress.ChannelPruneConfig(ratio=s.channel_ratio, input_shape=s.input_shape))
    if s.sparsity:
        cfgs.append(compress.PruneConfig(sparsity=s.sparsity))
    if s.bits != 32:
        cfgs.append(compress.QuantConfig(bits=s.bits))
    return compress.apply(model, cfgs)


def measure_samples(
    samples: Sequence[NetSample],
    *,
    passes: int = 1,
    rounds: int = 3,
    repeats: int = 30,
    threads: int = 1,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Fill each sample's ``features`` and append ``passes`` deployed latencies to ``ms``.

    Every network is exported once; then each pass times every network once, in a
    seeded random order, so that slow drifts of other processes' load hit fitted and
    held-out networks alike, and the passes see the machine at different times:
    their agreement is an honest noise ceiling. Each latency is the lowest of
    ``rounds`` medians of ``repeats`` runs (``time_onnx_ms``).
    """
    order = np.random.default_rng(seed).permutation(len(samples))
    total, done = passes * len(samples), 0
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, s in enumerate(samples):
            model = build_sample(s, seed=i)
            s.features = network_features(layer_features(bake(model), s.input_shape))
            path = Path(tmp) / f"{i}.onnx"
            paths.append(export_deployed(model, path, s.input_shape, bits=s.bits))
        for _ in range(passes):
            for i in order:
                s, path = samples[i], paths[i]
                median, _ = time_onnx_ms(
                    path, s.input_shape, threads=threads, repeats=repeats, rounds=rounds
                )
                s.ms.append(median)
                done += 1
                if progress is not None:
                    progress(done, total)


def fit_host_predictor(samples: Sequence[NetSample], *, device: str) -> LatencyPredictor:
    """fp32 coefficients from the non-int8 samples, int8 kernels from the int8 ones.

    A sample's latency is the lowest of its passes (the least disturbed).
    """
    fp32 = [s for s in samples if not s.int8]
    int8 = [s for s in samples if s.int8]
    if len(fp32) < 3:
        raise ValueError(f"need at least 3 non-int8 samples to fit, got {len(fp32)}")

    def fit(group: Sequence[NetSample], name: str) -> LatencyPredictor:
        return LatencyPredictor.fit(
            [s.features for s in group],
            [min(s.ms) for s in group],
            device=name,
            features_used=HOST_FEATURES,
        )

    predictor = fit(fp32, device)
    if len(int8) >= 3:
        predictor.kernels[8] = fit(int8, f"{device}@8")
    predictor.metrics.update(n_fp32=len(fp32), n_int8=len(int8))
    return predictor


def accuracy(
    predictor: LatencyPredictor, samples: Sequence[NetSample], *, min_ms: float = 0.0
) -> dict[str, Any]:
    """Predicted vs first-pass measured latency, and the noise ceiling (pass 2 vs 1).

    Only samples whose first measurement is at least ``min_ms`` count.
    """
    kept = [s for s in samples if s.ms and s.ms[0] >= min_ms]
    if not kept:
        return {"n": 0}
    first = np.array([s.ms[0] for s in kept])
    predicted = np.array(
        [
            predictor.predict_features_ms(s.features)
            if not s.int8
            else predictor.kernels.get(8, predictor).predict_features_ms(s.features)
            for s in kept
        ]
    )
    out: dict[str, Any] = {
        "n": len(kept),
        "within_10pct": float(np.mean(np.abs(predicted / first - 1) <= 0.10)),
        "spearman": float(spearmanr(predicted, first)[0]) if len(kept) > 2 else float("nan"),
        "median_abs_error": float(np.median(np.abs(predicted / first - 1))),
        "median_ms": float(np.median(first)),
    }
    if all(len(s.ms) >= 2 for s in kept):
        second = np.array([s.ms[1] for s in kept])
        out["noise_within_10pct"] = float(np.mean(np.abs(second / first - 1) <= 0.10))
        out["noise_spearman"] = (
            float(spearmanr(second, first)[0]) if len(kept) > 2 else float("nan")
        )
        best = np.minimum(first, second)
        out["within_10pct_of_best"] = float(np.mean(np.abs(predicted / best - 1) <= 0.10))
    return out
