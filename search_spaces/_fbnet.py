"""The FBNet search space as benchmarked by HW-NAS-Bench.

Wu et al., "FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable
Neural Architecture Search", CVPR 2019; the fixed macro-architecture and the
9-op layer choice are HW-NAS-Bench's CIFAR-100 setting (Li et al., "HW-NAS-Bench:
Hardware-Aware Neural Architecture Search Benchmark", ICLR 2021), for which
measured device latencies ship in ``nas/hw/data``.

An architecture is ``{"ops": [22 op names]}``: one op per searchable layer.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces._configs import FBNET_NUM_LAYERS, FBNET_OPS, FBNetSpaceConfig
from search_spaces._registry import Arch, InputSpec, SearchSpace, Suggest, register_search_space

__all__ = [
    "FBNET_OPS",
    "FBNetSpace",
    "FBNetSpaceConfig",
    "build_fbnet_layer",
    "fbnet_layer_shapes",
]


STEM_CHANNELS = 16
HEAD_CHANNELS = 1504
STAGE_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
STAGE_LAYERS = (1, 4, 4, 4, 4, 4, 1)
STAGE_STRIDES = (1, 1, 2, 2, 1, 2, 1)
NUM_LAYERS = sum(STAGE_LAYERS)
if NUM_LAYERS != FBNET_NUM_LAYERS:  # the config module states the same skeleton
    raise RuntimeError("FBNet stage layout and FBNET_NUM_LAYERS disagree")


class FBNetSpace(SearchSpace):
    """HW-NAS-Bench's FBNet space: a fixed 22-layer skeleton, one op choice per layer."""

    default_lr = 0.05  # BatchNorm after every conv, like mbconv

    def __init__(self, cfg: FBNetSpaceConfig) -> None:
        self.cfg = cfg

    def sample(self, suggest: Suggest) -> Arch:
        ops = [
            str(suggest.suggest_categorical(f"op_l{i + 1:02d}", list(self.cfg.ops)))
            for i in range(NUM_LAYERS)
        ]
        return {"ops": ops}

    def build(self, arch: Arch, spec: InputSpec) -> nn.Module:
        ops = list(arch["ops"])
        bad = [op for op in ops if op not in FBNET_OPS]
        if len(ops) != NUM_LAYERS or bad:
            raise ValueError(
                f"fbnet arch needs {NUM_LAYERS} ops from {', '.join(FBNET_OPS)}; "
                f"got {len(ops)} ops, unknown: {bad}"
            )
        return FBNet(ops, in_chans=spec.in_chans, num_classes=spec.num_classes)

    def extremes(self) -> tuple[Arch, Arch]:
        ranked = sorted(self.cfg.ops, key=_op_size)
        return {"ops": [ranked[0]] * NUM_LAYERS}, {"ops": [ranked[-1]] * NUM_LAYERS}


@register_search_space("fbnet", config=FBNetSpaceConfig)
def _make_fbnet(cfg: FBNetSpaceConfig) -> SearchSpace:
    return FBNetSpace(cfg)


def fbnet_layer_shapes(image_size: int = 32) -> list[tuple[int, int, int, int]]:
    """Per searchable layer: (in_channels, out_channels, stride, input spatial size)."""
    shapes = []
    cin, size = STEM_CHANNELS, image_size
    for cout, n, stage_stride in zip(STAGE_CHANNELS, STAGE_LAYERS, STAGE_STRIDES, strict=True):
        for j in range(n):
            stride = stage_stride if j == 0 else 1
            shapes.append((cin, cout, stride, size))
            size = (size - 1) // stride + 1
            cin = cout
    return shapes


def build_fbnet_layer(op: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """One searchable layer with op ``op`` (used by the model and by latency-model fitting)."""
    if op == "skip":
        if in_channels == out_channels and stride == 1:
            return nn.Identity()
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
    kernel, expansion, groups = _parse_op(op)
    return FBNetBlock(
        in_channels,
        out_channels,
        kernel_size=kernel,
        expansion=expansion,
        groups=groups,
        stride=stride,
    )


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: interleave the channels of ``groups`` groups."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)


class FBNetBlock(nn.Module):
    """FBNet's inverted-residual block, with optional grouped 1x1 convs + channel shuffle.

    1x1 conv (groups) to ``expansion * in`` + BN + ReLU, [shuffle], KxK depthwise
    conv (stride) + BN + ReLU, 1x1 conv (groups) to ``out`` + BN, and a residual
    add when the shape is kept. Follows FBNet's ``IRFBlock``, which shuffles
    after the first 1x1 conv; timm's ``ir`` block has no grouped-pointwise option.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        expansion: int,
        groups: int = 1,
        stride: int = 1,
    ) -> None:
        super().__init__()
        mid = in_channels * expansion
        self.conv_pw = nn.Conv2d(in_channels, mid, 1, groups=groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act1 = nn.ReLU(inplace=True)
        self.shuffle = ChannelShuffle(groups) if groups > 1 else None
        self.conv_dw = nn.Conv2d(
            mid, mid, kernel_size, stride=stride, padding=kernel_size // 2, groups=mid, bias=False
        )
        self.bn2 = nn.BatchNorm2d(mid)
        self.act2 = nn.ReLU(inplace=True)
        self.conv_pwl = nn.Conv2d(mid, out_channels, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.has_residual = in_channels == out_channels and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv_pw(x)))
        if self.shuffle is not None:
            y = self.shuffle(y)
        y = self.act2(self.bn2(self.conv_dw(y)))
        y = self.bn3(self.conv_pwl(y))
        return x + y if self.has_residual else y


class FBNet(nn.Module):
    """Stem, 22 searchable layers, 1x1 head conv, global average pool, classifier."""

    def __init__(self, ops: list[str], *, in_chans: int = 3, num_classes: int = 100) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, STEM_CHANNELS, 3, padding=1, bias=False),
            nn.BatchNorm2d(STEM_CHANNELS),
            nn.ReLU(inplace=True),
        )
        self.layers = nn.Sequential(
            *(
                build_fbnet_layer(op, cin, cout, stride)
                for op, (cin, cout, stride, _) in zip(ops, fbnet_layer_shapes(), strict=True)
            )
        )
        self.head = nn.Sequential(
            nn.Conv2d(STAGE_CHANNELS[-1], HEAD_CHANNELS, 1, bias=False),
            nn.BatchNorm2d(HEAD_CHANNELS),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(HEAD_CHANNELS, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


def _parse_op(op: str) -> tuple[int, int, int]:
    """``"k5_e1_g2"`` -> (kernel 5, expansion 1, groups 2)."""
    parts = op.split("_")
    groups = int(parts[2][1:]) if len(parts) > 2 else 1
    return int(parts[0][1:]), int(parts[1][1:]), groups


def _op_size(op: str) -> tuple[int, int, int]:
    """Sort key from smallest to largest op (skip first; then expansion, kernel, fewer groups)."""
    if op == "skip":
        return (0, 0, 0)
    kernel, expansion, groups = _parse_op(op)
    return (expansion, kernel, -groups)
