"""ONNX export for deployment: fp32, or int8 by ONNX Runtime static quantization.

The int8 path is ONNX Runtime's post-training static quantization in QDQ form
(``QuantizeLinear``/``DequantizeLinear`` pairs that ORT fuses into int8 kernels such
as ``QLinearConv`` when it loads the model), with per-channel int8 weights, uint8
activations calibrated (min/max) on a few hundred inputs, after ``quant_pre_process``
(symbolic shape inference and ORT's float graph optimizations).

Whether int8 pays off depends on the network, not just its MACs; measure it with
:func:`measure_onnx_latency_ms` and see how much of the network really runs in int8
kernels with :func:`int8_mac_share`. Plain static QDQ runs ResNet-18 about 2.5x
faster than fp32 on an AVX-512 VNNI CPU (1 thread, batch 1), but timm's
``mobilenetv3_small_050`` at 0.6x. ORT's profiler shows why: (1) MLAS's fast
symmetric int8 convolutions need a depthwise conv's channels to be a multiple of 16
and a regular conv's input channels a multiple of 4, so the 40/56/72-channel
depthwise convs and the RGB stem fall back to a generic kernel 3-4x slower than
fp32 NCHWc; (2) ORT has no int8 HardSwish/HardSigmoid, so each costs a dequantize,
a float op and a quantize pass (fp32 fuses them into the conv); (3) the
squeeze-excite ``ReduceMean`` runs in float. Keeping those parts in float is worse
(a float conv between int8 ones adds layout transposes). So, by default
(``OnnxInt8Config(rewrite=True)``), the float graph is first rewritten into an
equivalent one (same outputs) that maps onto fast int8 kernels: channels padded with
zero weights to those multiples, ``ReduceMean`` over H, W as ``GlobalAveragePool``,
and ``HardSigmoid(x)`` as ``alpha * clip(x + beta/alpha, 0, 1/alpha)`` (the Add
folded into a conv bias where it can be, the Clip into the int8 range, the Mul into
the scale of the next ``DequantizeLinear``), so a HardSwish costs one int8 Add and one
int8 Mul. ``scripts/bench_int8.py`` measures both.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compress._format import size_bytes

__all__ = [
    "INT8_OPS",
    "OnnxInt8Config",
    "export_onnx",
    "int8_mac_share",
    "measure_onnx_latency_ms",
]

# Optimized-graph ops that run their MACs in integer kernels -> index of the weight input.
INT8_OPS = {
    "QLinearConv": 3,
    "QLinearMatMul": 3,
    "ConvInteger": 1,
    "MatMulInteger": 1,
    "QGemm": 3,
    "MatMulIntegerToFloat": 1,
    "DynamicQuantizeMatMul": 1,
}
# Ops with MACs -> index of their weight input (QOperator files hold the int8 forms).
_MAC_OPS = {"Conv": 1, "Gemm": 1, "MatMul": 1, "QLinearConv": 3, "QGemm": 3, "QLinearMatMul": 3}
_FORMATS = ("qdq", "qoperator")
_CLOCKS = ("wall", "thread")


@dataclass(frozen=True)
class OnnxInt8Config:
    """How :func:`export_onnx` quantizes (ONNX Runtime static quantization).

    Args:
        per_channel: One weight scale per output channel (else one per tensor).
        op_types: ONNX op types to quantize (``None``: all that ORT can).
        exclude: Names of ONNX nodes (after ``quant_pre_process``) kept in float; the
            rewrite keeps the names of convolutions, not of the hard-sigmoids it splits.
        quant_format: ``"qdq"`` (Q/DQ pairs ORT fuses at load) or ``"qoperator"``
            (``QLinearConv`` etc. written into the file).
        symmetric_activations: int8 activations with zero point 0 instead of uint8.
        extra_options: Passed to ``quantize_static`` as is (e.g.
            ``{"QDQKeepRemovableActivations": True}``).
        rewrite: Rewrite the float graph first so that ORT uses its fast int8
            kernels (see the module docstring); the float function is unchanged.
    """

    per_channel: bool = True
    op_types: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    quant_format: str = "qdq"
    symmetric_activations: bool = False
    extra_options: tuple[tuple[str, Any], ...] = ()
    rewrite: bool = True

    def __post_init__(self) -> None:
        if self.quant_format not in _FORMATS:
            raise ValueError(f"quant_format={self.quant_format!r} is not one of {_FORMATS}")


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    input_shape: Sequence[int],
    opset: int = 17,
    int8: bool = False,
    calibration: torch.Tensor | None = None,
    config: OnnxInt8Config | None = None,
) -> int:
    """Write ``model`` (in eval mode, BatchNorm folded) as an ONNX file.

    Weights are embedded in the one file (the TorchScript exporter; models under
    2 GB); a stale ``.onnx.data`` sibling is removed, and one that is written is
    counted.

    Args:
        model: The network; exported as evaluated (masks, fake quantization applied).
        path: Where to write the ``.onnx`` file.
        input_shape: Full input shape including batch, normally ``(1, C, H, W)``; fixed
            in the graph.
        opset: ONNX opset (13 or newer; per-channel quantization needs 13).
        int8: Quantize statically to int8 (needs ``calibration``).
        calibration: Calibration inputs ``(N, C, H, W)``, a few hundred typical ones;
            fed ``input_shape[0]`` at a time, a remainder dropped.
        config: Quantization options; ``OnnxInt8Config()`` if ``None``.

    Returns:
        Bytes written, every file of the model counted.

    Raises:
        ValueError: If ``opset`` < 13, ``int8`` without ``calibration``, or the
            calibration shape does not match ``input_shape``.
    """
    shape = tuple(int(d) for d in input_shape)
    if opset < 13:
        raise ValueError(f"opset={opset} too old; need >= 13")
    path = Path(path)
    stale = Path(f"{path}.data")
    if not int8:
        if stale.exists():
            stale.unlink()
        _export_fp32(model, path, shape, opset)
        return size_bytes(path)
    if calibration is None:
        raise ValueError("int8=True needs calibration inputs (a few hundred, N x C x H x W)")
    if tuple(calibration.shape[1:]) != shape[1:] or calibration.shape[0] < shape[0]:
        raise ValueError(f"calibration of shape {tuple(calibration.shape)} does not fit "
                         f"input_shape={shape}: need (N >= {shape[0]}, *{shape[1:]})")
    if stale.exists():
        stale.unlink()
    cfg = config or OnnxInt8Config()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        pre = Path(tmp) / "pre.onnx"
        _export_fp32(model, fp32, shape, opset)
        _quantize(fp32, pre, path, calibration, shape[0], cfg)
    return size_bytes(path)


def measure_onnx_latency_ms(
    path: str | os.PathLike[str],
    input_shape: Sequence[int],
    *,
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 30,
    clock: str = "wall",
) -> tuple[float, float]:
    """Median latency of one ONNX Runtime CPU inference, and its spread.

    The session has ``threads`` intra-op threads (one inter-op thread) and all graph
    optimizations on, as a deployment would.

    Args:
        clock: ``"wall"`` (elapsed time) or ``"thread"``: the CPU time of the calling
            thread, which is where a one-thread session computes; unlike wall time it
            leaves out the time other processes hold the core (it still feels their
            cache and memory traffic), so it is steadier on a shared machine. Needs
            ``threads=1``.

    Returns:
        ``(median_ms, spread)`` where spread is the interquartile range over the median.
    """
    if threads < 1 or warmup < 0 or repeats < 1 or clock not in _CLOCKS or (
            clock == "thread" and threads != 1):
        raise ValueError(
            f"threads={threads}, warmup={warmup}, repeats={repeats}, clock={clock!r} invalid; "
            f"need threads >= 1, warmup >= 0, repeats >= 1, clock in {_CLOCKS} "
            "(thread only with threads=1)"
        )
    timer = time.perf_counter if clock == "wall" else time.thread_time
    sess = _session(path, threads=threads)
    feed = {sess.get_inputs()[0].name: np.random.default_rng(0).standard_normal(
        tuple(input_shape), dtype=np.float32)}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(repeats):
        start = timer()
        sess.run(None, feed)
        times.append((timer() - start) * 1e3)
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return float(median), float((q3 - q1) / median)


def int8_mac_share(model: str | os.PathLike[str] | Any) -> float:
    """Share of the MACs of ``Conv``/``Gemm``/``MatMul`` nodes that run in int8 kernels.

    How it counts: the MACs of every ``Conv``, ``Gemm`` and ``MatMul`` node with a
    constant weight are taken from the given model (shapes by ONNX shape inference;
    a weight that goes through ``DequantizeLinear`` is traced to its stored int8
    tensor). ORT then optimizes the model as a session would (extended level: the
    Q/DQ fusions, without the CPU-specific layout changes) and writes it out; a
    node's MACs count as int8 when its weight feeds an integer kernel there
    (:data:`INT8_OPS`: ``QLinearConv``, ``QLinearMatMul``, ``QGemm``,
    ``ConvInteger``, ...). A Q/DQ-wrapped node that ORT leaves in float (its weight
    dequantized at load) counts as float. Element-wise ops are not counted.

    Args:
        model: Path of an ONNX file, or an ``onnx.ModelProto``.

    Returns:
        A share in [0, 1]; 0.0 for a model with no such MACs.
    """
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(os.fspath(model))
    macs = _weight_macs(proto)
    total = sum(macs.values())
    if not total:
        return 0.0
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.onnx"
        out = Path(tmp) / "opt.onnx"
        onnx.save(proto, src)
        _session(src, threads=1, optimized=out)
        opt = onnx.load(out)
    int8_weights = {n.input[INT8_OPS[n.op_type]] for n in opt.graph.node
                    if n.op_type in INT8_OPS and len(n.input) > INT8_OPS[n.op_type]}
    return sum(m for w, m in macs.items() if w in int8_weights) / total


def _export_fp32(model: nn.Module, path: Path, shape: tuple[int, ...], opset: int) -> None:
    was_training = model.training
    param = next(model.parameters(), None)
    x = torch.randn(shape, device=param.device if param is not None else "cpu")
    try:
        model.eval()
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter is deprecated in favour of dynamo, but it folds
            # BatchNorm into Conv and embeds weights reliably for timm CNNs.
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
            torch.onnx.export(model, (x,), os.fspath(path), dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["output"],
                              do_constant_folding=True)
    finally:
        model.train(was_training)


def _quantize(fp32: Path, pre: Path, out: Path, calibration: torch.Tensor, batch: int,
              cfg: OnnxInt8Config) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            data = calibration.detach().float().cpu().numpy()
            n = len(data) // batch * batch
            self._batches: Iterator[np.ndarray] = iter(
                [data[i : i + batch] for i in range(0, n, batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._batches, None)
            return None if x is None else {"input": x}

    quant_pre_process(os.fspath(fp32), os.fspath(pre))
    if cfg.rewrite:
        import onnx

        onnx.save(_rewrite_for_int8(onnx.load(os.fspath(pre))), os.fspath(pre))
    extra = dict(cfg.extra_options)
    if cfg.symmetric_activations:
        extra.setdefault("ActivationSymmetric", True)
    quantize_static(
        os.fspath(pre), os.fspath(out), _Reader(),
        quant_format=QuantFormat.QDQ if cfg.quant_format == "qdq" else QuantFormat.QOperator,
        op_types_to_quantize=list(cfg.op_types) if cfg.op_types is not None else None,
        nodes_to_exclude=list(cfg.exclude),
        per_channel=cfg.per_channel,
        activation_type=QuantType.QInt8 if cfg.symmetric_activations else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        extra_options=extra,
    )
    if cfg.rewrite:
        import onnx

        onnx.save(_fold_scale_muls(onnx.load(os.fspath(out))), os.fspath(out))


def _session(path: str | os.PathLike[str], *, threads: int, optimized: Path | None = None
             ) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # ORT warns about every optimized-model dump
    if optimized is None:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    else:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = os.fspath(optimized)
    return ort.InferenceSession(os.fspath(path), so, providers=["CPUExecutionProvider"])


def _weight_macs(proto: Any) -> dict[str, int]:
    """Stored weight name -> MACs of the Conv/Gemm/MatMul node that uses it."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    g = inferred.graph
    dims: dict[str, list[int]] = {}
    for vi in [*g.value_info, *g.input, *g.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            dims[vi.name] = [d.dim_value if d.HasField("dim_value") else 0 for d in t.shape.dim]
    for init in g.initializer:
        dims[init.name] = list(init.dims)
    dq_source = {n.output[0]: n.input[0] for n in g.node if n.op_type == "DequantizeLinear"}
    consts = {i.name for i in g.initializer} | {
        n.output[0] for n in g.node if n.op_type == "Constant"}
    macs: dict[str, int] = {}
    for n in g.node:
        if n.op_type not in _MAC_OPS or len(n.input) <= _MAC_OPS[n.op_type]:
            continue
        weight = n.input[_MAC_OPS[n.op_type]]
        while weight in dq_source:  # Q/DQ chain back to the stored tensor
            weight = dq_source[weight]
        if weight not in consts:
            continue
        w = dims.get(weight) or dims.get(n.input[_MAC_OPS[n.op_type]])
        out = dims.get(n.output[0])
        if not w or not out or 0 in out:
            continue
        if n.op_type in ("Conv", "QLinearConv"):
            per_output = int(np.prod(w[1:]))
        elif n.op_type in ("Gemm", "QGemm"):
            trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0)
            per_output = w[1] if trans_b else w[0]
        else:
            per_output = w[0]
        macs[weight] = macs.get(weight, 0) + int(np.prod(out)) * per_output
    return macs


