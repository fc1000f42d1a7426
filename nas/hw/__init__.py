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

from typing import TYPE_CHECKING

from nas._lazy import lazy_getattr

if TYPE_CHECKING:
    from nas.hw._calibrate import (
        arch_features,
        calibrate_predictor,
        known_predictors,
        read_measurements,
    )
    from nas.hw._deploy import measure_deployed_ms
    from nas.hw._device_profile import read_device_profile, write_device_profile
    from nas.hw._features import LAYER_KINDS, LayerFeature, count_macs, layer_features
    from nas.hw._measure import measure_latency_ms
    from nas.hw._memory import peak_activation_bytes
    from nas.hw._methods import LATENCY_METHODS
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
        deployed_latency_ms,
        list_latency_methods,
        register_latency_method,
    )

_NAMES = {
    "FEATURE_NAMES": "nas.hw._predictor",
    "HardwareModel": "nas.hw._profile",
    "HardwareProfile": "nas.hw._profile",
    "LATENCY_METHODS": "nas.hw._methods",
    "LAYER_KINDS": "nas.hw._features",
    "LatencyMethod": "nas.hw._profile",
    "LatencyPredictor": "nas.hw._predictor",
    "LayerFeature": "nas.hw._features",
    "arch_features": "nas.hw._calibrate",
    "calibrate_predictor": "nas.hw._calibrate",
    "count_macs": "nas.hw._features",
    "deployed_latency_ms": "nas.hw._profile",
    "known_predictors": "nas.hw._calibrate",
    "layer_features": "nas.hw._features",
    "list_latency_devices": "nas.hw._predictor",
    "list_latency_methods": "nas.hw._profile",
    "measure_deployed_ms": "nas.hw._deploy",
    "measure_latency_ms": "nas.hw._measure",
    "network_features": "nas.hw._predictor",
    "peak_activation_bytes": "nas.hw._memory",
    "read_device_profile": "nas.hw._device_profile",
    "read_measurements": "nas.hw._calibrate",
    "register_latency_method": "nas.hw._profile",
    "write_device_profile": "nas.hw._device_profile",
}

__all__ = [
    "FEATURE_NAMES",
    "HardwareModel",
    "HardwareProfile",
    "LATENCY_METHODS",
    "LAYER_KINDS",
    "LatencyMethod",
    "LatencyPredictor",
    "LayerFeature",
    "arch_features",
    "calibrate_predictor",
    "count_macs",
    "deployed_latency_ms",
    "known_predictors",
    "layer_features",
    "list_latency_devices",
    "list_latency_methods",
    "measure_deployed_ms",
    "measure_latency_ms",
    "network_features",
    "peak_activation_bytes",
    "read_device_profile",
    "read_measurements",
    "register_latency_method",
    "write_device_profile",
]

__getattr__ = lazy_getattr(__name__, _NAMES)
