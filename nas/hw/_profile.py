"""Hardware profiles at run time: how to get a candidate's latency and peak memory.

A profile config (the Hydra ``hw`` group) names a latency *method* from the
registry below — ``"measure"`` times the model's deployed form here (on the CPU:
ONNX Runtime, real int8 kernels at 8 bits, fp32 otherwise, ``nas.hw._deploy``; with
``device: cuda`` or ``cuda:N``: the baked fp32 PyTorch model on that GPU, timed by CUDA
events, ``nas.hw._measure``), at the profile's ``batch_size``; ``"predict"``
uses a fitted ``LatencyPredictor``, ``"none"`` has no latency — plus the budgets
and deployment facts (bit-widths searched, bytes per activation element, threads,
whether unstructured sparsity is faster). Every method takes the model with its
real shapes (structured pruning already applied), its bit-width(s) and its
unstructured sparsity.
``HardwareModel`` turns such a config into the two numbers a trial needs.
A profile may also carry ``profile``, the path of a device profile JSON (written by
``python -m nas.calibrate_hw`` or ``python -m nas.profile_hw``) whose predictor is
used instead of a shipped one (``+hw=custom hw.profile=my_device.json``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import nn

from nas.config import DEFAULT_ENERGY_TABLE, MEASURE_DEVICE_SPEC, hw_profile_path
from nas.hw._deploy import HOST_KERNEL_BITS, Bits, bake, measure_deployed_ms
from nas.hw._device_profile import read_device_profile
from nas.hw._energy import EnergyBreakdown, energy_breakdown, read_energy_table
from nas.hw._measure import measure_latency_ms
from nas.hw._memory import peak_activation_bytes
from nas.hw._methods import LATENCY_METHODS
from nas.hw._predictor import LatencyPredictor

__all__ = [
    "HardwareModel",
    "deployed_latency_ms",
    "HardwareProfile",
    "LatencyMethod",
    "list_latency_methods",
    "register_latency_method",
]


class HardwareProfile(Protocol):
    """What ``HardwareModel`` reads from a profile config (a dataclass or DictConfig)."""

    name: str
    latency: str
    predictor: str | None
    latency_budget_ms: float | None
    size_budget_bytes: int | None
    peak_memory_budget_bytes: int | None
    bits: list[int]
    activation_bytes: int
    threads: int


class LatencyMethod(Protocol):
    """``(hw, model, input_shape, *, bits, sparsity) -> ms``, registered by name."""

    def __call__(
        self,
        hw: HardwareModel,
        model: nn.Module,
        input_shape: Sequence[int],
        *,
        bits: Bits,
        sparsity: float,
    ) -> float: ...


def register_latency_method(name: str) -> Callable[[LatencyMethod], LatencyMethod]:
    """Register a latency method under ``name`` (the profile's ``latency`` value)."""
    return LATENCY_METHODS.register(name)


def list_latency_methods() -> list[str]:
    """Names of the registered latency methods, sorted."""
    return LATENCY_METHODS.names()


class HardwareModel:
    """Latency and peak memory of models on one hardware profile.

    Built once per search from the profile config; the predictor, if any, is
    loaded here so a bad device name fails at start-up, not in a trial. So is a
    measuring profile's ``device`` (``cpu``, ``cuda``, ``cuda:N``; read only when
    ``latency: measure``): a GPU this machine does not have is refused here.
    """

    def __init__(self, profile: HardwareProfile) -> None:
        if profile.latency not in LATENCY_METHODS:
            raise ValueError(
                f"hw profile {profile.name!r}: latency={profile.latency!r} unknown; "
                f"allowed: {', '.join(list_latency_methods())}"
            )
        if profile.activation_bytes < 1 or profile.threads < 1:
            raise ValueError(
                f"hw profile {profile.name!r}: activation_bytes={profile.activation_bytes} and "
                f"threads={profile.threads} must both be >= 1"
            )
        self.profile = profile
        self.batch_size = int(getattr(profile, "batch_size", 1))
        if self.batch_size < 1:
            raise ValueError(
                f"hw profile {profile.name!r}: batch_size={self.batch_size} must be >= 1"
            )
        self.device = (
            _measure_device(str(getattr(profile, "device", "cpu")), profile.name)
            if profile.latency == "measure"
            else torch.device("cpu")
        )
        """Where a measured latency is taken; the CPU unless ``latency: measure``."""
        self.predictor: LatencyPredictor | None = None
        table = str(getattr(profile, "energy_table", None) or DEFAULT_ENERGY_TABLE)
        self.energy_table = read_energy_table(hw_profile_path(table))
        """The per-operation energy table of ``hw.energy_table`` (read here: a bad one
        is refused at start-up)."""
        profile_file = getattr(profile, "profile", None)
        if profile.latency == "predict" and profile_file:
            self.predictor = read_device_profile(hw_profile_path(profile_file))
        elif profile.latency == "predict":
            if not profile.predictor:
                raise ValueError(
                    f"hw profile {profile.name!r}: latency='predict' needs predictor= a device "
                    "key or profile= a device profile JSON"
                )
            try:
                self.predictor = LatencyPredictor.load(profile.predictor)
            except KeyError as err:
                raise ValueError(f"hw profile {profile.name!r}: {err.args[0]}") from None

    @property
    def sparse_speedup(self) -> bool:
        """Whether unstructured sparsity makes this device faster (``hw.sparse_speedup``)."""
        return bool(getattr(self.profile, "sparse_speedup", False))

    @property
    def kernel_bits(self) -> list[int]:
        """Bit-widths with their own kernels here; the others run dequantized as fp32."""
        if self.profile.latency == "measure":
            # On a GPU the baked model runs as fp32 PyTorch: no low-bit kernels.
            return list(HOST_KERNEL_BITS) if self.device.type == "cpu" else [32]
        if self.predictor is not None:
            return self.predictor.kernel_bits
        return []

    def latency_ms(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        *,
        bits: Bits = 32,
        sparsity: float = 0.0,
    ) -> float:
        """Latency in ms, measured or predicted; ``nan`` when the profile has none.

        Predicted: at batch 1. Measured: one pass over a batch of ``batch_size``
        (``input_shape``'s batch dimension replaced), on ``device``.

        Args:
            model: the network with its real shapes (channel pruning, low rank applied).
            input_shape: full input shape including batch, e.g. ``(1, 1, 28, 28)``.
            bits: the weight bit-width, or ``{weight layer name: bits}`` (others 32).
                Widths in ``kernel_bits`` run on their own kernels (int8 on ORT here);
                the others as dequantized fp32.
            sparsity: unstructured weight sparsity; speeds nothing up unless the
                profile has ``sparse_speedup``.
        """
        if not 0.0 <= float(sparsity) < 1.0:
            raise ValueError(f"sparsity={sparsity} is outside [0, 1)")
        method = LATENCY_METHODS.get(self.profile.latency)
        return method(self, model, input_shape, bits=bits, sparsity=float(sparsity))

    def peak_memory_bytes(self, model: nn.Module, input_shape: Sequence[int]) -> int:
        """Peak activation memory at the profile's bytes per activation element."""
        return peak_activation_bytes(
            model, input_shape, bytes_per_element=self.profile.activation_bytes
        )

    def energy(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        *,
        bits: int = 32,
        sparsity: float = 0.0,
        peak_memory_bytes: float | None = None,
    ) -> EnergyBreakdown:
        """Modelled energy of one inference (``.total_uj``), from the profile's energy
        table, bytes per activation and ``sparse_speedup`` (``nas.hw._energy`` says what
        it counts). A model, not a measurement; known before training, since it depends
        only on shapes, bits and sparsity.

        Args:
            peak_memory_bytes: :meth:`peak_memory_bytes` of ``model``, if already known.
        """
        return energy_breakdown(
            model,
            input_shape,
            table=self.energy_table,
            bits=int(bits),
            sparsity=float(sparsity),
            activation_bytes=int(self.profile.activation_bytes),
            sparse_speedup=self.sparse_speedup,
            peak_memory_bytes=peak_memory_bytes,
        )


def _measure_device(device: str, name: str) -> torch.device:
    """``hw.device`` as a ``torch.device``; ``ValueError`` when this machine lacks it."""
    if not MEASURE_DEVICE_SPEC.match(device):
        raise ValueError(f"hw profile {name!r}: device={device!r} is not one of cpu, cuda, cuda:N")
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(
            f"hw.device={device} but this machine has no CUDA device to measure latency on "
            f"(hw profile {name!r}); use hw.device=cpu, or hw.latency=predict"
        )
    index = int(device.partition(":")[2] or torch.cuda.current_device())
    if index >= torch.cuda.device_count():
        raise ValueError(
            f"hw.device={device} but this machine has {torch.cuda.device_count()} CUDA "
            f"device(s) (hw profile {name!r}); use cuda:0 .. cuda:{torch.cuda.device_count() - 1}"
        )
    return torch.device("cuda", index)


def _measured_ms(
    hw: HardwareModel,
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    bits: Bits,
    calib: torch.Tensor | None = None,
) -> float:
    # Dense kernels: unstructured zeros are stored and multiplied like any weight.
    shape = (hw.batch_size, *input_shape[1:])
    if hw.device.type == "cuda":
        # The deployed weights (masks, fake quantization baked in), in fp32 eager PyTorch.
        median_ms, _ = measure_latency_ms(bake(model), shape, device=hw.device)
    else:
        median_ms, _ = measure_deployed_ms(
            model, shape, bits=bits, threads=hw.profile.threads, calib=calib
        )
    return median_ms


@register_latency_method("measure")
def _measure(
    hw: HardwareModel, model: nn.Module, input_shape: Sequence[int], *, bits: Bits, sparsity: float
) -> float:
    return _measured_ms(hw, model, input_shape, bits=bits)


@register_latency_method("predict")
def _predict(
    hw: HardwareModel, model: nn.Module, input_shape: Sequence[int], *, bits: Bits, sparsity: float
) -> float:
    assert hw.predictor is not None  # set in __init__ for this method
    return hw.predictor.predict_ms(
        model, input_shape, bits=bits, sparsity=sparsity, sparse_speedup=hw.sparse_speedup
    )


@register_latency_method("none")
def _none(
    hw: HardwareModel, model: nn.Module, input_shape: Sequence[int], *, bits: Bits, sparsity: float
) -> float:
    return math.nan


def deployed_latency_ms(
    hw: HardwareModel,
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    bits: Bits = 32,
    sparsity: float = 0.0,
    calib: torch.Tensor | None = None,
) -> float:
    """Latency of a trained, compressed model as deployed on ``hw``'s device, in ms.

    Call it after training. ``latency: measure`` profiles time the deployed form here
    at the profile's ``batch_size`` (on the CPU ``measure_deployed_ms``: real int8 ONNX
    Runtime kernels at 8 bits, fp32 otherwise, calibrated on ``calib``, e.g. a few
    hundred training images; on ``device: cuda`` the baked fp32 model, CUDA events);
    ``predict`` profiles predict it from the model's real shapes, bit-width and
    sparsity (``HardwareModel.latency_ms``); ``none`` gives ``nan``.
    """
    if hw.profile.latency == "measure":
        return _measured_ms(hw, model, input_shape, bits=bits, calib=calib)
    return hw.latency_ms(model, input_shape, bits=bits, sparsity=sparsity)
