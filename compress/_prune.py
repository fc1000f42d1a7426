"""Unstructured magnitude pruning (Han et al., 2015, "Learning both Weights and
Connections for Efficient Neural Networks") of ``Conv2d``/``Linear`` weights.

The mask is a parametrization, so a pruned weight stays exactly zero while the
model is fine-tuned, and fake quantization (registered after it) sees the
masked weight.

Gradual pruning (Zhu & Gupta, 2017, "To prune, or not to prune") raises the
sparsity during fine-tuning along ``s_t = s_f + (s_i - s_f) (1 - p)^3``, where
``p`` is the progress through the pruning window: :class:`GradualPruner` is an
``on_step`` callback for the training loop that tightens the masks on schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from compress._params import is_target, original_weight, weight, weight_parametrizations
from compress._registry import register_technique

__all__ = [
    "SCOPES",
    "GradualPruner",
    "PruneConfig",
    "PruneSchedule",
    "WeightMask",
    "keep_masks",
    "magnitude_mask",
    "prune",
    "pruned_count",
]

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


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A 0/1 mask (``weight``'s dtype) dropping the ``sparsity`` fraction of smallest
    magnitudes of one tensor: layer-scope pruning, in functional form."""
    with torch.no_grad():
        keep = _keep(weight.detach().abs().flatten(), pruned_count(sparsity, weight.numel()))
    return keep.view_as(weight).to(weight.dtype)


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
        keeps = keep_masks([_masked_original(m) for m in layers], cfg)
    for module, keep in zip(layers, keeps, strict=True):
        _set_mask(module, keep.view_as(weight(module)))
    return model


def keep_masks(weights: list[torch.Tensor], cfg: PruneConfig) -> list[torch.Tensor]:
    """Which entries of each of ``weights`` survive ``cfg`` (flat booleans, per tensor):
    its sparsity of the smallest magnitudes, ranked over all of them or per tensor."""
    magnitudes = [w.detach().abs().flatten() for w in weights]
    if cfg.scope == "layer":
        return [_keep(mag, pruned_count(cfg.sparsity, mag.numel())) for mag in magnitudes]
    flat = torch.cat(magnitudes)
    return list(
        _keep(flat, pruned_count(cfg.sparsity, flat.numel())).split(
            [mag.numel() for mag in magnitudes]
        )
    )


@dataclass(frozen=True)
class PruneSchedule:
    """When :class:`GradualPruner` raises the sparsity (Zhu & Gupta's polynomial schedule).

    Steps are optimizer steps, counted from 1 to the total of the fine-tuning run;
    ``begin`` and ``end`` are fractions of that total, so one schedule fits any budget.

    Attributes:
        initial_sparsity: ``s_i``, set when the pruner is created; in ``[0, 1)``
            and at most the final sparsity.
        begin: Fraction of the steps after which the sparsity starts to rise, in ``[0, 1)``.
        end: Fraction of the steps by which it reaches the final sparsity, in
            ``(begin, 1]``; the steps after it fine-tune at the final sparsity.
        every: Tighten the masks every this many steps (>= 1); the step that
            reaches ``end`` always does.
    """

    initial_sparsity: float = 0.0
    begin: float = 0.0
    end: float = 0.75
    every: int = 1

    def __post_init__(self) -> None:
        s = self.initial_sparsity
        if isinstance(s, bool) or not isinstance(s, int | float) or not 0 <= s < 1:
            raise ValueError(f"initial_sparsity={s!r} is outside [0, 1)")
        b, e = self.begin, self.end
        if isinstance(b, bool) or not isinstance(b, int | float) or not 0 <= b < 1:
            raise ValueError(f"begin={b!r} is outside [0, 1)")
        if isinstance(e, bool) or not isinstance(e, int | float) or not b < e <= 1:
            raise ValueError(f"end={e!r} is outside (begin={b!r}, 1]")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every={self.every!r} must be an int >= 1")

    def sparsity(self, final: float, step: int, total: int) -> float:
        """The scheduled sparsity after ``step`` of ``total`` optimizer steps."""
        progress = (step / max(total, 1) - self.begin) / (self.end - self.begin)
        progress = min(max(progress, 0.0), 1.0)
        return final + (self.initial_sparsity - final) * (1.0 - progress) ** 3


class GradualPruner:
    """Prune ``model`` gradually while it is fine-tuned; pass it as ``on_step``.

    Typical use with the project's training loop::

        pruner = GradualPruner(model, PruneConfig(sparsity=0.9), PruneSchedule(end=0.7))
        train(model, batches, epochs=..., lr=..., on_step=pruner)
        assert pruner.sparsity == 0.9  # masks now prune exactly round(0.9 * n) weights

    Creating it prunes to ``schedule.initial_sparsity`` (one-shot, as
    :func:`prune`); each call ``pruner(step, total)`` after an optimizer step
    tightens the masks to the scheduled sparsity. Masks only tighten, so a weight
    once pruned stays zero, and the last step always reaches ``cfg.sparsity``.
    Fake quantization may be applied before or after creating it.
    """

    def __init__(
        self, model: nn.Module, cfg: PruneConfig, schedule: PruneSchedule | None = None
    ) -> None:
        self.model, self.cfg = model, cfg
        self.schedule = schedule or PruneSchedule()
        if self.schedule.initial_sparsity > cfg.sparsity:
            raise ValueError(
                f"initial_sparsity={self.schedule.initial_sparsity!r} is above "
                f"the final sparsity={cfg.sparsity!r}"
            )
        self.sparsity = -1.0  # the sparsity of the current masks; none yet
        self._prune_to(self.schedule.initial_sparsity)

    def __call__(self, step: int, total: int) -> None:
        """Tighten the masks to the schedule's sparsity after optimizer ``step`` of ``total``."""
        target = self.schedule.sparsity(self.cfg.sparsity, step, total)
        done = step >= self.schedule.end * total
        if target > self.sparsity and (done or step % self.schedule.every == 0):
            self._prune_to(self.cfg.sparsity if done else target)

    def _prune_to(self, sparsity: float) -> None:
        prune(self.model, PruneConfig(sparsity=sparsity, scope=self.cfg.scope))
        self.sparsity = sparsity


def _keep(magnitude: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask dropping exactly the ``k`` smallest entries.

    A stable sort breaks ties by position, so equal magnitudes (e.g. weights
    that are already zero) are pruned deterministically, first index first.
    """
    keep = torch.ones_like(magnitude, dtype=torch.bool)
    if k <= 0:
        return keep
    if k >= magnitude.numel():
        return ~keep
    # The k-th smallest value in O(n), not a full sort (a global mask ranks every weight
    # of the model, on each switch of an adaptive model): everything below it goes, then
    # of the values equal to it the first by position, as a stable sort would order them.
    threshold = torch.kthvalue(magnitude, k).values
    below = magnitude < threshold
    keep[below] = False
    ties = torch.nonzero(magnitude == threshold).flatten()
    keep[ties[: k - int(below.sum())]] = False
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
