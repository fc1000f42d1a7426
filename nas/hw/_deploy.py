"""The deployed form of a compressed model on a machine that runs Python, and its latency.

A trained candidate carries its compression as parametrizations (masks, fake
quantization). What a device runs is different: the weights baked in, BatchNorm
folded, and at 8 bits real int8 kernels. Here the deployed form is an ONNX
Runtime CPU session (``compress.export_onnx``, ``compress.measure_onnx_latency_ms``):

- ``bits == 8``: ONNX Runtime static int8 (QDQ, per-channel int8 weights, uint8
  activations calibrated on ``calib`` inputs), fused into ``QLinearConv`` & co;
- any other bit-width: the dequantized fp32 model (ORT's CPU provider has no int2-6
  or fp16 kernels, so such weights run as fp32);
- unstructured sparsity: zeros stored in dense weights, dense kernels (no speed-up);
  structured pruning: the smaller model's real shapes.

The same runtime for both keeps int8 and fp32 comparable; timing PyTorch eager
against an ORT int8 session would measure the runtimes, not the bit-widths.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "HOST_KERNEL_BITS",
    "Bits",
    "bake",
    "deploys_int8",
    "export_deployed",
    "measure_deployed_ms",
    "time_onnx_ms",
]

Bits = int | Mapping[str, int]
"""One bit-width for every weight layer, or ``{layer name: bits}`` (others 32)."""

HOST_KERNEL_BITS = (8, 32)
"""Bit-widths with their own kernels in ONNX Runtime's CPU provider; others run as fp32."""

CALIBRATION_SAMPLES = 64
RANDOM_CALIBRATION_SAMPLES = 16


def bake(model: nn.Module) -> nn.Module:
    """A copy of ``model`` as deployed: parametrizations (masks, quantizers) baked in.

    ``model`` is left untouched. (``remove_parametrizations`` on a deep copy would not
    do: the copy shares its parametrized classes with the original, and removing
    deletes the property from the shared class.)
    """
    baked: dict[str, dict[str, torch.Tensor]] = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if parametrize.is_parametrized(module):
                tensors = list(module.parametrizations)
                baked[name] = {t: getattr(module, t).detach().clone() for t in tensors}
    out = copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if name not in baked:
            continue
        del module.parametrizations
        module.__class__ = type(module).__bases__[0]  # the class it had before parametrizing
        for t, value in baked[name].items():
            module.register_parameter(t, nn.Parameter(value, requires_grad=False))
    return out.eval()


def deploys_int8(bits: Bits) -> bool:
    """Whether a model at ``bits`` is deployed with int8 kernels: every given width is 8."""
    if isinstance(bits, Mapping):
        return bool(bits) and all(int(b) == 8 for b in bits.values())
    return int(bits) == 8


def export_deployed(
    model: nn.Module,
    path: str | Path,
    input_shape: Sequence[int],
    *,
    bits: Bits = 32,
    calib: torch.Tensor | None = None,
) -> Path:
    """Write ``model``'s deployed form as an ONNX file (int8 when ``deploys_int8(bits)``).

    ``calib``: int8 calibration inputs ``(N, C, H, W)`` (the first 64 are used);
    ``None``: 16 standard normal ones (a random model's latency does not depend on
    its activation ranges).
    """
    import compress

    shape = tuple(int(d) for d in input_shape)
    int8 = deploys_int8(bits)
    if int8 and calib is None:
        gen = torch.Generator().manual_seed(0)
        calib = torch.randn((RANDOM_CALIBRATION_SAMPLES, *shape[1:]), generator=gen)
    compress.export_onnx(
        bake(model),
        path,
        input_shape=shape,
        int8=int8,
        calibration=calib[:CALIBRATION_SAMPLES].float() if int8 and calib is not None else None,
    )
    return Path(path)


def time_onnx_ms(
    path: str | Path,
    input_shape: Sequence[int],
    *,
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 50,
    rounds: int = 1,
) -> tuple[float, float]:
    """``compress.measure_onnx_latency_ms`` ``rounds`` times (a fresh session each); the
    timing with the lowest median, the one least disturbed by other processes."""
    import compress

    return min(
        compress.measure_onnx_latency_ms(
            path, input_shape, threads=threads, warmup=warmup, repeats=repeats
        )
        for _ in range(max(1, rounds))
    )


def measure_deployed_ms(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    bits: Bits = 32,
    threads: int = 1,
    calib: torch.Tensor | None = None,
    warmup: int = 10,
    repeats: int = 50,
    rounds: int = 1,
    workdir: str | Path | None = None,
) -> tuple[float, float]:
    """Median ONNX Runtime latency of ``model``'s deployed form, and its spread (IQR / median).

    Args:
        model: the (trained, compressed) model; not modified.
        input_shape: full input shape including batch, normally ``(1, C, H, W)``.
        bits: the model's bit-width(s); int8 kernels when ``deploys_int8(bits)``.
        threads: ORT intra-op threads (one inter-op thread).
        calib: int8 calibration inputs (see ``export_deployed``).
        warmup, repeats: untimed and timed runs.
        rounds: time ``rounds`` times and keep the lowest median (``time_onnx_ms``).
        workdir: where the ``.onnx`` file goes; a temporary directory if ``None``.
    """
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = export_deployed(model, Path(tmp) / "m.onnx", input_shape, bits=bits, calib=calib)
        return time_onnx_ms(
            path, input_shape, threads=threads, warmup=warmup, repeats=repeats, rounds=rounds
        )
