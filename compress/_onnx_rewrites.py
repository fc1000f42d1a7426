"""Exact float rewrites of an ONNX graph that let ONNX Runtime pick its fast int8 kernels.

Plain static QDQ runs ResNet-18 about 2.5x faster than fp32 on an AVX-512 VNNI CPU
(1 thread, batch 1), but timm's ``mobilenetv3_small_050`` at 0.6x. ORT's profiler
shows why: (1) MLAS's fast symmetric int8 convolutions (the VNNI/AVX2 "ConvSym"
kernels) need a depthwise conv's channels to be a multiple of 16 and a regular conv's
input channels a multiple of 4, so the 40/56/72-channel depthwise convs and the RGB
stem fall back to a generic kernel 3-4x slower than fp32 NCHWc; (2) ORT has no int8
HardSwish/HardSigmoid, so each costs a dequantize, a float op and a quantize pass (fp32
fuses them into the conv); (3) the squeeze-excite ``ReduceMean`` runs in float. Keeping
those parts in float is worse (a float conv between int8 ones adds layout transposes).

So :func:`rewrite_for_int8` rewrites the float graph into an equivalent one (same
outputs) that maps onto fast int8 kernels: channels padded with zero weights to those
multiples, ``ReduceMean`` over H, W as ``GlobalAveragePool``, and ``HardSigmoid(x)`` as
``alpha * clip(x + beta/alpha, 0, 1/alpha)`` (the Add folded into a conv bias where it
can be, the Clip into the int8 range). After quantization, :func:`fold_scale_muls`
folds the Mul into the scale of the next ``DequantizeLinear``, so a HardSwish costs one
int8 Add and one int8 Mul. ORT has int8 Add, Mul and GlobalAveragePool.
``scripts/bench_int8.py`` measures both graphs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["fold_scale_muls", "rewrite_for_int8"]

_PAD_DEPTHWISE = 16
_PAD_INPUT = 4
_SCALE_TAG = "_dsz_scale"  # suffix of the Mul nodes folded away after quantization
_ACTIVATIONS = {"Relu", "Clip", "HardSigmoid", "HardSwish", "Sigmoid", "LeakyRelu", "Identity"}
_CHANNELWISE = _ACTIVATIONS | {"Mul", "Add", "GlobalAveragePool", "ReduceMean"}


def rewrite_for_int8(proto: Any) -> Any:
    """``proto`` rewritten (in place, and shapes inferred again) for ORT's int8 kernels.

    The float function is kept: padded channels have zero weights, and the other
    rewrites are identities.
    """
    import onnx

    _pad_channels(proto.graph, _PAD_DEPTHWISE)
    _pad_first_conv(proto.graph)
    _spatial_mean_to_gap(proto.graph)
    _split_hardsigmoid(proto.graph)
    del proto.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(proto)


def fold_scale_muls(proto: Any) -> Any:
    """Remove the tagged ``Mul`` by a constant: ``Q -> DQ -> Mul(a) -> Q -> DQ`` becomes
    ``Q -> DQ(scale * a)``: the int8 codes are kept, only what they stand for changes."""
    g = proto.graph
    gr = _Graph(g)
    for m in [n for n in g.node if n.op_type == "Mul" and n.name.endswith(_SCALE_TAG)]:
        _fold_scale_mul(gr, m)
    _drop_unused(g)
    return proto


class _Graph:
    """Index of a graph's initializers, producers and consumers (rebuilt as it changes)."""

    def __init__(self, g: Any) -> None:
        self.g = g
        self.inits = {i.name: i for i in g.initializer}
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list[Any]] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in g.output}

    def array(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        return numpy_helper.to_array(self.inits[name])

    def set_input(self, node: Any, k: int, value: np.ndarray) -> None:
        """Give ``node``'s ``k``-th input (an initializer) ``value``, unsharing it if shared."""
        from onnx import numpy_helper

        name = node.input[k]
        new = numpy_helper.from_array(value.astype(self.array(name).dtype), name)
        if len(self.consumers[name]) > 1:  # exporters deduplicate equal initializers
            self.consumers[name].remove(node)
            new.name = f"{name}_dsz{len(self.inits)}"
            self.g.initializer.append(new)
            self.inits[new.name] = self.g.initializer[-1]
            self.consumers[new.name] = [node]
            node.input[k] = new.name
        else:
            self.inits[name].CopyFrom(new)

    def add_init(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.g.initializer.append(numpy_helper.from_array(value, name))
        self.inits[name] = self.g.initializer[-1]
        return name


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _conv_kind(gr: _Graph, n: Any) -> str:
    """``"dense"`` (group 1), ``"depthwise"``, or ``""`` for other nodes and grouped convs."""
    if n.op_type != "Conv" or any(i and i not in gr.inits for i in n.input[1:]):
        return ""
    w = gr.inits[n.input[1]].dims
    group = _attr(n, "group", 1)
    if group == 1:
        return "dense"
    return "depthwise" if group == w[0] and w[1] == 1 else ""


# --- depthwise channels to a multiple of 16 ----------------------------------------------


def _pad_channels(g: Any, align: int) -> None:
    """Pad each depthwise conv, and the channel-wise ops around it, to a multiple of
    ``align`` channels.

    The region is every tensor that carries those channels: from the dense convs that
    produce them (zero output filters added) to the dense convs that consume them (zero
    input weights added), through channel-wise ops only; else it is left alone.
    """
    gr = _Graph(g)
    for conv in list(g.node):
        if _conv_kind(gr, conv) != "depthwise":
            continue
        pad = -gr.inits[conv.input[1]].dims[0] % align
        region = _Region(gr)
        if pad and region.walk(conv.input[0]):
            _pad_region(region, pad)


def _pad_region(region: _Region, pad: int) -> None:
    """Add ``pad`` zero channels: output filters of the producing dense convs and of the
    depthwise convs in between (their groups too), input weights of the consuming ones."""
    gr = region.gr
    producers, middle = list(region.producers.values()), list(region.middle.values())
    for n in producers + [n for n in middle if _conv_kind(gr, n) == "depthwise"]:
        gr.set_input(n, 1, np.pad(gr.array(n.input[1]), [(0, pad), (0, 0), (0, 0), (0, 0)]))
        if len(n.input) > 2 and n.input[2]:
            gr.set_input(n, 2, np.pad(gr.array(n.input[2]), (0, pad)))
        if n in middle:
            for a in n.attribute:
                if a.name == "group":
                    a.i += pad
    for n in region.consumers.values():
        gr.set_input(n, 1, np.pad(gr.array(n.input[1]), [(0, 0), (0, pad), (0, 0), (0, 0)]))


class _Region:
    """A walk over the tensors that carry the same channels as a start tensor.

    From each tensor it goes back to its producer and on to its consumers: a dense conv
    ends the walk on that side, a channel-wise node is entered (the middle), anything
    else (a graph output, a reshape, ...) makes the region unsafe to pad.
    """

    def __init__(self, gr: _Graph) -> None:
        self.gr = gr
        self.todo: list[str] = []
        self.producers: dict[int, Any] = {}
        self.middle: dict[int, Any] = {}
        self.consumers: dict[int, Any] = {}

    def walk(self, start: str) -> bool:
        """Whether the region around ``start`` is closed by dense convs on both sides."""
        seen: set[str] = set()
        self.todo.append(start)
        while self.todo:
            t = self.todo.pop()
            if t in seen:
                continue
            seen.add(t)
            if not (self._back(t) and self._forward(t)):
                return False
        return bool(self.producers) and not set(self.producers) & set(self.consumers)

    def _back(self, t: str) -> bool:
        gr = self.gr
        if t in gr.outputs or t not in gr.producer:
            return False
        p = gr.producer[t]
        if _conv_kind(gr, p) == "dense":
            self.producers[id(p)] = p
        elif _channelwise(gr, p):
            self._enter(p)
        else:
            return False
        return True

    def _forward(self, t: str) -> bool:
        gr = self.gr
        for q in gr.consumers.get(t, []):
            kind = _conv_kind(gr, q)
            if kind == "dense" and q.input[0] == t:
                self.consumers[id(q)] = q
            elif _channelwise(gr, q) and (kind != "depthwise" or q.input[0] == t):
                self._enter(q)
            else:
                return False
        return True

    def _enter(self, n: Any) -> None:
        if id(n) not in self.middle:
            self.middle[id(n)] = n
            data = n.input[:1] if n.op_type in ("Conv", "Clip", "ReduceMean") else n.input
            self.todo.extend(i for i in data if i and i not in self.gr.inits)
            self.todo.extend(n.output)


def _channelwise(gr: _Graph, n: Any) -> bool:
    """Whether ``n`` maps each channel on its own (so padding passes through it)."""
    if _conv_kind(gr, n) == "depthwise":
        return True
    if n.op_type not in _CHANNELWISE:
        return False
    if n.op_type == "ReduceMean" and _attr(n, "keepdims", 1) != 1:
        return False
    # constants must be scalars (a per-channel one would need padding too)
    return all(
        i not in gr.inits or gr.array(i).size == 1
        for i in n.input[1:]
        if n.op_type in ("Mul", "Add")
    )


# --- the RGB stem, ReduceMean, HardSigmoid -----------------------------------------------


def _pad_first_conv(g: Any) -> None:
    """Give a dense conv that reads the model input (RGB) 4k input channels.

    The input is concatenated with zero channels (a copy; ORT's ``Pad`` is slower), and
    the conv gets zero weights for them.
    """
    from onnx import helper

    gr = _Graph(g)
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in g.input}
    for n in list(g.node):
        if _conv_kind(gr, n) != "dense" or n.input[0] not in shapes:
            continue
        w, shape = gr.array(n.input[1]), shapes[n.input[0]]
        pad = -w.shape[1] % _PAD_INPUT
        if not pad or w.ndim != 4 or len(shape) != 4 or 0 in shape:
            continue
        gr.set_input(n, 1, np.pad(w, [(0, 0), (0, pad), (0, 0), (0, 0)]))
        name = f"{n.name}_dsz_pad"
        zeros = gr.add_init(f"{name}_zeros", np.zeros((shape[0], pad, *shape[2:]), np.float32))
        node = helper.make_node("Concat", [n.input[0], zeros], [f"{name}_out"], name=name, axis=1)
        g.node.insert(list(g.node).index(n), node)
        n.input[0] = node.output[0]


def _spatial_mean_to_gap(g: Any) -> None:
    """``ReduceMean(x, axes=[2, 3], keepdims=1)`` on NCHW is ``GlobalAveragePool(x)``."""
    from onnx import helper

    gr = _Graph(g)
    for i, n in enumerate(list(g.node)):
        if n.op_type != "ReduceMean" or _attr(n, "keepdims", 1) != 1:
            continue
        axes = _attr(n, "axes", None)
        if axes is None and len(n.input) > 1 and n.input[1] in gr.inits:
            axes = gr.array(n.input[1]).tolist()
        if axes is not None and sorted(int(a) % 4 for a in axes) == [2, 3]:
            g.node.remove(n)
            g.node.insert(
                i, helper.make_node("GlobalAveragePool", [n.input[0]], list(n.output), name=n.name)
            )


def _split_hardsigmoid(g: Any) -> None:
    """``HardSigmoid(x) = alpha * clip(x + beta / alpha, 0, 1 / alpha)``, and HardSwish
    ``x * HardSigmoid(x)``: an Add (folded into the producing conv's bias when it has no
    other use), a Clip (fused by ORT into the producer's int8 output range) and a Mul by
    ``alpha``, which :func:`fold_scale_muls` removes after quantization."""
    from onnx import helper

    gr = _Graph(g)
    nodes: list[Any] = []
    for k, n in enumerate(g.node):
        base = f"{n.name or n.op_type}_dsz{k}"
        if n.op_type == "HardSwish":
            gate = f"{base}_gate"
            nodes += _hardsigmoid(gr, n.input[0], gate, 1 / 6, 0.5, base, fold=False)
            nodes.append(
                helper.make_node("Mul", [n.input[0], gate], list(n.output), name=f"{base}_mul")
            )
        elif n.op_type == "HardSigmoid" and _attr(n, "alpha", 0.2) > 0:
            alpha, beta = _attr(n, "alpha", 0.2), _attr(n, "beta", 0.5)
            nodes += _hardsigmoid(gr, n.input[0], n.output[0], alpha, beta, base, fold=True)
        else:
            nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)


