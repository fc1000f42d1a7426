"""A per-operator-kind linear latency model, fitted per device.

A network's latency is modelled as an intercept plus, for every operator kind
(``conv_pw``, ``conv_dw``, ``bn``, ...), a non-negative linear function of the
kind's summed layer features: layer count, MACs, activation elements read and
written, and parameters. Because every term is a sum over layers, the model
applies to any ``nn.Module`` built from these kinds, and a network's features
are the sums of its layers' features, which makes fitting on whole-network
latencies cheap. Non-negative coefficients (``scipy.optimize.nnls``) keep
extrapolation monotone: more work of any kind never predicts less time. The
idea follows nn-Meter's kernel-level prediction (Zhang et al., MobiSys 2021)
with linear kernels instead of random forests.

Bit-widths: a predictor may carry *kernels*, one coefficient set per bit-width
that has its own fast kernels on the device (e.g. ``{8: <int8 model>}``, fitted on
int8 deployments, or the fp32 model with its weight layers sped up by a factor).
A layer at a bit-width without one runs dequantized on the fp32 kernels and is
predicted by the predictor's own (fp32) coefficients. Unstructured sparsity buys
nothing unless the device has sparse kernels (``sparse_speedup``: weight-layer
MACs scale with the density); structured pruning needs no rule, since the pruned
model's real, smaller shapes are what is measured.

Coefficients ship in ``nas/hw/data/latency_models.json``, written by
``scripts/fit_latency_models.py``; nothing is fitted at run time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls
from torch import nn

from nas.hw._features import LAYER_KINDS, LayerFeature, layer_features

__all__ = [
    "FEATURE_NAMES",
    "WEIGHT_KINDS",
    "LatencyPredictor",
    "layer_bits",
    "list_latency_devices",
    "network_features",
    "read_latency_models",
]

# Every layer kind but identity, which costs nothing, in LAYER_KINDS order.
_PREDICTED_KINDS = tuple(k for k in LAYER_KINDS if k != "identity")
_STATS = ("count", "macs", "input_elements", "output_elements", "params")
FEATURE_NAMES: tuple[str, ...] = tuple(f"{k}.{s}" for k in _PREDICTED_KINDS for s in _STATS)
"""Names of the network-level features, ``"<kind>.<stat>"``."""

MODELS_FILE = "latency_models.json"

WEIGHT_KINDS = ("conv_full", "conv_pw", "conv_dw", "conv_group", "linear")
"""Layer kinds whose weights are quantized and pruned (and whose kernels bit-widths change)."""

FP32 = 32


def layer_bits(layers: Sequence[LayerFeature], bits: int | Mapping[str, int]) -> list[int]:
    """The bit-width each layer runs at.

    ``bits`` is one width for every layer, or ``{layer name: width}`` for weight layers
    (unnamed weight layers: 32). A layer without weights (BatchNorm, activation,
    pooling) runs at the width of the weight layer before it, into whose kernel a
    deployment fuses it (32 before the first).

    Raises:
        ValueError: a name in ``bits`` is not a weight layer that ran.
    """
    if not isinstance(bits, Mapping):
        return [int(bits)] * len(layers)
    weight_names = {f.name for f in layers if f.kind in WEIGHT_KINDS}
    unknown = sorted(set(bits) - weight_names)
    if unknown:
        raise ValueError(
            f"bits names layers {unknown[:5]} that are not weight layers of the model; "
            f"weight layers are e.g. {sorted(weight_names)[:5]}"
        )
    out, current = [], FP32
    for f in layers:
        if f.kind in WEIGHT_KINDS:
            current = int(bits.get(f.name, FP32))
        out.append(current)
    return out


def network_features(layers: Iterable[LayerFeature]) -> dict[str, float]:
    """Sum layer features into the network-level feature dict the predictor uses."""
    feats = dict.fromkeys(FEATURE_NAMES, 0.0)
    for layer in layers:
        if layer.kind not in _PREDICTED_KINDS:
            continue  # identity layers cost nothing
        feats[f"{layer.kind}.count"] += 1.0
        feats[f"{layer.kind}.macs"] += layer.macs
        feats[f"{layer.kind}.input_elements"] += layer.input_elements
        feats[f"{layer.kind}.output_elements"] += layer.output_elements
        feats[f"{layer.kind}.params"] += layer.params
    return feats


class LatencyPredictor:
    """Predicts batch-1 latency in ms on one device from a model's layer features.

    Load a fitted one with ``LatencyPredictor.load("pixel3")``; fit a new one from
    (features, measured latency) pairs with ``LatencyPredictor.fit``.
    """

    def __init__(
        self,
        *,
        device: str,
        intercept_ms: float,
        coefficients: Mapping[str, float],
        metrics: Mapping[str, Any] | None = None,
        kernels: Mapping[int, LatencyPredictor] | None = None,
    ) -> None:
        unknown = sorted(set(coefficients) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"unknown latency features {unknown}; allowed: {FEATURE_NAMES}")
        self.device = device
        self.intercept_ms = float(intercept_ms)
        self.coefficients = {n: float(coefficients.get(n, 0.0)) for n in FEATURE_NAMES}
        self.metrics = dict(metrics or {})
        self.kernels: dict[int, LatencyPredictor] = {int(b): k for b, k in (kernels or {}).items()}
        """Bit-width -> the coefficients of that width's own kernels (fp32's are ``self``)."""

    @classmethod
    def load(cls, device: str, *, path: str | Path | None = None) -> LatencyPredictor:
        """The predictor fitted for ``device`` (see ``list_latency_devices``)."""
        models = read_latency_models(path)["devices"]
        if device not in models:
            raise KeyError(
                f"no latency model for device {device!r}; available: {', '.join(sorted(models))}"
            )
        return cls.from_dict(device, models[device])

    @classmethod
    def from_dict(cls, device: str, entry: Mapping[str, Any]) -> LatencyPredictor:
        """The predictor a ``to_dict`` entry describes.

        ``entry["kernels"]`` maps a bit-width (a string in JSON) to either a full entry
        (``intercept_ms``, ``coefficients``), or ``{"speedup": s}``: the fp32 model with
        its weight layers ``s`` times faster.
        """
        kernel_entries = {int(b): k for b, k in dict(entry.get("kernels") or {}).items()}
        base = cls(
            device=device,
            intercept_ms=entry["intercept_ms"],
            coefficients=entry["coefficients"],
            metrics=entry.get("metrics"),
            kernels={
                b: cls.from_dict(f"{device}@{b}", k)
                for b, k in kernel_entries.items()
                if "speedup" not in k
            },
        )
        for b, k in kernel_entries.items():
            if "speedup" in k:
                base.kernels[b] = base.sped_up(float(k["speedup"]), bits=b)
        return base

    def sped_up(self, speedup: float, *, bits: int) -> LatencyPredictor:
        """This (fp32) model with every weight layer's terms ``speedup`` times faster."""
        if not speedup > 0:
            raise ValueError(f"speedup={speedup} must be positive")
        coef = {
            n: c / speedup if n.split(".")[0] in WEIGHT_KINDS else c
            for n, c in self.coefficients.items()
        }
        out = LatencyPredictor(
            device=f"{self.device}@{bits}", intercept_ms=self.intercept_ms, coefficients=coef
        )
        out.metrics["speedup"] = speedup
        return out

    @classmethod
    def fit(
        cls,
        features: Sequence[Mapping[str, float]],
        latencies_ms: Sequence[float],
        *,
        device: str,
        features_used: Sequence[str] | None = None,
    ) -> LatencyPredictor:
        """Fit non-negative coefficients minimising squared *relative* error.

        Args:
            features: one ``network_features`` dict per measured network.
            latencies_ms: the measured latency of each network.
            device: the name the predictor is stored under.
            features_used: fit only these of ``FEATURE_NAMES`` (the rest stay 0).
        """
        y = np.asarray(latencies_ms, dtype=np.float64)
        if len(features) != len(y) or len(y) == 0 or np.any(y <= 0):
            raise ValueError("fit needs one positive latency per feature dict, at least one")
        used = set(FEATURE_NAMES if features_used is None else features_used)
        if used - set(FEATURE_NAMES):
            raise ValueError(f"unknown features {sorted(used - set(FEATURE_NAMES))}")
        x = _matrix(features) * np.array([n in used for n in FEATURE_NAMES], dtype=np.float64)
        design = np.hstack([x, np.ones((len(y), 1))])
        # Columns span ~10 orders of magnitude (counts vs MACs): scale for NNLS, unscale after.
        scale = np.abs(design).max(axis=0)
        scale[scale == 0] = 1.0
        coef, _ = nnls((design / scale) / y[:, None], np.ones_like(y), maxiter=50 * design.shape[1])
        coef = coef / scale
        return cls(
            device=device,
            intercept_ms=float(coef[-1]),
            coefficients=dict(zip(FEATURE_NAMES, coef[:-1].tolist(), strict=True)),
        )

    @property
    def kernel_bits(self) -> list[int]:
        """Bit-widths with their own kernels: 32 and those of ``kernels``, sorted."""
        return sorted({FP32, *self.kernels})

    def predict_ms(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        *,
        bits: int | Mapping[str, int] = FP32,
        sparsity: float = 0.0,
        sparse_speedup: bool = False,
    ) -> float:
        """Predicted latency of ``model`` on an input of ``input_shape`` (batch included).

        Args:
            model: the network with its real (e.g. channel-pruned) shapes.
            input_shape: full input shape including batch.
            bits: the bit-width of every weight layer, or ``{layer name: bits}``.
            sparsity: unstructured sparsity of the weight layers (zeros in dense weights).
            sparse_speedup: whether the device skips zeros; if not, sparsity is free.
        """
        return self.predict_layers_ms(
            layer_features(model, input_shape),
            bits=bits,
            sparsity=sparsity,
            sparse_speedup=sparse_speedup,
        )

    def predict_layers_ms(
        self,
        layers: Sequence[LayerFeature],
        *,
        bits: int | Mapping[str, int] = FP32,
        sparsity: float = 0.0,
        sparse_speedup: bool = False,
    ) -> float:
        """``predict_ms`` from ``layer_features``: each layer by its bit-width's kernels.

        A layer whose bit-width has no kernels of its own runs dequantized on the fp32
        ones. The per-network intercept is that of the one kernel set all weight layers
        use, else fp32's.
        """
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity={sparsity} is outside [0, 1)")
        widths = layer_bits(layers, bits)
        groups: dict[int, list[LayerFeature]] = {}
        for f, b in zip(layers, widths, strict=True):
            groups.setdefault(b if b in self.kernels else FP32, []).append(f)
        weight_sets = {b for b, fs in groups.items() if any(f.kind in WEIGHT_KINDS for f in fs)}
        intercept = self.intercept_ms
        if len(weight_sets) == 1 and (only := next(iter(weight_sets))) != FP32:
            intercept = self.kernels[only].intercept_ms
        total = intercept
        for b, fs in groups.items():
            model = self if b == FP32 else self.kernels[b]
            feats = network_features(fs)
            if sparse_speedup and sparsity:
                for kind in WEIGHT_KINDS:
                    feats[f"{kind}.macs"] *= 1.0 - sparsity
            total += model.predict_features_ms(feats) - model.intercept_ms
        return total

    def predict_features_ms(self, features: Mapping[str, float]) -> float:
        """Predicted latency from a ``network_features`` dict."""
        return self.intercept_ms + sum(
            c * float(features.get(n, 0.0)) for n, c in self.coefficients.items() if c
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able entry stored in ``latency_models.json``."""
        out: dict[str, Any] = {
            "intercept_ms": self.intercept_ms,
            "coefficients": {n: c for n, c in self.coefficients.items() if c},
            "metrics": self.metrics,
        }
        if self.kernels:
            out["kernels"] = {
                str(b): (
                    {"speedup": k.metrics["speedup"]} if "speedup" in k.metrics else k.to_dict()
                )
                for b, k in sorted(self.kernels.items())
            }
        return out


def list_latency_devices(*, path: str | Path | None = None) -> list[str]:
    """Devices with a fitted latency model, sorted."""
    return sorted(read_latency_models(path)["devices"])


def _matrix(features: Sequence[Mapping[str, float]]) -> np.ndarray:
    return np.array([[float(f.get(n, 0.0)) for n in FEATURE_NAMES] for f in features])


def read_latency_models(path: str | Path | None = None) -> dict[str, Any]:
    """The fitted latency models: the shipped ``nas/hw/data`` file, or the one at ``path``."""
    if path is not None:
        return json.loads(Path(path).read_text())
    text = resources.files("nas.hw").joinpath("data", MODELS_FILE).read_text()
    return json.loads(text)
