"""Model compression: pruning, quantization-aware fine-tuning, distillation, and an
honest single-file artifact whose size is what a compressed model really takes.

Typical use::

    cfgs = [PruneConfig(sparsity=0.5), QuantConfig(bits=4)]
    if estimate_size_bytes(model, cfgs, meta=arch) > budget:
        ...  # reject before training
    apply(model, cfgs)  # in place; then fine-tune as usual
    size = export(model, "model.dsz", meta=arch)
    plain = load("model.dsz", build_fn)  # same outputs, no parametrizations

The package knows nothing of search or tracking; it works on any ``nn.Module``
and compresses the weights of its ``Conv2d`` and ``Linear`` layers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from compress._bits import BITS

if TYPE_CHECKING:
    from compress._bake import bake
    from compress._distill import distillation_loss
    from compress._format import export, load, read_meta, size_bytes
    from compress._lowrank import LowRankConfig
    from compress._onnx_export import OnnxInt8Config, export_onnx
    from compress._onnx_runtime import (
        int8_mac_share,
        measure_onnx_latency_ms,
        onnx_predict,
        onnx_session,
        weight_macs,
    )
    from compress._prune import GradualPruner, PruneConfig, PruneSchedule, magnitude_mask
    from compress._quant import QuantConfig, fake_quantize
    from compress._registry import (
        apply,
        get_technique_config,
        list_techniques,
        register_technique,
    )
    from compress._size import estimate_size_bytes, stats
    from compress._structured import ChannelPruneConfig

# Public name -> private module. Loaded on first access (PEP 562), so that importing
# `compress` for BITS does not import torch; the command line validates in ~1 s.
_LAZY = {
    "bake": "compress._bake",
    "distillation_loss": "compress._distill",
    "export": "compress._format",
    "load": "compress._format",
    "read_meta": "compress._format",
    "size_bytes": "compress._format",
    "LowRankConfig": "compress._lowrank",
    "OnnxInt8Config": "compress._onnx_export",
    "export_onnx": "compress._onnx_export",
    "int8_mac_share": "compress._onnx_runtime",
    "measure_onnx_latency_ms": "compress._onnx_runtime",
    "onnx_predict": "compress._onnx_runtime",
    "onnx_session": "compress._onnx_runtime",
    "weight_macs": "compress._onnx_runtime",
    "GradualPruner": "compress._prune",
    "PruneConfig": "compress._prune",
    "PruneSchedule": "compress._prune",
    "magnitude_mask": "compress._prune",
    "QuantConfig": "compress._quant",
    "fake_quantize": "compress._quant",
    "apply": "compress._registry",
    "get_technique_config": "compress._registry",
    "list_techniques": "compress._registry",
    "register_technique": "compress._registry",
    "estimate_size_bytes": "compress._size",
    "stats": "compress._size",
    "ChannelPruneConfig": "compress._structured",
}

__all__ = [
    "BITS",
    "ChannelPruneConfig",
    "GradualPruner",
    "LowRankConfig",
    "OnnxInt8Config",
    "PruneConfig",
    "PruneSchedule",
    "QuantConfig",
    "apply",
    "bake",
    "distillation_loss",
    "estimate_size_bytes",
    "export",
    "export_onnx",
    "fake_quantize",
    "get_technique_config",
    "int8_mac_share",
    "list_techniques",
    "load",
    "magnitude_mask",
    "measure_onnx_latency_ms",
    "onnx_predict",
    "onnx_session",
    "read_meta",
    "register_technique",
    "size_bytes",
    "stats",
    "weight_macs",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        # Importing the techniques registers them; do all at once so the registry is full.
        for module in dict.fromkeys(_LAZY.values()):
            importlib.import_module(module)
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'compress' has no attribute {name!r}")