# --- Exact float rewrites that let ORT pick its fast int8 kernels --------------------
# MLAS's symmetric int8 convolutions (the VNNI/AVX2 "ConvSym" kernels) need a depthwise
# conv's channels to be a multiple of 16 and a regular conv's input channels a multiple
# of 4; other shapes fall back to a generic kernel 3-4x slower than fp32 NCHWc. ORT has
# no int8 HardSigmoid/HardSwish (each costs a dequantize, a float op and a quantize) and
# no int8 ReduceMean, but int8 Add, Mul and GlobalAveragePool. The rewrites keep the
# float function (padded channels have zero weights; the others are identities).

_PAD_DEPTHWISE = 16
_PAD_INPUT = 4
_SCALE_TAG = "_dsz_scale"  # suffix of the Mul nodes folded away after quantization
_CHANNELWISE = {"Relu", "Clip", "HardSigmoid", "HardSwish", "Sigmoid", "LeakyRelu", "Identity",
                "Mul", "Add", "GlobalAveragePool", "ReduceMean"}


def _rewrite_for_int8(proto: Any) -> Any:
    """``proto`` rewritten (in place, and shapes inferred again) for ORT's int8 kernels."""
    import onnx

    _pad_channels(proto.graph, _PAD_DEPTHWISE)
    _pad_first_conv(proto.graph)
    _spatial_mean_to_gap(proto.graph)
    _split_hardsigmoid(proto.graph)
    del proto.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(proto)


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

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name),
                default)