def _hardsigmoid(
    gr: _Graph, x: str, y: str, alpha: float, beta: float, base: str, *, fold: bool
) -> list[Any]:
    from onnx import helper

    shift = beta / alpha
    nodes = []
    if fold and _bias_takes_shift(gr, x):
        p = gr.producer[x]
        gr.set_input(p, 2, gr.array(p.input[2]) + shift)
        shifted = x
    else:
        shifted = f"{base}_shifted"
        c = gr.add_init(f"{base}_shift", np.array(shift, np.float32))
        nodes.append(helper.make_node("Add", [x, c], [shifted], name=f"{base}_add"))
    lo = gr.add_init(f"{base}_lo", np.array(0.0, np.float32))
    hi = gr.add_init(f"{base}_hi", np.array(1 / alpha, np.float32))
    a = gr.add_init(f"{base}_alpha", np.array(alpha, np.float32))
    nodes.append(helper.make_node("Clip", [shifted, lo, hi], [f"{base}_clip"], name=f"{base}_clip"))
    nodes.append(helper.make_node("Mul", [f"{base}_clip", a], [y], name=base + _SCALE_TAG))
    return nodes


def _bias_takes_shift(gr: _Graph, x: str) -> bool:
    """Whether ``x`` comes from a dense conv with a constant bias and is used only once,
    so that adding a constant to ``x`` can go into that bias."""
    p = gr.producer.get(x)
    return (
        p is not None
        and _conv_kind(gr, p) == "dense"
        and len(p.input) > 2
        and p.input[2] in gr.inits
        and len(gr.consumers.get(x, [])) == 1
        and x not in gr.outputs
    )


