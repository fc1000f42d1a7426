"""Where a trial trains (``train.device``) and at which precision (``train.precision``).

The choice is pure logic over what the process can see (CUDA devices, MPS, the GPU
ids Ray assigned), so it is tested without a GPU; :func:`select_device` feeds it the
live values. Under Ray, a trial's process sees only the GPUs Ray gave it (Ray sets
``CUDA_VISIBLE_DEVICES``), so ``cuda:N`` counts within those.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from nas.config import PRECISIONS, check_device_spec

__all__ = [
    "Placement",
    "autocast",
    "check_device_spec",
    "describe_device",
    "ray_gpu_ids",
    "resolve_device",
    "resolve_precision",
    "select_device",
]


@dataclass(frozen=True)
class Placement:
    """A resolved device and precision, and what to record about them."""

    device: str  # a torch device string: "cpu", "cuda:0", "mps"
    precision: str  # "fp32", "bf16" or "fp16"
    name: str  # the accelerator's name ("NVIDIA H200"), or "cpu"
    ray_gpu_ids: tuple[str, ...] = ()

    def tags(self) -> dict[str, str]:
        """What a trial's MLflow run records about where it ran."""
        out = {"device": self.device, "device_name": self.name, "precision": self.precision}
        if self.ray_gpu_ids:
            out["ray_gpu_ids"] = ",".join(self.ray_gpu_ids)
        return out


def resolve_device(
    spec: str, *, cuda_count: int, mps: bool, ray_gpu_ids: Sequence[str] = ()
) -> str:
    """The torch device ``spec`` names on a process that sees ``cuda_count`` GPUs.

    ``auto`` takes the GPU Ray assigned (the first visible one, as Ray narrows
    ``CUDA_VISIBLE_DEVICES`` to it), else the first visible GPU, else MPS, else the CPU.

    Raises:
        ValueError: ``spec`` names a device this process does not have (one line).
    """
    bad = check_device_spec(spec)
    if bad:
        raise ValueError(bad)
    if spec == "auto":
        if cuda_count > 0:
            return "cuda:0"
        return "mps" if mps else "cpu"
    if spec == "cpu":
        return "cpu"
    if spec == "mps":
        if not mps:
            raise ValueError("train.device=mps but this machine has no MPS device; use auto or cpu")
        return "mps"
    index = int(spec.split(":")[1]) if ":" in spec else 0
    if cuda_count == 0:
        where = (
            f"Ray assigned GPU ids {list(ray_gpu_ids)} but torch sees no CUDA device"
            if ray_gpu_ids
            else "this machine has no CUDA device (torch.cuda.is_available() is False)"
        )
        raise ValueError(f"train.device={spec} but {where}; use auto or cpu")
    if index >= cuda_count:
        within = " of the trial's (those Ray assigned)" if ray_gpu_ids else ""
        raise ValueError(
            f"train.device={spec} but only {cuda_count} CUDA device(s){within} are visible; "
            f"use cuda:0..cuda:{cuda_count - 1}"
        )
    return f"cuda:{index}"


def resolve_precision(spec: str, device: str, *, bf16_supported: bool) -> str:
    """The training precision: ``auto`` is fp32 on the CPU and bf16 on a GPU with bf16.

    bf16 on a GPU: it has fp32's range, so it needs no loss scaling, and its
    autocast keeps fake quantization's rounding in fp32 (compress casts there).
    ``scripts/gpu_check.sh`` measures fp32, bf16 and fp16 to confirm the choice.
    """
    if spec not in PRECISIONS:
        raise ValueError(f"train.precision={spec!r} is not one of {', '.join(PRECISIONS)}")
    if spec != "auto":
        if spec == "fp16" and device == "cpu":
            raise ValueError("train.precision=fp16 needs a GPU; on the CPU use bf16 or fp32")
        return spec
    if device.startswith("cuda") and bf16_supported:
        return "bf16"
    return "fp32"


def ray_gpu_ids() -> tuple[str, ...]:
    """The GPU ids Ray assigned to this process ([] outside Ray or without GPUs)."""
    if "ray" not in sys.modules:  # never import Ray just to ask
        return ()
    try:
        import ray

        if not ray.is_initialized():
            return ()
        return tuple(str(i) for i in ray.get_gpu_ids())
    except Exception:
        return ()


def select_device(spec: str, precision: str = "auto") -> Placement:
    """Resolve ``train.device`` and ``train.precision`` on this process.

    Raises:
        ValueError: a device this process lacks, or a bad precision (one line).
    """
    import torch

    ids = ray_gpu_ids()
    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    device = resolve_device(str(spec), cuda_count=cuda_count, mps=mps, ray_gpu_ids=ids)
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    prec = resolve_precision(str(precision), device, bf16_supported=bf16)
    return Placement(device, prec, describe_device(device), ids)


def describe_device(device: str) -> str:
    """A human name: the GPU's (``torch.cuda.get_device_name``), else the device type."""
    if device.startswith("cuda"):
        import torch

        return str(torch.cuda.get_device_name(torch.device(device)))
    return device


_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


@contextlib.contextmanager
def autocast(device: str, precision: str) -> Iterator[None]:
    """Mixed precision for the forward pass; a no-op at fp32."""
    if precision == "fp32":
        yield
        return
    import torch

    kind = device.split(":")[0]
    with torch.autocast(kind, dtype=getattr(torch, _DTYPES[precision])):
        yield
