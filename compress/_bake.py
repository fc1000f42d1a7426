"""Compress a model's weights in place, with no parametrization left: the weights as
:func:`compress.apply` would have them evaluated, for inference only.

``apply`` attaches masks and fake quantization as parametrizations, which fine-tuning
needs; registering and removing them costs more than the arithmetic. A model that is
only run (an adaptive model's operating point, derived on each switch) gets the same
weights directly: the same masks (``_prune._keep``, the same ranking and ties) and the
same per-channel codes and fp16 scales (``_quant.quantize_weight``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from compress._params import is_target
from compress._prune import PruneConfig, keep_masks
from compress._quant import QuantConfig, dequantize, quantize_weight
from compress._registry import apply

__all__ = ["bake"]


@torch.no_grad()
def bake(model: nn.Module, cfgs: Sequence[Any]) -> nn.Module:
    """``model`` with ``cfgs`` applied to its plain weights, in place; returns it.

    Pruning and quantization are computed directly; any other technique (structured
    pruning, low rank) goes through :func:`compress.apply` and its parametrizations are
    then baked in. The outputs equal those of ``apply(model, cfgs)``.
    """
    if any(parametrize.is_parametrized(m) for m in model.modules()):
        raise ValueError("bake takes a model with plain weights (no compress.apply before it)")
    direct = all(isinstance(c, PruneConfig | QuantConfig) for c in cfgs)
    if not direct:
        apply(model, cfgs)
        for module in list(model.modules()):
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        return model
    weights = [m.weight for m in model.modules() if is_target(m)]
    tensors = [w for w in weights if isinstance(w, torch.Tensor)]
    for cfg in cfgs:
        if isinstance(cfg, PruneConfig):
            _prune(tensors, cfg)
    bits = [c.bits for c in cfgs if isinstance(c, QuantConfig)]
    if bits and bits[-1] != 32:  # quantizing again replaces the bit-width, as apply does
        for w in tensors:
            q = (
                w.to(torch.float16).to(w.dtype)
                if bits[-1] == 16
                else dequantize(*quantize_weight(w, bits[-1]))
            )
            w.copy_(q)
    return model


def _prune(weights: list[torch.Tensor], cfg: PruneConfig) -> None:
    for w, keep in zip(weights, keep_masks(weights, cfg), strict=True):
        w.mul_(keep.view_as(w).to(w.dtype))