def _conv_kind(gr: _Graph, n: Any) -> str:
    """``"dense"`` (group 1), ``"depthwise"``, or ``""`` for other nodes and grouped convs."""
    if n.op_type != "Conv" or any(i and i not in gr.inits for i in n.input[1:]):
        return ""
    w = gr.inits[n.input[1]].dims
    group = _attr(n, "group", 1)
    if group == 1:
        return "dense"
    return "depthwise" if group == w[0] and w[1] == 1 else ""


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
        if not pad:
            continue
        region = _channel_region(gr, conv.input[0])
        if region is None:
            continue
        producers, middle, consumers = region
        for n in producers + [n for n in middle if _conv_kind(gr, n) == "depthwise"]:
            gr.set_input(n, 1, np.pad(gr.array(n.input[1]), [(0, pad), (0, 0), (0, 0), (0, 0)]))
            if len(n.input) > 2 and n.input[2]:
                gr.set_input(n, 2, np.pad(gr.array(n.input[2]), (0, pad)))
            if n in middle:
                for a in n.attribute:
                    if a.name == "group":
                        a.i += pad
        for n in consumers:
            gr.set_input(n, 1, np.pad(gr.array(n.input[1]), [(0, 0), (0, pad), (0, 0), (0, 0)]))


def _channel_region(gr: _Graph, start: str) -> tuple[list[Any], list[Any], list[Any]] | None:
    """(producing dense convs, channel-wise nodes, consuming dense convs) around ``start``."""
    tensors: set[str] = set()
    todo = [start]
    producers: dict[int, Any] = {}
    middle: dict[int, Any] = {}
    consumers: dict[int, Any] = {}

    def channelwise(n: Any) -> bool:
        if _conv_kind(gr, n) == "depthwise":
            return True
        if n.op_type not in _CHANNELWISE:
            return False
        if n.op_type == "ReduceMean" and _attr(n, "keepdims", 1) != 1:
            return False
        # constants must be scalars (a per-channel one would need padding too)
        return all(i not in gr.inits or gr.array(i).size == 1 for i in n.input[1:]
                   if n.op_type in ("Mul", "Add"))

    def visit(n: Any) -> None:
        if id(n) not in middle:
            middle[id(n)] = n
            data = n.input[:1] if n.op_type in ("Conv", "Clip", "ReduceMean") else n.input
            todo.extend(i for i in data if i and i not in gr.inits)
            todo.extend(n.output)

    while todo:
        t = todo.pop()
        if t in tensors:
            continue
        if t in gr.outputs or t not in gr.producer:
            return None
        tensors.add(t)
        p = gr.producer[t]
        if _conv_kind(gr, p) == "dense":
            producers[id(p)] = p
        elif channelwise(p):
            visit(p)
        else:
            return None
        for q in gr.consumers.get(t, []):
            if _conv_kind(gr, q) == "dense" and q.input[0] == t:
                consumers[id(q)] = q
            elif channelwise(q) and (_conv_kind(gr, q) != "depthwise" or q.input[0] == t):
                visit(q)
            else:
                return None
    if not producers or set(producers) & set(consumers):
        return None
    return list(producers.values()), list(middle.values()), list(consumers.values())


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
            g.node.insert(i, helper.make_node("GlobalAveragePool", [n.input[0]], list(n.output),
                                              name=n.name))


