"""Weight sharing: one set of weights, the largest architecture's, for every sub-network.

As in Once-for-All (Cai et al., 2020, ``elastic_nn/modules/dynamic_layers.py``), a
sub-network's weights are carved out of the largest network's: the leading output
and input channels (elastic width and expansion), the first blocks of each stage
(elastic depth) and the centre of each kernel (elastic kernel size, as BigNAS
crops it). Because every architecture of a nested space is built by the space's
own ``build``, a sub-network is a real, smaller module of exactly the structure a
candidate of the search has, and the weights of each of its tensors are a slice of
the tensor of the same name in the largest network.

- :meth:`SlicedSupernet.weights` gives those slices as views, so a training step
  run through ``torch.func.functional_call`` on :meth:`SlicedSupernet.shell` sends
  its gradients into the shared weights.
- :meth:`SlicedSupernet.extract` copies them into a new, independent module.
- :meth:`SlicedSupernet.sort_channels` reorders channels by importance, so that a
  narrower sub-network keeps the most important ones (OFA's
  ``re_organize_middle_weights``); the largest network computes the same function
  before and after.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from search_spaces._registry import Arch, InputSpec, SearchSpace

__all__ = ["SlicedSupernet", "slice_to"]

_SHELL_CACHE = 64


def slice_to(full: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """The leading slice of ``full`` of ``shape``; the spatial dims of a 4-d (conv)
    weight are cropped around their centre instead, so a 3x3 kernel is the middle of
    a 5x5 one. A view: gradients flow back into ``full``."""
    if full.dim() != len(shape):
        raise ValueError(f"cannot slice a {tuple(full.shape)} tensor to {tuple(shape)}")
    index: list[slice] = []
    for d, (have, want) in enumerate(zip(full.shape, shape, strict=True)):
        if want > have:
            raise ValueError(
                f"cannot slice a {tuple(full.shape)} tensor to {tuple(shape)}: "
                f"dim {d} has {have} < {want}"
            )
        start = (have - want) // 2 if full.dim() == 4 and d >= 2 else 0
        index.append(slice(start, start + want))
    return full[tuple(index)]


class SlicedSupernet:
    """The largest network of a nested space, and its sub-networks as slices of it.

    Args:
        space: a space whose architectures nest (each is a slice of the largest one):
            ``mbconv``'s do; the space's ``extremes()`` gives the largest.
        spec: the input the networks are built for.
    """

    def __init__(self, space: SearchSpace, spec: InputSpec) -> None:
        self.space, self.spec = space, spec
        self.smallest, self.largest = space.extremes()
        self.model = space.build(self.largest, spec)
        self._shells: OrderedDict[str, nn.Module] = OrderedDict()

    def shell(self, arch: Arch) -> nn.Module:
        """The module of ``arch``, whose own parameters are never used (a few are cached)."""
        # On the shared weights' device: functional_call takes the shell's buffers
        # (BatchNorm statistics) as they are.
        device = next(self.model.parameters()).device
        key = repr((sorted(arch.items()), str(device)))
        shell = self._shells.pop(key, None)
        if shell is None:
            shell = self.space.build(arch, self.spec).to(device)
            for p in shell.parameters():
                p.requires_grad_(False)
        self._shells[key] = shell
        while len(self._shells) > _SHELL_CACHE:
            self._shells.popitem(last=False)
        return shell

    def weights(self, arch: Arch, shell: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """The parameters of ``arch`` as views of the shared ones (for ``functional_call``)."""
        shell = shell if shell is not None else self.shell(arch)
        full = dict(self.model.named_parameters())
        return {name: slice_to(full[name], p.shape) for name, p in shell.named_parameters()}

    def extract(self, arch: Arch) -> nn.Module:
        """A new module of ``arch`` with its parameters and buffers copied out."""
        sub = self.space.build(arch, self.spec)
        full = self.model.state_dict()
        with torch.no_grad():
            for name, t in sub.state_dict().items():
                t.copy_(slice_to(full[name], t.shape))
        return sub

    def parameters(self) -> Any:
        return self.model.parameters()

    def sort_channels(self) -> None:
        """Reorder channels by importance (the L1 norm of the weights that produce or
        read them), most important first, without changing the largest network's
        function: each permutation is applied to every tensor that shares the channels."""
        with torch.no_grad():
            for group in _channel_groups(self.model):
                group.sort()


class _Group:
    """Channels that must be permuted together: where they are written and read."""

    def __init__(self) -> None:
        # (tensor, dim): rows/entries that produce the channels, and those that read them.
        self.producers: list[tuple[torch.Tensor, int]] = []
        self.consumers: list[tuple[torch.Tensor, int]] = []
        # Importance: the L1 norm along these (weights that read the channels).
        self.importance: list[tuple[torch.Tensor, int]] = []

    def sort(self) -> None:
        score = sum(_l1(t, dim) for t, dim in self.importance)
        if not isinstance(score, torch.Tensor):
            return
        order = torch.argsort(score, descending=True, stable=True)
        for t, dim in self.producers + self.consumers:
            t.copy_(t.index_select(dim, order))


def _l1(t: torch.Tensor, dim: int) -> torch.Tensor:
    dims = [d for d in range(t.dim()) if d != dim]
    norm = t.abs().sum(dim=dims) if dims else t.abs()
    return norm / norm.sum().clamp_min(1e-12)


def _bn(bn: Any) -> list[tuple[torch.Tensor, int]]:
    return [(t, 0) for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)]


def _channel_groups(model: Any) -> list[_Group]:
    """The channel groups of a timm EfficientNet: the middle (expanded) channels of each
    inverted residual, and the channels between blocks, which a residual ties
    across the blocks of a stage (and the stem to a first block with a skip)."""
    groups: list[_Group] = []
    between = _Group()  # the stem's output channels
    between.producers += [(model.conv_stem.weight, 0), *_bn(model.bn1)]
    for stage in model.blocks:
        for block in stage:
            if hasattr(block, "conv_pwl"):  # inverted residual: in -> mid -> out
                between.consumers.append((block.conv_pw.weight, 1))
                between.importance.append((block.conv_pw.weight, 1))
                mid = _Group()
                mid.producers += [(block.conv_pw.weight, 0), *_bn(block.bn1)]
                mid.consumers += [(block.conv_dw.weight, 0), *_bn(block.bn2)]
                mid.consumers.append((block.conv_pwl.weight, 1))
                mid.importance.append((block.conv_pwl.weight, 1))
                groups.append(mid)
                last_conv, last_bn = block.conv_pwl, block.bn3
            else:  # depthwise separable: in (depthwise) -> out
                between.consumers += [(block.conv_dw.weight, 0), *_bn(block.bn1)]
                between.consumers.append((block.conv_pw.weight, 1))
                between.importance.append((block.conv_pw.weight, 1))
                last_conv, last_bn = block.conv_pw, block.bn2
            if not block.has_skip:
                groups.append(between)
                between = _Group()
            between.producers += [(last_conv.weight, 0), *_bn(last_bn)]
    between.consumers.append((model.conv_head.weight, 1))
    between.importance.append((model.conv_head.weight, 1))
    groups.append(between)
    return groups
