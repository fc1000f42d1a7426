"""Config dataclasses of the built-in spaces: their searched ranges.

Kept apart from the model-building modules, which import torch and timm, so that
``nas.search`` can validate a command line before any heavy import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUILTIN_CONFIGS",
    "BUILTIN_MODULES",
    "FBNET_OPS",
    "FBNetSpaceConfig",
    "LENET5",
    "LENET_300_100",
    "MBConvSpaceConfig",
    "NESTED_SPACES",
    "TinySpaceConfig",
]

BUILTIN_MODULES: dict[str, str] = {
    "mbconv": "search_spaces._mbconv",
    "tiny": "search_spaces._tiny",
    "fbnet": "search_spaces._fbnet",
}
"""Built-in space name -> the module that registers its builder (imported on first use)."""

NESTED_SPACES: tuple[str, ...] = ("mbconv",)
"""Built-in spaces whose architectures nest in one weight-sharing supernet (their
``SearchSpace.nested``), listed here so a config is checked without importing torch."""

LENET_300_100: dict[str, Any] = {"kind": "mlp", "hidden": [300, 100]}
"""LeNet-300-100: 266,610 parameters on 28x28x1 inputs, 10 classes."""

LENET5: dict[str, Any] = {"kind": "cnn", "conv": [20, 50], "kernel": 5, "fc": [500]}
"""Caffe's LeNet-5: 431,080 parameters on 28x28x1 inputs, 10 classes."""

_KINDS = ("mlp", "cnn")


@dataclass
class MBConvSpaceConfig:
    """Ranges of the ``mbconv`` space (lists, so Hydra's ConfigStore can hold it).

    Attributes:
        width_mults: allowed global channel multipliers.
        depth_min: fewest blocks in a stage.
        depth_max: most blocks in a stage.
        kernels: allowed depthwise kernel sizes of the ``ir`` stages (odd).
        expansions: allowed expansion ratios of the ``ir`` stages.
        stage_channels: output channels of each stage at ``width_mult`` 1.0; the
            first stage is the ``ds`` stage.
        stem_size: stem channels at ``width_mult`` 1.0.
        num_features: channels of the 1x1 head conv before pooling (not scaled).
    """

    width_mults: list[float] = field(default_factory=lambda: [0.25, 0.35, 0.5, 0.75, 1.0])
    depth_min: int = 1
    depth_max: int = 3
    kernels: list[int] = field(default_factory=lambda: [3, 5])
    expansions: list[int] = field(default_factory=lambda: [2, 3, 4, 6])
    stage_channels: list[int] = field(default_factory=lambda: [16, 24, 40, 80])
    stem_size: int = 16
    num_features: int = 128

    def __post_init__(self) -> None:
        _check_choices("width_mults", self.width_mults, lambda w: w > 0, "positive")
        if not 1 <= self.depth_min <= self.depth_max:
            raise ValueError(
                f"depth_min={self.depth_min}, depth_max={self.depth_max}: "
                "need 1 <= depth_min <= depth_max"
            )
        _check_choices("kernels", self.kernels, lambda k: k > 0 and k % 2 == 1, "odd, positive")
        _check_choices("expansions", self.expansions, lambda e: e >= 1, ">= 1")
        _check_choices("stage_channels", self.stage_channels, lambda c: c > 0, "positive")
        if len(self.stage_channels) < 2:
            raise ValueError(
                f"stage_channels={list(self.stage_channels)}: need at least 2 stages "
                "(one ds stage, then ir stages)"
            )
        for name in ("stem_size", "num_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")