def _split_hardsigmoid(g: Any) -> None:
    """``HardSigmoid(x) = alpha * clip(x + beta / alpha, 0, 1 / alpha)``, and HardSwish
    ``x * HardSigmoid(x)``: an Add (folded into the producing conv's bias when it has no
    other use), a Clip (fused by ORT into the producer's int8 output range) and a Mul by
    ``alpha``, which :func:`_fold_scale_muls` removes after quantization."""
    from onnx import helper

    gr = _Graph(g)
    nodes: list[Any] = []
    for k, n in enumerate(g.node):
        base = f"{n.name or n.op_type}_dsz{k}"
        if n.op_type == "HardSwish":
            gate = f"{base}_gate"
            nodes += _hardsigmoid(gr, n.input[0], gate, 1 / 6, 0.5, base, fold=False)
            nodes.append(helper.make_node("Mul", [n.input[0], gate], list(n.output),
                                          name=f"{base}_mul"))
        elif n.op_type == "HardSigmoid" and _attr(n, "alpha", 0.2) > 0:
            nodes += _hardsigmoid(gr, n.input[0], n.output[0], _attr(n, "alpha", 0.2),
                                  _attr(n, "beta", 0.5), base, fold=True)
        else:
            nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)


def _hardsigmoid(gr: _Graph, x: str, y: str, alpha: float, beta: float, base: str, *,
                 fold: bool) -> list[Any]:
    from onnx import helper

    shift = beta / alpha
    p = gr.producer.get(x)
    nodes = []
    if (fold and p is not None and _conv_kind(gr, p) == "dense" and len(p.input) > 2
            and p.input[2] in gr.inits and len(gr.consumers.get(x, [])) == 1
            and x not in gr.outputs):
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


