"""Low-rank factorization of ``Linear`` and ``Conv2d`` layers by truncated SVD.

A ``Linear`` weight ``W`` (``out x in``) becomes ``W ~ U_r S_r V_r^T``, two layers
``in -> r -> out`` (Denton et al., 2014, "Exploiting Linear Structure Within
Convolutional Networks for Efficient Evaluation"; Xue et al., 2013). A ``KxK``
``Conv2d`` takes the channel split of Zhang et al., 2016 ("Accelerating Very Deep
Convolutional Networks for Classification and Detection"): a ``KxK`` conv with
``r`` output channels, then a ``1x1`` conv back to ``out``, from the SVD of the
weight reshaped to ``out x (in*K*K)``. Each factor gets ``sqrt(S_r)``, so both
start on the same scale for fine-tuning. Depthwise and grouped convolutions, and
layers that the factorization would not make smaller, are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compress._params import weight_parametrizations
from compress._registry import register_technique

__all__ = ["LowRank", "LowRankConfig", "factorize", "factorized_rank", "lowrank", "rank_for"]


@dataclass(frozen=True)
class LowRankConfig:
    """Replace every ``Linear`` and ungrouped ``Conv2d`` by two thinner layers.

    Attributes:
        rank_ratio: The kept rank as a fraction of the full rank, in ``(0, 1]``:
            ``rank = max(1, round(rank_ratio * min(out, in * K * K)))``. A layer is
            factorized only when that takes fewer parameters.
    """

    rank_ratio: float

    def __post_init__(self) -> None:
        r = self.rank_ratio
        if isinstance(r, bool) or not isinstance(r, int | float) or not 0 < r <= 1:
            raise ValueError(f"rank_ratio={r!r} is outside (0, 1]")


class LowRank(nn.Sequential):
    """Two layers (``self[0]``, ``self[1]``) standing in for one, factorized at ``rank``.

    Both are plain ``Conv2d``/``Linear`` layers, so pruning and quantization
    applied afterwards compress them like any other layer.
    """

    def __init__(self, first: nn.Module, second: nn.Module, rank: int) -> None:
        super().__init__(first, second)
        self.rank = rank

    def extra_repr(self) -> str:
        return f"rank={self.rank}"


def rank_for(module: nn.Module, rank_ratio: float) -> int | None:
    """The rank ``module`` is factorized at, or ``None`` when it is not factorized."""
    dims = _dims(module)
    if dims is None:
        return None
    out, fan_in = dims
    rank = max(1, round(rank_ratio * min(out, fan_in)))
    return rank if reduces(module, rank) else None


def reduces(module: nn.Module, rank: int) -> bool:
    """Whether factors of ``rank`` hold fewer weights than ``module`` (bounds the load, too)."""
    dims = _dims(module)
    return dims is not None and rank >= 1 and rank * sum(dims) < dims[0] * dims[1]


def factorize(module: nn.Module, rank: int, *, init: bool = True) -> LowRank:
    """The two-layer replacement of ``module`` at ``rank``.

    Args:
        module: A ``Linear`` or ungrouped ``Conv2d`` without parametrizations.
        rank: Inner width, at least 1.
        init: Set the factors from the truncated SVD (else leave them as
            constructed: enough for shapes, or for weights loaded afterwards).
    """
    w = module.weight
    assert isinstance(w, torch.Tensor)
    kw: dict[str, Any] = {"device": w.device, "dtype": w.dtype}
    has_bias = getattr(module, "bias", None) is not None
    first: nn.Module
    second: nn.Module
    if isinstance(module, nn.Linear):
        first = nn.Linear(module.in_features, rank, bias=False, **kw)
        second = nn.Linear(rank, module.out_features, bias=has_bias, **kw)
    else:
        assert isinstance(module, nn.Conv2d) and module.groups == 1
        c: Any = module  # its kernel_size etc. are typed as n-d tuples
        first = nn.Conv2d(
            c.in_channels,
            rank,
            c.kernel_size,
            stride=c.stride,
            padding=c.padding,
            dilation=c.dilation,
            bias=False,
            padding_mode=c.padding_mode,
            **kw,
        )
        second = nn.Conv2d(rank, module.out_channels, 1, bias=has_bias, **kw)
    if init:
        with torch.no_grad():
            u, s, vh = torch.linalg.svd(w.detach().flatten(1).double(), full_matrices=False)
            root = s[:rank].sqrt()
            first.weight.copy_((root[:, None] * vh[:rank]).reshape_as(first.weight))
            second.weight.copy_((u[:, :rank] * root).reshape_as(second.weight))
            if has_bias:
                second.bias.copy_(module.bias)  # type: ignore[union-attr,arg-type]
    return LowRank(first, second, rank)


@register_technique("lowrank", LowRankConfig)
def lowrank(model: nn.Module, cfg: LowRankConfig) -> nn.Module:
    """Factorize ``model``'s layers (in place) and return it; factors stay trainable.

    Raises:
        ValueError: If the model is already pruned or quantized (apply this first).
    """
    return factorize_all(model, cfg.rank_ratio, init=True)


def factorize_all(model: nn.Module, rank_ratio: float, *, init: bool) -> nn.Module:
    """:func:`lowrank`; with ``init=False`` only the structure (for the size estimate)."""
    if any(weight_parametrizations(m) for m in model.modules()):
        raise ValueError(
            "lowrank must come before prune and quant: "
            "the model already has masks or fake quantization"
        )
    inside = {id(m) for f in model.modules() if isinstance(f, LowRank) for m in f.modules()}
    plan = [
        (name, m, rank_for(m, rank_ratio))
        for name, m in model.named_modules()
        if id(m) not in inside
    ]
    for name, module, rank in plan:
        if rank is not None:
            model = replace(model, name, factorize(module, rank, init=init))
    return model


def factorized_rank(model: nn.Module) -> dict[str, int]:
    """Path -> rank of each factorized layer: what the artifact needs to rebuild them."""
    return {name: m.rank for name, m in model.named_modules() if isinstance(m, LowRank)}


def replace(model: nn.Module, path: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``path`` in ``model``; returns the (possibly new) root."""
    if not path:
        return new
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent), child, new)
    return model


def _dims(module: nn.Module) -> tuple[int, int] | None:
    """``(out, in * K * K)`` of a factorizable layer, else ``None``.

    Exact types only: a subclass may compute differently (timm's ``Conv2dSame`` pads
    at run time; attention's ``out_proj`` is read by its parent, never called).
    """
    if type(module) is nn.Linear:
        return module.out_features, module.in_features
    if type(module) is nn.Conv2d and module.groups == 1:
        kh, kw = module.kernel_size
        return module.out_channels, module.in_channels * kh * kw
    return None
