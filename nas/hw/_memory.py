"""Peak activation memory of a network's execution schedule.

The model is traced with ``torch.fx``, shapes are propagated from a zero input,
and the graph is executed in its topological order in the bookkeeping: a tensor
is live from the node that produces it until its last user has run. The peak is
the largest total size of the live set over all steps, which is what an
inference runtime needs to hold at once if it frees every tensor as soon as
possible (the measure MCU-oriented work such as MCUNet, Lin et al., NeurIPS 2020,
budgets). Views (``view``, ``reshape``, ``flatten``, ...) and in-place ops alias
their input and add nothing. So do eval-mode batch norm, activations and dropout
applied to a tensor nobody else reads: deployment runtimes fold or fuse them into
the op that produced the tensor. Weights are not activations and are not counted.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from nas.hw._features import _ACTIVATIONS, layer_features

__all__ = ["peak_activation_bytes"]

_VIEW_METHODS = {
    "view",
    "reshape",
    "flatten",
    "unflatten",
    "squeeze",
    "unsqueeze",
    "permute",
    "transpose",
    "expand",
    "view_as",
    "size",
    "dim",
    "chunk",
    "split",
    "unbind",
    "narrow",
    "t",
}
_VIEW_FUNCTIONS = {
    torch.flatten,
    torch.reshape,
    torch.squeeze,
    torch.unsqueeze,
    torch.permute,
    torch.transpose,
    torch.chunk,
    torch.split,
    torch.unbind,
    torch.narrow,
    operator.getitem,
    getattr,
}
_FUSED_MODULES = (*_ACTIVATIONS, nn.modules.batchnorm._BatchNorm, nn.Dropout)
_FUSED_FUNCTIONS = {
    nn.functional.batch_norm,
    nn.functional.relu,
    nn.functional.relu6,
    nn.functional.silu,
    nn.functional.hardswish,
    nn.functional.hardsigmoid,
    nn.functional.gelu,
    nn.functional.dropout,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
}
_FUSED_METHODS = {"relu", "sigmoid", "tanh"}


def peak_activation_bytes(
    model: nn.Module, input_shape: Sequence[int], *, bytes_per_element: int = 4
) -> int:
    """Largest live set of activation tensors while running ``model`` once, in bytes.

    The input tensor counts as an activation (it is live until its last use).
    Models that ``torch.fx.symbolic_trace`` cannot trace (data-dependent control
    flow) fall back to a conservative estimate from forward hooks: the largest
    ``input + output`` of any leaf layer plus the largest single activation,
    standing for one tensor held by a skip connection. That bound is exact for
    plain chains and covers networks whose skips hold one tensor at a time.

    Args:
        model: the network; run in eval mode once, its mode is restored.
        input_shape: full input shape including batch, e.g. ``(1, 3, 32, 32)``.
        bytes_per_element: 4 for fp32, 1 for int8 deployment.

    Returns:
        Peak activation bytes.
    """
    was_training = model.training
    model.eval()
    try:
        try:
            graph = fx.symbolic_trace(model)
        except Exception:  # fx raises many types on untraceable Python
            return _hook_estimate(model, input_shape) * bytes_per_element
        with torch.inference_mode():
            ShapeProp(graph).propagate(torch.zeros(tuple(input_shape)))
        return _peak_elements(graph) * bytes_per_element
    finally:
        model.train(was_training)


def _peak_elements(graph: fx.GraphModule) -> int:
    nodes = list(graph.graph.nodes)
    order = {node: i for i, node in enumerate(nodes)}
    modules = dict(graph.named_modules())
    # Each node's output lives in a storage owned by itself or, for views and
    # in-place ops, by the node it aliases.
    owner: dict[fx.Node, fx.Node] = {}
    size: dict[fx.Node, int] = {}
    for node in nodes:
        base = _aliased_input(node, modules)
        if base is not None:
            owner[node] = owner[base]
        else:
            owner[node] = node
            # get_attr nodes are weights and buffers, not activations.
            weight = node.op == "get_attr"
            size[node] = 0 if weight else _tensor_elements(node.meta.get("tensor_meta"))
    last_use = {node: order[node] for node in nodes}
    for node in nodes:
        for user in node.users:
            root = owner[node]
            last_use[root] = max(last_use[root], order[user])
    peak = 0
    live = 0
    frees: dict[int, int] = {}
    for i, node in enumerate(nodes):
        if owner[node] is node and size[node]:
            live += size[node]
            frees[last_use[node]] = frees.get(last_use[node], 0) + size[node]
        peak = max(peak, live)
        live -= frees.pop(i, 0)
    return peak


def _aliased_input(node: fx.Node, modules: dict[str, nn.Module]) -> fx.Node | None:
    """The input node whose storage ``node``'s output shares, if any."""
    first = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
    if first is None:
        return None
    target = str(node.target)
    if node.op == "call_method" and (target in _VIEW_METHODS or target.endswith("_")):
        return first
    if node.op == "call_function" and (
        node.target in _VIEW_FUNCTIONS or node.kwargs.get("inplace", False)
    ):
        return first
    module = modules[target] if node.op == "call_module" else None
    if module is not None and (
        getattr(module, "inplace", False) is True or isinstance(module, (nn.Identity, nn.Flatten))
    ):
        return first
    fusable = (
        (module is not None and isinstance(module, _FUSED_MODULES))
        or (node.op == "call_function" and node.target in _FUSED_FUNCTIONS)
        or (node.op == "call_method" and node.target in _FUSED_METHODS)
    )
    # Fusing overwrites the input, so only when no other op still reads its data
    # (shape checks such as timm's ``x.ndim`` asserts return no tensor and do not count).
    readers = [u for u in first.users if u.meta.get("tensor_meta") is not None]
    if fusable and len(readers) == 1 and first.op != "placeholder":
        return first
    return None


def _tensor_elements(meta: object) -> int:
    if meta is None:
        return 0
    shape = getattr(meta, "shape", None)
    if shape is not None:
        return int(torch.Size(shape).numel())
    if isinstance(meta, (tuple, list)):
        return sum(_tensor_elements(m) for m in meta)
    if isinstance(meta, dict):
        return sum(_tensor_elements(m) for m in meta.values())
    return 0


def _hook_estimate(model: nn.Module, input_shape: Sequence[int]) -> int:
    feats = layer_features(model, input_shape)
    pairs = max((f.input_elements + f.output_elements for f in feats), default=0)
    largest = max((max(f.input_elements, f.output_elements) for f in feats), default=0)
    return pairs + largest
