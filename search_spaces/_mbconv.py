"""A MobileNetV2-style space of inverted-residual (MBConv) stages, built with timm.

The network is timm's :class:`~timm.models.efficientnet.EfficientNet` (stem, stages
of blocks, 1x1 head conv, pooling, classifier) fed by block strings that
:func:`~timm.models._efficientnet_builder.decode_arch_def` decodes, as in
MobileNetV2 (Sandler et al., 2018, https://arxiv.org/abs/1801.04381) and the
MnasNet/FBNet spaces built on it.

An architecture is::

    {"width_mult": 0.5, "depths": [1, 2, 2, 1], "kernels": [3, 3, 5, 3],
     "expansions": [1, 4, 4, 6]}

one entry per stage. Stage 1 is a depthwise-separable ``ds`` block, whose only
searched choice is its depth: its kernel is fixed at 3 (it runs at the highest
resolution, where a wider depthwise kernel costs the most latency) and it has no
expansion, recorded as 1 so the lists line up. Every other stage is ``ir`` blocks
with a searched depth, kernel and expansion. ``width_mult`` scales every channel
count, the stem included (timm's ``round_channels``, to multiples of 8); the head
width ``num_features`` is fixed.

Strides are not part of the architecture: ``build`` derives them from the image
size, so one arch serves MNIST (28 px), CIFAR (32 px) and ImageNet (224 px). timm's
stem always halves the input; then the stages halve it, in the order stage 2, 3,
4, 1, until one more halving would leave the last feature map under 4 px (28 px:
stem 2, stages (1, 2, 2, 1), 4x4 at the end; 224 px: every stage stride 2, 7x7;
8 px: stem only, 4x4). The last map is therefore 4-7 px for inputs of 8-224 px.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from timm.models._efficientnet_builder import decode_arch_def, round_channels
from timm.models.efficientnet import EfficientNet
from torch import nn

from search_spaces._configs import MBConvSpaceConfig
from search_spaces._registry import Arch, InputSpec, SearchSpace, Suggest, register_search_space

__all__ = ["MBConvSearchSpace", "MBConvSpaceConfig", "stage_strides"]

_DS_KERNEL = 3
_MIN_FINAL_SIZE = 4


class MBConvSearchSpace(SearchSpace):
    """Width, per-stage depth, kernel and expansion of a MobileNetV2-like network."""

    # Measured on mnist5k, 5 epochs at batch 128: 0.005 -> 0.874 test, 0.02 -> 0.947,
    # 0.04 -> 0.963, 0.08 -> 0.959 for a width-0.35 net (BatchNorm tolerates high rates).
    default_lr = 0.05
    # Narrower widths, shallower stages, smaller kernels and expansions are leading
    # slices of the largest network (search_spaces._supernet).
    nested = True

    def __init__(self, cfg: MBConvSpaceConfig) -> None:
        self.cfg = cfg

    @property
    def num_stages(self) -> int:
        return len(self.cfg.stage_channels)

    def sample(self, suggest: Suggest) -> Arch:
        cfg = self.cfg
        width_mult = float(suggest.suggest_categorical("width_mult", list(cfg.width_mults)))
        depths, kernels, expansions = [], [], []
        for s in range(1, self.num_stages + 1):
            depths.append(int(suggest.suggest_int(f"depth_s{s}", cfg.depth_min, cfg.depth_max)))
            if s == 1:
                kernels.append(_DS_KERNEL)
                expansions.append(1)
            else:
                kernels.append(int(suggest.suggest_categorical(f"kernel_s{s}", list(cfg.kernels))))
                expansions.append(
                    int(suggest.suggest_categorical(f"expansion_s{s}", list(cfg.expansions)))
                )
        return {
            "width_mult": width_mult,
            "depths": depths,
            "kernels": kernels,
            "expansions": expansions,
        }

    def build(self, arch: Arch, spec: InputSpec) -> nn.Module:
        return EfficientNet(
            block_args=decode_arch_def(self.block_strings(arch, spec.image_size)),
            num_classes=spec.num_classes,
            num_features=self.cfg.num_features,
            in_chans=spec.in_chans,
            stem_size=self.cfg.stem_size,
            round_chs_fn=partial(round_channels, multiplier=float(arch["width_mult"])),
        )

    def block_strings(self, arch: Arch, image_size: int) -> list[list[str]]:
        """timm's block strings of ``arch`` at ``image_size`` px, one stage per list.

        E.g. ``[["ds_r1_k3_s1_c16"], ["ir_r2_k3_s2_e4_c24"], ...]``, at ``width_mult``
        1.0 (timm scales the channels when it builds).
        """
        self._check_arch(arch)
        strides = stage_strides(image_size, self.num_stages)
        channels = self.cfg.stage_channels
        stages = zip(
            arch["depths"], arch["kernels"], arch["expansions"], strides, channels, strict=True
        )
        return [
            [_block_string(i, depth, kernel, expansion, stride, chs)]
            for i, (depth, kernel, expansion, stride, chs) in enumerate(stages)
        ]

    def extremes(self) -> tuple[Arch, Arch]:
        cfg, n = self.cfg, self.num_stages

        def corner(pick: Callable[[Sequence[Any]], Any]) -> Arch:
            return {
                "width_mult": float(pick(cfg.width_mults)),
                "depths": [pick([cfg.depth_min, cfg.depth_max])] * n,
                "kernels": [_DS_KERNEL] + [int(pick(cfg.kernels))] * (n - 1),
                "expansions": [1] + [int(pick(cfg.expansions))] * (n - 1),
            }

        return corner(min), corner(max)

    def _check_arch(self, arch: Arch) -> None:
        n = self.num_stages
        missing = {"width_mult", "depths", "kernels", "expansions"} - set(arch)
        if missing:
            raise ValueError(f"mbconv arch {arch!r} lacks keys {sorted(missing)}")
        for key in ("depths", "kernels", "expansions"):
            if len(arch[key]) != n:
                raise ValueError(
                    f"mbconv arch {key}={arch[key]!r} has {len(arch[key])} entries; "
                    f"this space has {n} stages"
                )
        if arch["kernels"][0] != _DS_KERNEL or arch["expansions"][0] != 1:
            raise ValueError(
                f"mbconv arch stage 1 is a ds block: kernel must be {_DS_KERNEL} and "
                f"expansion 1, got kernel {arch['kernels'][0]}, expansion {arch['expansions'][0]}"
            )
        if not all(int(d) >= 1 for d in arch["depths"]):
            raise ValueError(f"mbconv arch depths={arch['depths']!r}: each must be >= 1")
        if float(arch["width_mult"]) <= 0:
            raise ValueError(f"mbconv arch width_mult={arch['width_mult']!r}: must be positive")


@register_search_space("mbconv", config=MBConvSpaceConfig)
def _make_mbconv(cfg: MBConvSpaceConfig) -> SearchSpace:
    return MBConvSearchSpace(cfg)


def stage_strides(image_size: int, num_stages: int) -> list[int]:
    """Stride of each stage for ``image_size`` px inputs (after timm's stride-2 stem).

    Halves the map as often as it can while the last map stays at least 4 px, at
    most once per stage, stage 2 first and stage 1 last.

    Args:
        image_size: side of the (square) input, in pixels.
        num_stages: stages in the network.

    Returns:
        One stride (1 or 2) per stage.
    """
    if image_size < 1:
        raise ValueError(f"image_size={image_size}: must be >= 1")
    halvings, size = 0, _halve(image_size)  # the stem's
    while halvings < num_stages and _halve(size) >= _MIN_FINAL_SIZE:
        size, halvings = _halve(size), halvings + 1
    order = list(range(1, num_stages)) + [0]
    strides = [1] * num_stages
    for stage in order[:halvings]:
        strides[stage] = 2
    return strides


def _halve(size: int) -> int:
    # timm's symmetric padding makes a stride-2 conv with an odd kernel give ceil(size / 2).
    return (size + 1) // 2


def _block_string(
    stage: int, depth: int, kernel: int, expansion: int, stride: int, chs: int
) -> str:
    if stage == 0:
        return f"ds_r{int(depth)}_k{int(kernel)}_s{stride}_c{chs}"
    return f"ir_r{int(depth)}_k{int(kernel)}_s{stride}_e{int(expansion)}_c{chs}"