def _fold_scale_muls(proto: Any) -> Any:
    """Remove the tagged ``Mul`` by a constant: ``Q -> DQ -> Mul(a) -> Q -> DQ`` becomes
    ``Q -> DQ(scale * a)``: the int8 codes are kept, only what they stand for changes."""
    g = proto.graph
    gr = _Graph(g)
    for m in [n for n in g.node if n.op_type == "Mul" and n.name.endswith(_SCALE_TAG)]:
        dq = gr.producer.get(m.input[0])
        after = gr.consumers.get(m.output[0], [])
        alpha = _scalar(gr, m.input[1])
        if (dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in gr.inits
                or alpha is None or len(after) != 1 or after[0].op_type != "QuantizeLinear"):
            continue
        dqs = gr.consumers.get(after[0].output[0], [])
        if not dqs or any(d.op_type != "DequantizeLinear" for d in dqs):
            continue
        scale = gr.add_init(f"{m.name}_scale", (gr.array(dq.input[1]) * alpha).astype(np.float32))
        for d in dqs:
            del d.input[:]
            d.input.extend([dq.input[0], scale, *dq.input[2:3]])
    used = {o.name for o in g.output}
    nodes = list(g.node)
    for n in reversed(nodes):  # drop what no longer feeds anything (reverse topological)
        if any(o in used for o in n.output):
            used.update(n.input)
        else:
            g.node.remove(n)
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    return proto


def _scalar(gr: _Graph, name: str) -> float | None:
    """The value of a scalar constant, read through a DequantizeLinear if quantized."""
    if name in gr.inits:
        return float(gr.array(name).reshape(-1)[0])
    d = gr.producer.get(name)
    if d is None or d.op_type != "DequantizeLinear" or any(i not in gr.inits for i in d.input):
        return None
    zero = gr.array(d.input[2]).astype(np.float64) if len(d.input) > 2 else 0.0
    return float(((gr.array(d.input[0]).astype(np.float64) - zero) * gr.array(d.input[1]))
                 .reshape(-1)[0])
