"""Weight quantization with a straight-through estimator, for quantization-aware
fine-tuning (Jacob et al., 2018; Bengio et al., 2013 for the estimator).

Integer bit-widths use per-output-channel symmetric min-max scales,
``scale_c = max|w_c| / (2^(bits-1) - 1)``, rounded to fp16 (clamped to its normal
range) so the artifact stores them in two bytes, exactly; 16 bits rounds the
weights to fp16; 32 is a no-op.
:func:`quantize_weight` and :func:`dequantize` are the single definition used by
both the forward pass and the exporter, so an exported model reloads bit-exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from compress._bits import BITS
from compress._params import is_target, original_weight, weight, weight_parametrizations
from compress._registry import register_technique

__all__ = [
    "FakeQuant",
    "QuantConfig",
    "dequantize",
    "effective_weight",
    "fake_quantize",
    "quantize",
    "quantize_weight",
]

_F16_NORMAL_MIN = 2.0**-14
_F16_MAX = 65504.0


@dataclass(frozen=True)
class QuantConfig:
    """Quantize the weights of every ``Conv2d`` and ``Linear``.

    Attributes:
        bits: One of :data:`BITS`: 2-8 integer per-channel symmetric, 16 fp16,
            32 leaves weights as they are.
    """

    bits: int

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or self.bits not in BITS:
            raise ValueError(f"bits={self.bits!r} is not one of {BITS}")


def quantize_weight(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes (as floats in ``[-qmax, qmax]``) and per-output-channel scales.

    An all-zero channel (fully pruned) gets scale 1 so its codes are 0, not NaN.
    Scales are fp16 values (held in ``weight``'s dtype): clamped to fp16's normal
    range first, so none overflows to inf or loses precision as a subnormal.
    """
    qmax = 2 ** (bits - 1) - 1
    amax = weight.abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    scale = scale.clamp(_F16_NORMAL_MIN, _F16_MAX).to(torch.float16).to(weight.dtype)
    codes = torch.clamp(torch.round(weight / scale), -qmax, qmax)
    return codes, scale


def dequantize(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Weights from codes and per-channel scales, as the fake-quant forward computes them."""
    return codes * scale


class _STEQuant(torch.autograd.Function):
    """Quantize in the forward pass; pass the gradient straight through."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor, bits: int) -> torch.Tensor:
        if bits == 16:
            return w.to(torch.float16).to(w.dtype)
        return dequantize(*quantize_weight(w, bits))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def fake_quantize(w: torch.Tensor, bits: int) -> torch.Tensor:
    """``w`` as the forward pass of a ``bits``-bit layer sees it, with a straight-through
    gradient: the functional form of :class:`FakeQuant` (32 returns ``w``)."""
    if bits == 32:
        return w
    out: torch.Tensor = _STEQuant.apply(w, bits)
    return out


class FakeQuant(nn.Module):
    """Parametrization: the weight the forward pass sees is the quantized weight."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _STEQuant.apply(w, self.bits)
        return out

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


@register_technique("quant", QuantConfig)
def quantize(model: nn.Module, cfg: QuantConfig) -> nn.Module:
    """Attach fake quantization to ``model``'s weights (in place) and return it.

    Quantizing again replaces the bit-width; ``bits=32`` changes nothing.
    """
    if cfg.bits == 32:
        return model
    for module in model.modules():
        if not is_target(module):
            continue
        fq = [p for p in weight_parametrizations(module) if isinstance(p, FakeQuant)]
        if fq:
            fq[0].bits = cfg.bits
        else:
            # Appended last, so it quantizes the already-masked weight.
            parametrize.register_parametrization(module, "weight", FakeQuant(cfg.bits))
    return model


def effective_weight(module: nn.Module) -> tuple[int, torch.Tensor, torch.Tensor | None]:
    """What the forward pass of a compressed layer uses, in storable form.

    Returns:
        ``(bits, values, scale)``: for integer bits, the float-valued codes and
        the per-channel scales; for 16, the fp16 weight; for 32, the fp32 weight
        and ``None``.
    """
    with torch.no_grad():
        plist = weight_parametrizations(module)
        if not plist:
            return 32, weight(module).detach().float(), None
        w = original_weight(module)
        for p in plist:
            if isinstance(p, FakeQuant):
                if p.bits == 16:
                    return 16, w.to(torch.float16), None
                codes, scale = quantize_weight(w, p.bits)
                return p.bits, codes, scale
            w = p(w)
        return 32, w.float(), None
