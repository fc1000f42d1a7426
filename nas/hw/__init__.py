"""Hardware modelling: layer features, MACs, latency (measured or predicted), peak memory,
energy per inference (modelled from a published per-operation table).

``measure_latency_ms`` times a PyTorch model here: wall clock on the CPU, CUDA event
pairs on a GPU (``hw.device``), median per batch after warm-up. ``HardwareModel``
composes them for a hardware profile (``latency_ms(model,
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
        Measurements,
        arch_features,
        calibrate_predictor,
        known_predictors,
        read_measurements,
    )
    from nas.hw._deploy import (
        HOST_KERNEL_BITS,
        Bits,
        bake,
        deploys_int8,
        export_deployed,
        measure_deployed_ms,
        time_onnx_ms,
    )
    from nas.hw._device_profile import (
        read_device_profile,
        write_device_profile,
    )
    from nas.hw._energy import (
        EnergyBreakdown,
        EnergyTable,
        energy_breakdown,
        read_energy_table,
    )
    from nas.hw._fbnet_data import (
        FBNetLatencies,
        fbnet_network_features,
        fbnet_split,
        load_fbnet_latencies,
    )
    from nas.hw._fbnet_eval import (
        calibration_holdout,
        fbnet_feature_matrix,
    )
    from nas.hw._features import (
        LAYER_KINDS,
        LayerFeature,
        count_macs,
        layer_features,
    )
    from nas.hw._host_profile import (
        COMPRESSIONS,
        HOST_FEATURES,
        NetSample,
        accuracy,
        build_sample,
        fit_host_predictor,
        measure_samples,
        sample_networks,
    )
    from nas.hw._measure import (
        Timer,
        cuda_event_timer,
        measure_latency_ms,
        median_latency_ms,
        wall_clock_timer,
    )
    from nas.hw._memory import (
        peak_activation_bytes,
    )
    from nas.hw._methods import (
        LATENCY_METHODS,
    )
    from nas.hw._predictor import (
        FEATURE_NAMES,
        WEIGHT_KINDS,
        LatencyPredictor,
        layer_bits,
        list_latency_devices,
        network_features,
        read_latency_models,
    )
    from nas.hw._profile import (
        HardwareModel,
        HardwareProfile,
        LatencyMethod,
        deployed_latency_ms,
        list_latency_methods,
        register_latency_method,
    )
    from nas.hw._random_arch import (
        RandomSuggest,
        random_archs,
    )

_NAMES = {
    "Bits": "nas.hw._deploy",
    "COMPRESSIONS": "nas.hw._host_profile",
    "EnergyBreakdown": "nas.hw._energy",
    "EnergyTable": "nas.hw._energy",
    "FBNetLatencies": "nas.hw._fbnet_data",
    "FEATURE_NAMES": "nas.hw._predictor",
    "HOST_FEATURES": "nas.hw._host_profile",
    "HOST_KERNEL_BITS": "nas.hw._deploy",
    "HardwareModel": "nas.hw._profile",
    "HardwareProfile": "nas.hw._profile",
    "LATENCY_METHODS": "nas.hw._methods",
    "LAYER_KINDS": "nas.hw._features",
    "LatencyMethod": "nas.hw._profile",
    "LatencyPredictor": "nas.hw._predictor",
    "LayerFeature": "nas.hw._features",
    "Measurements": "nas.hw._calibrate",
    "NetSample": "nas.hw._host_profile",
    "RandomSuggest": "nas.hw._random_arch",
    "Timer": "nas.hw._measure",
    "WEIGHT_KINDS": "nas.hw._predictor",
    "accuracy": "nas.hw._host_profile",
    "arch_features": "nas.hw._calibrate",
    "bake": "nas.hw._deploy",
    "build_sample": "nas.hw._host_profile",
    "calibrate_predictor": "nas.hw._calibrate",
    "calibration_holdout": "nas.hw._fbnet_eval",
    "count_macs": "nas.hw._features",
    "cuda_event_timer": "nas.hw._measure",
    "deployed_latency_ms": "nas.hw._profile",
    "deploys_int8": "nas.hw._deploy",
    "energy_breakdown": "nas.hw._energy",
    "export_deployed": "nas.hw._deploy",
    "fbnet_feature_matrix": "nas.hw._fbnet_eval",
    "fbnet_network_features": "nas.hw._fbnet_data",
    "fbnet_split": "nas.hw._fbnet_data",
    "fit_host_predictor": "nas.hw._host_profile",
    "known_predictors": "nas.hw._calibrate",
    "layer_bits": "nas.hw._predictor",
    "layer_features": "nas.hw._features",
    "list_latency_devices": "nas.hw._predictor",
    "list_latency_methods": "nas.hw._profile",
    "load_fbnet_latencies": "nas.hw._fbnet_data",
    "measure_deployed_ms": "nas.hw._deploy",
    "measure_latency_ms": "nas.hw._measure",
    "measure_samples": "nas.hw._host_profile",
    "median_latency_ms": "nas.hw._measure",
    "network_features": "nas.hw._predictor",
    "peak_activation_bytes": "nas.hw._memory",
    "random_archs": "nas.hw._random_arch",
    "read_device_profile": "nas.hw._device_profile",
    "read_energy_table": "nas.hw._energy",
    "read_latency_models": "nas.hw._predictor",
    "read_measurements": "nas.hw._calibrate",
    "register_latency_method": "nas.hw._profile",
    "sample_networks": "nas.hw._host_profile",
    "time_onnx_ms": "nas.hw._deploy",
    "wall_clock_timer": "nas.hw._measure",
    "write_device_profile": "nas.hw._device_profile",
}

__all__ = [
    "Bits",
    "COMPRESSIONS",
    "EnergyBreakdown",
    "EnergyTable",
    "FBNetLatencies",
    "FEATURE_NAMES",
    "HOST_FEATURES",
    "HOST_KERNEL_BITS",
    "HardwareModel",
    "HardwareProfile",
    "LATENCY_METHODS",
    "LAYER_KINDS",
    "LatencyMethod",
    "LatencyPredictor",
    "LayerFeature",
    "Measurements",
    "NetSample",
    "RandomSuggest",
    "Timer",
    "WEIGHT_KINDS",
    "accuracy",
    "arch_features",
    "bake",
    "build_sample",
    "calibrate_predictor",
    "calibration_holdout",
    "count_macs",
    "cuda_event_timer",
    "deployed_latency_ms",
    "deploys_int8",
    "energy_breakdown",
    "export_deployed",
    "fbnet_feature_matrix",
    "fbnet_network_features",
    "fbnet_split",
    "fit_host_predictor",
    "known_predictors",
    "layer_bits",
    "layer_features",
    "list_latency_devices",
    "list_latency_methods",
    "load_fbnet_latencies",
    "measure_deployed_ms",
    "measure_latency_ms",
    "measure_samples",
    "median_latency_ms",
    "network_features",
    "peak_activation_bytes",
    "random_archs",
    "read_device_profile",
    "read_energy_table",
    "read_latency_models",
    "read_measurements",
    "register_latency_method",
    "sample_networks",
    "time_onnx_ms",
    "wall_clock_timer",
    "write_device_profile",
]

__getattr__ = lazy_getattr(__name__, _NAMES)
