"""Unstructured magnitude pruning (Han et al., 2015, "Learning both Weights and
Connections for Efficient Neural Networks") of ``Conv2d``/``Linear`` weights.

The mask is a parametrization, so a pruned weight stays exactly zero while the
model is fine-tuned, and fake quantization (registered after it) sees the
masked weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from compress._params import is_target, original_weight, weight, weight_parametrizations
from compress._registry import register_technique

__all__ = ["SCOPES", "PruneConfig", "WeightMask", "prune", "pruned_count"]

SCOPES: tuple[str, ...] = ("global", "layer")


@dataclass(frozen=True)
class PruneConfig:
    """Zero the smallest-magnitude weights of every ``Conv2d`` and ``Linear``.

    Attributes:
        sparsity: Fraction of weights set to zero, in ``[0, 1)``; exactly
            ``round(sparsity * n)`` of them.
        scope: ``"global"`` ranks all prunable weights together (one threshold);
            ``"layer"`` prunes each layer to ``sparsity`` on its own.
    """

    sparsity: float
    scope: str = "global"

    def __post_init__(self) -> None:
        s = self.sparsity
        if isinstance(s, bool) or not isinstance(s, int | float) or not 0 <= s < 1:
            raise ValueError(f"sparsity={s!r} is outside [0, 1)")
        if self.scope not in SCOPES:
            raise ValueError(f"scope={self.scope!r} is not one of {SCOPES}")


class WeightMask(nn.Module):
    """Parametrization ``w -> w * mask`` with a fixed 0/1 mask."""

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def pruned_count(sparsity: float, n: int) -> int:
    """How many of ``n`` weights a sparsity zeroes (shared with the size estimate)."""
    return round(sparsity * n)


@register_technique("prune", PruneConfig)
def prune(model: nn.Module, cfg: PruneConfig) -> nn.Module:
    """Attach magnitude-pruning masks to ``model`` (in place) and return it."""
    layers = [m for m in model.modules() if is_target(m)]
    if not layers:
        return model
    with torch.no_grad():
        magnitudes = [_masked_original(m).abs().flatten() for m in layers]
        if cfg.scope == "layer":
            keeps = [_keep(mag, pruned_count(cfg.sparsity, mag.numel())) for mag in magnitudes]
        else:
            flat = torch.cat(magnitudes)
            keeps = list(_keep(flat, pruned_count(cfg.sparsity, flat.numel())).split(
                [mag.numel() for mag in magnitudes]
            ))
    for module, keep in zip(layers, keeps, strict=True):
        _set_mask(module, keep.view_as(weight(module)))
    return model


def _keep(magnitude: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask dropping exactly the ``k`` smallest entries.

    A stable sort breaks ties by position, so equal magnitudes (e.g. weights
    that are already zero) are pruned deterministically, first index first.
    """
    keep = torch.ones_like(magnitude, dtype=torch.bool)
    keep[torch.argsort(magnitude, stable=True)[:k]] = False
    return keep


def _masked_original(module: nn.Module) -> torch.Tensor:
    """The weight before quantization: the original times any masks already set."""
    w = original_weight(module)
    for p in weight_parametrizations(module):
        if isinstance(p, WeightMask):
            w = w * p.mask
    return w


def _set_mask(module: nn.Module, keep: torch.Tensor) -> None:
    """Install or tighten the mask, keeping it the first parametrization.

    Masks combine by intersection, so pruning twice never revives a weight.
    Another parametrization (fake quantization) registered earlier is removed and
    re-registered after the mask, because it must quantize the masked weight.
    """
    plist = weight_parametrizations(module)
    for p in plist:
        if isinstance(p, WeightMask):
            p.mask.mul_(keep.to(p.mask.dtype))
            return
    mask = WeightMask(keep.to(weight(module).dtype))
    if plist:
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
    parametrize.register_parametrization(module, "weight", mask)
    for p in plist:
        parametrize.register_parametrization(module, "weight", p)
