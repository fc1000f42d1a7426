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
    "LatencyPredictor",
    "list_latency_devices",
    "network_features",
]

# Every layer kind but identity, which costs nothing, in LAYER_KINDS order.
_PREDICTED_KINDS = tuple(k for k in LAYER_KINDS if k != "identity")
_STATS = ("count", "macs", "input_elements", "output_elements", "params")
FEATURE_NAMES: tuple[str, ...] = tuple(f"{k}.{s}" for k in _PREDICTED_KINDS for s in _STATS)
"""Names of the network-level features, ``"<kind>.<stat>"``."""

MODELS_FILE = "latency_models.json"


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
    ) -> None:
        unknown = sorted(set(coefficients) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"unknown latency features {unknown}; allowed: {FEATURE_NAMES}")
        self.device = device
        self.intercept_ms = float(intercept_ms)
        self.coefficients = {n: float(coefficients.get(n, 0.0)) for n in FEATURE_NAMES}
        self.metrics = dict(metrics or {})

    @classmethod
    def load(cls, device: str, *, path: str | Path | None = None) -> LatencyPredictor:
        """The predictor fitted for ``device`` (see ``list_latency_devices``)."""
        models = _read_models(path)["devices"]
        if device not in models:
            raise KeyError(
                f"no latency model for device {device!r}; available: {', '.join(sorted(models))}"
            )
        entry = models[device]
        return cls(
            device=device,
            intercept_ms=entry["intercept_ms"],
            coefficients=entry["coefficients"],
            metrics=entry.get("metrics"),
        )

    @classmethod
    def fit(
        cls,
        features: Sequence[Mapping[str, float]],
        latencies_ms: Sequence[float],
        *,
        device: str,
    ) -> LatencyPredictor:
        """Fit non-negative coefficients minimising squared *relative* error.

        Args:
            features: one ``network_features`` dict per measured network.
            latencies_ms: the measured latency of each network.
            device: the name the predictor is stored under.
        """
        y = np.asarray(latencies_ms, dtype=np.float64)
        if len(features) != len(y) or len(y) == 0 or np.any(y <= 0):
            raise ValueError("fit needs one positive latency per feature dict, at least one")
        x = _matrix(features)
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

    def predict_ms(self, model: nn.Module, input_shape: Sequence[int]) -> float:
        """Predicted latency of ``model`` on an input of ``input_shape`` (batch included)."""
        return self.predict_features_ms(network_features(layer_features(model, input_shape)))

    def predict_features_ms(self, features: Mapping[str, float]) -> float:
        """Predicted latency from a ``network_features`` dict."""
        return self.intercept_ms + sum(
            c * float(features.get(n, 0.0)) for n, c in self.coefficients.items() if c
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able entry stored in ``latency_models.json``."""
        return {
            "intercept_ms": self.intercept_ms,
            "coefficients": {n: c for n, c in self.coefficients.items() if c},
            "metrics": self.metrics,
        }


def list_latency_devices(*, path: str | Path | None = None) -> list[str]:
    """Devices with a fitted latency model, sorted."""
    return sorted(_read_models(path)["devices"])


def _matrix(features: Sequence[Mapping[str, float]]) -> np.ndarray:
    return np.array([[float(f.get(n, 0.0)) for n in FEATURE_NAMES] for f in features])


def _read_models(path: str | Path | None) -> dict[str, Any]:
    if path is not None:
        return json.loads(Path(path).read_text())
    text = resources.files("nas.hw").joinpath("data", MODELS_FILE).read_text()
    return json.loads(text)