@dataclass
class TinySpaceConfig:
    """Ranges of the ``tiny`` space (lists, so Hydra's ConfigStore can hold it).

    Attributes:
        kinds: which families to sample from, of ``"mlp"`` and ``"cnn"``.
        mlp_layers_min: fewest hidden layers of an MLP.
        mlp_layers_max: most hidden layers of an MLP.
        mlp_widths: allowed widths of each MLP hidden layer.
        cnn_conv1_channels: allowed channels of the first conv.
        cnn_conv2_channels: allowed channels of the second conv.
        cnn_kernels: allowed conv kernel sizes (odd), shared by both convs.
        cnn_fc_layers_min: fewest hidden fully-connected layers after the convs.
        cnn_fc_layers_max: most hidden fully-connected layers after the convs.
        cnn_fc_widths: allowed widths of each such layer.
    """

    kinds: list[str] = field(default_factory=lambda: ["mlp", "cnn"])
    mlp_layers_min: int = 1
    mlp_layers_max: int = 3
    mlp_widths: list[int] = field(default_factory=lambda: [16, 32, 64, 100, 128, 256, 300])
    cnn_conv1_channels: list[int] = field(default_factory=lambda: [4, 8, 16, 20, 32])
    cnn_conv2_channels: list[int] = field(default_factory=lambda: [8, 16, 32, 50, 64])
    cnn_kernels: list[int] = field(default_factory=lambda: [3, 5])
    cnn_fc_layers_min: int = 0
    cnn_fc_layers_max: int = 1
    cnn_fc_widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 500])

    def __post_init__(self) -> None:
        if not self.kinds or any(k not in _KINDS for k in self.kinds):
            raise ValueError(f"kinds={list(self.kinds)}: choose one or more of {list(_KINDS)}")
        _check_range("mlp_layers", self.mlp_layers_min, self.mlp_layers_max, low=1)
        _check_range("cnn_fc_layers", self.cnn_fc_layers_min, self.cnn_fc_layers_max, low=0)
        for name in ("mlp_widths", "cnn_conv1_channels", "cnn_conv2_channels", "cnn_fc_widths"):
            values = list(getattr(self, name))
            if not values or any(v < 1 for v in values):
                raise ValueError(f"{name}={values}: give one or more positive values")
        if not self.cnn_kernels or any(k < 1 or k % 2 == 0 for k in self.cnn_kernels):
            raise ValueError(f"cnn_kernels={list(self.cnn_kernels)}: give odd positive sizes")


def _check_choices(name: str, values: Sequence[Any], ok: Callable[[Any], bool], what: str) -> None:
    if len(values) == 0:
        raise ValueError(f"{name} is empty: give at least one allowed value")
    bad = [v for v in values if not ok(v)]
    if bad:
        raise ValueError(f"{name}={list(values)}: values {bad} are not {what}")


def _check_range(name: str, low_value: int, high_value: int, *, low: int) -> None:
    if not low <= low_value <= high_value:
        raise ValueError(
            f"{name}_min={low_value}, {name}_max={high_value}: need {low} <= min <= max"
        )


FBNET_OPS: tuple[str, ...] = (
    "k3_e1",
    "k3_e1_g2",
    "k3_e3",
    "k3_e6",
    "k5_e1",
    "k5_e1_g2",
    "k5_e3",
    "k5_e6",
    "skip",
)
"""The 9 layer ops, in HW-NAS-Bench's index order."""
FBNET_NUM_LAYERS = 22
"""Searchable layers of the HW-NAS-Bench FBNet skeleton (1+4+4+4+4+4+1)."""


@dataclass
class FBNetSpaceConfig:
    """Ranges of the FBNet space.

    Attributes:
        ops: the op choices offered at every layer (a subset of ``FBNET_OPS``).
        num_layers: searchable layers; the HW-NAS-Bench macro-architecture fixes it at 22.
    """

    ops: list[str] = field(default_factory=lambda: list(FBNET_OPS))
    num_layers: int = FBNET_NUM_LAYERS

    def __post_init__(self) -> None:
        bad = [op for op in self.ops if op not in FBNET_OPS]
        if bad or not self.ops:
            raise ValueError(
                f"fbnet ops {bad or self.ops!r} invalid; allowed: a non-empty subset of "
                f"{', '.join(FBNET_OPS)}"
            )
        if self.num_layers != FBNET_NUM_LAYERS:
            raise ValueError(
                f"fbnet num_layers={self.num_layers} invalid; the macro-architecture has "
                f"exactly {FBNET_NUM_LAYERS} layers"
            )


BUILTIN_CONFIGS: dict[str, type[Any]] = {
    "mbconv": MBConvSpaceConfig,
    "tiny": TinySpaceConfig,
    "fbnet": FBNetSpaceConfig,
}
"""Config dataclass of each built-in space whose config lives here."""
