"""Profile this machine: time single operators over a grid of shapes, fit a predictor.

Each operator kind the search spaces use (full, pointwise, depthwise and grouped
convolutions, linear, BN, activations, pooling) is timed alone at batch 1 over a
grid of channel counts, kernel sizes, strides and feature-map sizes
(``measure_latency_ms``: fixed threads, warm-up, median of repeats). A
``LatencyPredictor`` is fitted on those single-operator times without an
intercept (a lone operator's time includes its per-call overhead, which the
``count`` features carry); then a few whole networks of the ``mbconv`` space fix
what single operators cannot see (residual adds, the framework's per-network
overhead, cache effects between layers) as ``t = a + s * ops(x)``, ``a, s >= 0``.
This is nn-Meter's kernel-level approach (Zhang et al., MobiSys 2021) with the
project's linear kernels.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls
from torch import nn

from nas.hw._features import layer_features
from nas.hw._measure import measure_latency_ms
from nas.hw._predictor import FEATURE_NAMES, LatencyPredictor, _matrix, network_features

__all__ = ["OpGrid", "fit_host_predictor", "op_grid", "time_ops"]


@dataclass(frozen=True)
class OpGrid:
    """How much to measure: ``quick`` (< 1 min of timing), ``full`` or ``tiny`` (tests)."""

    channels: tuple[int, ...]
    sizes: tuple[int, ...]
    warmup: int
    repeats: int


GRIDS = {
    "tiny": OpGrid(channels=(8, 32), sizes=(7,), warmup=1, repeats=3),
    "quick": OpGrid(channels=(8, 24, 64, 128), sizes=(4, 7, 14), warmup=3, repeats=15),
    "full": OpGrid(channels=(8, 16, 32, 64, 96, 160), sizes=(4, 7, 14, 28), warmup=5, repeats=21),
}


def op_grid(grid: OpGrid) -> Iterator[tuple[str, nn.Module, tuple[int, ...]]]:
    """``(label, module, input_shape)`` for every operator and shape of ``grid``."""
    for c, size in itertools.product(grid.channels, grid.sizes):
        shape = (1, c, size, size)
        c2 = max(8, c * 2)
        yield "conv_pw", nn.Conv2d(c, c2, 1, bias=False), shape
        yield "conv_pw", nn.Conv2d(c, max(8, c // 2), 1, bias=False), shape
        for k, stride in ((3, 1), (5, 1), (3, 2), (5, 2)):
            yield "conv_dw", nn.Conv2d(c, c, k, stride, k // 2, groups=c, bias=False), shape
        yield "conv_full", nn.Conv2d(c, c, 3, 1, 1, bias=False), shape
        yield "conv_full", nn.Conv2d(c, c2, 3, 2, 1, bias=False), shape
        yield "conv_group", nn.Conv2d(c, c2, 1, groups=2, bias=False), shape
        yield "bn", nn.BatchNorm2d(c), shape
        yield "act", nn.ReLU(inplace=True), shape
        yield "act", nn.ReLU6(inplace=True), shape
        yield "pool", nn.AdaptiveAvgPool2d(1), shape
    for c_in in (1, 3):  # stems see the image's channels
        for size in grid.sizes:
            stem = nn.Conv2d(c_in, 16, 3, 2, 1, bias=False)
            yield "conv_full", stem, (1, c_in, 4 * size, 4 * size)
    for c_in, c_out in itertools.product(grid.channels + (1280,), (10, 100)):
        yield "linear", nn.Linear(c_in, c_out), (1, c_in)


def time_ops(
    grid: OpGrid,
    *,
    threads: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[dict[str, float]], np.ndarray, list[str]]:
    """Time every operator of ``grid``: (features, median ms, labels)."""
    ops = list(op_grid(grid))
    feats, times, labels = [], [], []
    for i, (label, module, shape) in enumerate(ops):
        feats.append(network_features(layer_features(module, shape)))
        ms, _ = measure_latency_ms(
            module, shape, threads=threads, warmup=grid.warmup, repeats=grid.repeats
        )
        times.append(ms)
        labels.append(label)
        if progress is not None:
            progress(i + 1, len(ops))
    return feats, np.array(times), labels


def fit_host_predictor(
    op_features: list[dict[str, float]],
    op_ms: np.ndarray,
    net_features: list[dict[str, float]],
    net_ms: np.ndarray,
    *,
    device: str,
) -> LatencyPredictor:
    """Per-kind coefficients from single operators, then ``a + s * ops`` from networks."""
    x = _matrix(op_features)
    design = x / op_ms[:, None]
    scale = np.abs(design).max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls(design / scale, np.ones_like(op_ms), maxiter=50 * x.shape[1])
    coef = coef / scale
    ops_pred = _matrix(net_features) @ coef
    a_s = np.column_stack([np.ones_like(ops_pred), ops_pred]) / net_ms[:, None]
    (a, s), _ = nnls(a_s, np.ones_like(net_ms))
    if s == 0:  # networks gave no usable signal: keep the operators' scale
        s, a = 1.0, float(np.median(net_ms - ops_pred).clip(min=0))
    return LatencyPredictor(
        device=device,
        intercept_ms=float(a),
        coefficients=dict(zip(FEATURE_NAMES, (s * coef).tolist(), strict=True)),
        metrics={"network_scale": float(s), "n_ops": len(op_ms), "n_networks": len(net_ms)},
    )
