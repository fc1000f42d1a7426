"""Per-layer cost features of a model, recorded with forward hooks on its leaf modules.

One forward pass at batch ``input_shape`` gives, for every layer that runs, its
operator kind, multiply-accumulates (MACs), activation elements read and written,
parameter count, kernel size and stride: the inputs of the latency model and of
MAC counting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["LAYER_KINDS", "LayerFeature", "count_macs", "layer_features"]

LAYER_KINDS: tuple[str, ...] = (
    "conv_full",
    "conv_pw",
    "conv_dw",
    "conv_group",
    "linear",
    "bn",
    "act",
    "pool",
    "shuffle",
    "identity",
    "other",
)
"""Operator kinds ``layer_features`` reports; ``identity`` layers cost nothing."""

_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.SiLU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.GELU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.Mish,
)
_POOLS = (
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.AvgPool2d,
    nn.MaxPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AvgPool1d,
    nn.MaxPool1d,
)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
_FREE = (nn.Identity, nn.Dropout, nn.Flatten, nn.Unflatten)


@dataclass(frozen=True)
class LayerFeature:
    """Cost features of one executed layer.

    Attributes:
        name: the module's qualified name in the model.
        kind: one of ``LAYER_KINDS``.
        macs: multiply-accumulates (convolutions and linear layers; 0 otherwise).
        input_elements: elements of the layer's (first) input tensor.
        output_elements: elements of its output tensor(s).
        params: parameters the layer owns.
        kernel_size: spatial kernel size (the larger side); 1 for non-spatial layers.
        stride: spatial stride (the larger side); 1 for non-spatial layers.
    """

    name: str
    kind: str
    macs: int
    input_elements: int
    output_elements: int
    params: int
    kernel_size: int = 1
    stride: int = 1


def layer_features(model: nn.Module, input_shape: Sequence[int]) -> list[LayerFeature]:
    """Run ``model`` once on zeros of ``input_shape`` and describe every executed layer.

    Hooks sit on leaf modules, plus normalisation layers that own sub-modules
    (timm's ``BatchNormAct2d`` keeps its activation as a child). A layer with
    parametrizations (pruning masks, fake quantization) counts as the plain layer
    it deploys as. Functional ops (residual adds, ``torch.flatten``) are not seen;
    their cost is small and the latency model absorbs it into the per-kind
    coefficients.

    Args:
        model: any module; it is run in eval mode and left in its original mode.
        input_shape: the full input shape including batch, e.g. ``(1, 3, 32, 32)``.

    Returns:
        One ``LayerFeature`` per call of a hooked module, in execution order.
    """
    feats: list[LayerFeature] = []
    handles = []
    for name, module in model.named_modules():
        if ".parametrizations." in f".{name}.":
            continue  # masks and fake quantizers compute a weight; they are not layers
        if _is_leaf(module) or isinstance(module, _NORMS):
            handles.append(module.register_forward_hook(_make_hook(name, feats)))
    was_training = model.training
    param = next(model.parameters(), None)
    x = torch.zeros(
        tuple(input_shape),
        device=param.device if param is not None else None,
        dtype=param.dtype if param is not None and param.is_floating_point() else None,
    )
    try:
        model.eval()
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return feats


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of convolutions and linear layers in one forward pass."""
    return sum(f.macs for f in layer_features(model, input_shape))


def _is_leaf(module: nn.Module) -> bool:
    """No children but its parametrizations: a pruned or quantized conv is still a leaf."""
    return all(n == "parametrizations" for n, _ in module.named_children())


def _make_hook(name: str, out: list[LayerFeature]) -> Callable[..., None]:
    def hook(module: nn.Module, inputs: tuple[object, ...], output: object) -> None:
        first = next((t for t in inputs if isinstance(t, torch.Tensor)), None)
        out.append(_describe(name, module, first, _numel(output)))

    return hook


def _describe(name: str, module: nn.Module, x: torch.Tensor | None, out_elems: int) -> LayerFeature:
    in_elems = x.numel() if x is not None else 0
    params = sum(p.numel() for p in module.parameters(recurse=False))
    chains = getattr(module, "parametrizations", None)  # a parametrized weight lives here
    if isinstance(chains, nn.ModuleDict):
        params += sum(
            p.numel()
            for chain in chains.values()
            for n, p in chain.named_parameters(recurse=False)
            if n == "original"
        )
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = max(module.kernel_size)
        stride = max(module.stride)
        groups = module.groups
        macs = out_elems * (module.in_channels // groups) * _prod(module.kernel_size)
        if groups == 1:
            kind = "conv_pw" if kernel == 1 else "conv_full"
        elif groups == module.in_channels and module.out_channels % groups == 0:
            kind = "conv_dw"
        else:
            kind = "conv_group"
        return LayerFeature(name, kind, macs, in_elems, out_elems, params, kernel, stride)
    if isinstance(module, nn.Linear):
        macs = out_elems * module.in_features
        return LayerFeature(name, "linear", macs, in_elems, out_elems, params)
    if isinstance(module, _POOLS):
        kernel, stride = _pool_geometry(module, x, out_elems)
        return LayerFeature(name, "pool", 0, in_elems, out_elems, params, kernel, stride)
    if isinstance(module, _NORMS):
        kind = "bn"
    elif isinstance(module, _ACTIVATIONS):
        kind = "act"
    elif isinstance(module, _FREE):
        kind = "identity"
    elif type(module).__name__ == "ChannelShuffle":
        kind = "shuffle"
    else:
        kind = "other"
    return LayerFeature(name, kind, 0, in_elems, out_elems, params)


def _pool_geometry(module: nn.Module, x: torch.Tensor | None, out_elems: int) -> tuple[int, int]:
    kernel = getattr(module, "kernel_size", None)
    if kernel is not None:
        k = max(kernel) if isinstance(kernel, tuple) else int(kernel)
        s = getattr(module, "stride", None) or k
        return k, max(s) if isinstance(s, tuple) else int(s)
    if x is not None and x.dim() >= 3 and out_elems:
        # Adaptive pooling: report the input extent as the kernel (global pool = whole map).
        return int(x.shape[-1]), int(x.shape[-1])
    return 1, 1


def _numel(output: object) -> int:
    if isinstance(output, torch.Tensor):
        return output.numel()
    if isinstance(output, (tuple, list)):
        return sum(_numel(o) for o in output)
    return 0


def _prod(values: Sequence[int]) -> int:
    result = 1
    for v in values:
        result *= int(v)
    return result
