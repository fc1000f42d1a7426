"""Hardware modelling: layer features, MACs, latency (measured or predicted), peak memory.

``HardwareModel`` composes them for a hardware profile (``latency_ms(model,
input_shape, bits=, sparsity=)``, before training), and ``deployed_latency_ms``
gives a trained, compressed model's latency as deployed (real int8 ONNX Runtime
kernels when measured). The latency models are fitted offline by
``scripts/fit_latency_models.py`` on measured FBNet-space latencies (HW-NAS-Bench
/ HELP) and ship in ``nas/hw/data``. A new device is added from a few measured
networks (``calibrate_predictor``, ``python -m nas.calibrate_hw``) or by profiling
deployed networks here (``python -m nas.profile_hw``); either writes a device
profile JSON that ``+hw=custom hw.profile=...`` loads.
"""

from __future__ import annotations

from nas.hw._calibrate import (
    arch_features,
    calibrate_predictor,
    known_predictors,
    read_measurements,
)
from nas.hw._deploy import deployed_latency_ms, measure_deployed_ms
from nas.hw._device_profile import read_device_profile, write_device_profile
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
    "arch_features",
    "calibrate_predictor",
    "count_macs",
    "deployed_latency_ms",
    "layer_features",
    "list_latency_devices",
    "list_latency_methods",
    "known_predictors",
    "measure_deployed_ms",
    "measure_latency_ms",
    "network_features",
    "peak_activation_bytes",
    "read_device_profile",
    "read_measurements",
    "register_latency_method",
    "write_device_profile",
]
