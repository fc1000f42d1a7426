"""Hardware modelling: layer features, MACs, latency (measured or predicted), peak memory.

``HardwareModel`` composes them for a hardware profile; the latency models are
fitted offline by ``scripts/fit_latency_models.py`` on measured FBNet-space
latencies (HW-NAS-Bench / HELP) and ship in ``nas/hw/data``.
"""

from __future__ import annotations

from nas.hw._features import LAYER_KINDS, LayerFeature, count_macs, layer_features
from nas.hw._measure import measure_latency_ms
from nas.hw._memory import peak_activation_bytes
from nas.hw._predictor import (
    FEATURE_NAMES,
    LatencyPredictor,
    list_latency_devices,
    network_features,
)
from nas.hw._profile import (
    HardwareModel,
    HardwareProfile,
    LatencyMethod,
    list_latency_methods,
    register_latency_method,
)

__all__ = [
    "FEATURE_NAMES",
    "LAYER_KINDS",
    "HardwareModel",
    "HardwareProfile",
    "LatencyMethod",
    "LatencyPredictor",
    "LayerFeature",
    "count_macs",
    "layer_features",
    "list_latency_devices",
    "list_latency_methods",
    "measure_latency_ms",
    "network_features",
    "peak_activation_bytes",
    "register_latency_method",
]