# --- after quantization ------------------------------------------------------------------


def _fold_scale_mul(gr: _Graph, m: Any) -> None:
    """Point the ``DequantizeLinear`` nodes after ``m`` at the codes before it, with their
    scale times ``m``'s constant; ``m`` then feeds nothing (dropped by the caller)."""
    dq = gr.producer.get(m.input[0])
    after = gr.consumers.get(m.output[0], [])
    alpha = _scalar(gr, m.input[1])
    if (
        dq is None
        or dq.op_type != "DequantizeLinear"
        or dq.input[1] not in gr.inits
        or alpha is None
        or len(after) != 1
        or after[0].op_type != "QuantizeLinear"
    ):
        return
    dqs = gr.consumers.get(after[0].output[0], [])
    if not dqs or any(d.op_type != "DequantizeLinear" for d in dqs):
        return
    scale = gr.add_init(f"{m.name}_scale", (gr.array(dq.input[1]) * alpha).astype(np.float32))
    for d in dqs:
        del d.input[:]
        d.input.extend([dq.input[0], scale, *dq.input[2:3]])


def _drop_unused(g: Any) -> None:
    """Remove the nodes and initializers that no longer feed a graph output."""
    used = {o.name for o in g.output}
    nodes = list(g.node)
    for n in reversed(nodes):  # reverse topological order
        if any(o in used for o in n.output):
            used.update(n.input)
        else:
            g.node.remove(n)
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)


def _scalar(gr: _Graph, name: str) -> float | None:
    """The value of a scalar constant, read through a DequantizeLinear if quantized."""
    if name in gr.inits:
        return float(gr.array(name).reshape(-1)[0])
    d = gr.producer.get(name)
    if d is None or d.op_type != "DequantizeLinear" or any(i not in gr.inits for i in d.input):
        return None
    zero = gr.array(d.input[2]).astype(np.float64) if len(d.input) > 2 else 0.0
    return float(
        ((gr.array(d.input[0]).astype(np.float64) - zero) * gr.array(d.input[1])).reshape(-1)[0]
    )
