"""Structured (channel) pruning: whole filters are removed, so MACs drop and dense
kernels run faster (Li et al., 2017, "Pruning Filters for Efficient ConvNets").

The coupled layers that must lose the same channels (residual additions,
concatenations, depthwise convolutions, BatchNorms) are found by Torch-Pruning's
dependency graph (Fang et al., 2023, "DepGraph: Towards Any Structural Pruning");
each group keeps ``int((1 - ratio) * channels)`` of its channels, those of largest
L1 (or L2) magnitude. The per-layer channel counts depend only on the architecture and the
ratio, never on the weights, so :func:`compress.estimate_size_bytes` finds them by
pruning a copy of the untrained model. Models where they would (GhostNet's
sliced concatenation) are detected, by pruning a copy ranked at random, and refused.

The layers keep their types and are resized in place; :func:`resize` does the same
to a freshly built model when an artifact is loaded.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compress._params import remember_built_shapes, weight_parametrizations
from compress._registry import register_technique

__all__ = ["IMPORTANCES", "ChannelPruneConfig", "channel_prune", "resize"]

IMPORTANCES: tuple[str, ...] = ("l1", "l2")


@dataclass(frozen=True)
class ChannelPruneConfig:
    """Remove a fraction of the output channels of every prunable layer group.

    Attributes:
        ratio: Fraction of each group's channels removed, in ``[0, 1)``. The final
            classifier (the last ``Conv2d``/``Linear`` run) keeps its outputs.
        importance: ``"l1"`` or ``"l2"``: the norm of a channel's weights
            (summed over its coupled layers) that ranks it.
        input_shape: Shape of one example input, ``(1, C, H, W)``, to trace the
            model with. ``None`` takes timm's ``pretrained_cfg["input_size"]``;
            other models need it (a ``Flatten`` before a ``Linear`` makes the
            widths depend on the spatial size).
        round_to: Keep a multiple of this many channels in every group (rounding
            the kept count down; a group that would keep none is left whole), or
            ``None``. CPU kernels vectorize over channels in blocks of 8 (fp32
            AVX2) or 16 (int8), so odd widths such as 45 run barely faster than
            64; ``round_to=8`` turns the removed MACs into time saved.
    """

    ratio: float
    importance: str = "l1"
    input_shape: tuple[int, ...] | None = None
    round_to: int | None = None

    def __post_init__(self) -> None:
        r = self.ratio
        if isinstance(r, bool) or not isinstance(r, int | float) or not 0 <= r < 1:
            raise ValueError(f"ratio={r!r} is outside [0, 1)")
        if self.importance not in IMPORTANCES:
            raise ValueError(f"importance={self.importance!r} is not one of {IMPORTANCES}")
        shape = self.input_shape
        if shape is not None:
            ok = (
                isinstance(shape, Sequence)
                and not isinstance(shape, str)
                and len(shape) >= 2
                and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
            )
            if not ok:
                raise ValueError(
                    f"input_shape={shape!r} is not a shape of positive ints like (1, 3, 32, 32)"
                )
            object.__setattr__(self, "input_shape", tuple(shape))  # lists (Hydra) too
        rt = self.round_to
        if rt is not None and (isinstance(rt, bool) or not isinstance(rt, int) or rt < 1):
            raise ValueError(f"round_to={rt!r} is not a positive int or None")


@register_technique("channel_prune", ChannelPruneConfig)
def channel_prune(model: nn.Module, cfg: ChannelPruneConfig) -> nn.Module:
    """Remove channels from ``model`` (in place) and return it.

    Raises:
        ValueError: If the model is already pruned or quantized (apply this first),
            has no ``input_shape`` to trace with, or its pruned widths would depend on
            its weights.
    """
    if any(weight_parametrizations(m) for m in model.modules()):
        raise ValueError(
            "channel_prune must come before prune and quant: "
            "the model already has masks or fake quantization"
        )
    if cfg.ratio == 0:
        return model
    import torch_pruning as tp  # slow to import (~5 s); only pruning needs it

    was_training = model.training
    model.eval()  # tracing runs a forward pass: it must not update BatchNorm statistics
    try:
        param = next(model.parameters())
        x = torch.zeros(_input_shape(model, cfg), device=param.device, dtype=param.dtype)
        with torch.no_grad():
            order: list[nn.Module] = []
            hooks = [
                m.register_forward_hook(lambda m, i, o: order.append(m))
                for m in model.modules()
                if isinstance(m, nn.Conv2d | nn.Linear)
            ]
            try:
                out_shape = model(x).shape
            finally:
                for h in hooks:
                    h.remove()
        # The widths must not depend on the weights (the size estimate prunes an
        # untrained copy): a copy ranked at random must end up with the same shapes.
        # Index mappings through slices and some concatenations (GhostNet) break that.
        probe = copy.deepcopy(model)
        ignored = [probe.get_submodule(n) for n, m in model.named_modules() if m in order[-1:]]
        with torch.random.fork_rng(devices=[]):  # leave the caller's random stream alone
            torch.manual_seed(0)
            _prune(tp, probe, x, tp.importance.RandomImportance(), cfg, ignored)
        imp = tp.importance.MagnitudeImportance(p=1 if cfg.importance == "l1" else 2)
        remember_built_shapes(model)
        _prune(tp, model, x, imp, cfg, order[-1:])
        if _shapes(probe) != _shapes(model):
            raise ValueError(
                f"channel_prune cannot prune {type(model).__name__}: its pruned "
                "widths depend on the weights (e.g. GhostNet's sliced concatenation)"
            )
        with torch.no_grad():
            if model(x).shape != out_shape:  # the classifier was ignored; a bug otherwise
                raise RuntimeError(f"channel pruning changed the output shape {out_shape}")
    finally:
        model.train(was_training)
    return model


def _prune(
    tp: Any,
    model: nn.Module,
    x: torch.Tensor,
    imp: Any,
    cfg: ChannelPruneConfig,
    ignored: list[nn.Module],
) -> None:
    with warnings.catch_warnings():
        # Layer-scale vectors (ConvNeXt's gamma) are pruned along their only
        # non-singleton dimension, the channel one: what we want, not news.
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        pruner = tp.pruner.MetaPruner(
            model, x, imp, pruning_ratio=cfg.ratio, ignored_layers=ignored, round_to=cfg.round_to
        )
        pruner.step()


def _shapes(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def resize(model: nn.Module, shapes: dict[str, tuple[int, ...]], groups: dict[str, int]) -> None:
    """Give a built model's tensors ``shapes`` and its convs ``groups`` (values unset).

    The counterpart of pruning for loading: each named parameter or buffer is
    replaced by an empty one of the new shape, and the width attributes that
    Torch-Pruning updates (``out_channels``, ``num_features``...) follow.

    Raises:
        ValueError: If a ``groups`` entry does not fit its convolution.
    """
    owners: dict[str, nn.Module] = {}
    for name, shape in shapes.items():
        path, _, attr = name.rpartition(".")
        module = model.get_submodule(path)
        old = getattr(module, attr)
        new = torch.empty(shape, dtype=old.dtype, device=old.device)
        if attr in module._parameters:
            setattr(module, attr, nn.Parameter(new, requires_grad=old.requires_grad))
        else:
            module._buffers[attr] = new
        owners[path] = module
    for path, g in groups.items():
        conv = model.get_submodule(path)
        if not isinstance(conv, nn.Conv2d) or not 1 <= g <= conv.groups:
            raise ValueError(f"groups={g} for {path!r} does not fit the built model")
        conv.groups = g
        owners[path] = conv
    for path, module in owners.items():
        _fix_widths(path, module)


def _fix_widths(path: str, m: nn.Module) -> None:
    w: Any = getattr(m, "weight", None)
    if isinstance(m, nn.Conv2d):
        if w.shape[0] % m.groups:
            raise ValueError(f"{path}: {w.shape[0]} output channels in {m.groups} groups")
        m.out_channels, m.in_channels = w.shape[0], w.shape[1] * m.groups
    elif isinstance(m, nn.Linear):
        m.out_features, m.in_features = w.shape
    elif isinstance(m, nn.modules.batchnorm._NormBase):
        stat: Any = m.running_mean
        m.num_features = (w if w is not None else stat).shape[0]
    elif isinstance(m, nn.LayerNorm) and w is not None:
        m.normalized_shape = tuple(w.shape)
    elif isinstance(m, nn.GroupNorm) and w is not None:
        m.num_channels = w.shape[0]
    elif isinstance(m, nn.PReLU):
        m.num_parameters = w.shape[0]


def _input_shape(model: nn.Module, cfg: ChannelPruneConfig) -> tuple[int, ...]:
    if cfg.input_shape is not None:
        return cfg.input_shape
    pretrained = getattr(model, "pretrained_cfg", None) or {}
    size = pretrained.get("input_size") if isinstance(pretrained, dict) else None
    if size is None:
        raise ValueError(
            f"ChannelPruneConfig(input_shape=None) cannot trace "
            f"{type(model).__name__}: it has no timm pretrained_cfg; "
            "pass input_shape=(1, C, H, W)"
        )
    return (1, *size)
