"""ONNX Runtime on the CPU: sessions, predictions, latency, and the int8 MAC share.

Every session is set up as a deployment would run it (:func:`onnx_session`): the CPU
execution provider, ``threads`` intra-op threads and one inter-op thread, all graph
optimizations on, and ORT's warnings silenced.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "INT8_OPS",
    "int8_mac_share",
    "measure_onnx_latency_ms",
    "onnx_predict",
    "onnx_session",
    "weight_macs",
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
_CLOCKS = ("wall", "thread")


def onnx_session(path: str | os.PathLike[str], *, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session for the model at ``path``, as a deployment runs it.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads (one inter-op thread).

    Returns:
        An ``onnxruntime.InferenceSession`` with all graph optimizations on.

    Raises:
        ValueError: If ``threads`` < 1.
    """
    import onnxruntime as ort

    so = _session_options(threads)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(os.fspath(path), so, providers=["CPUExecutionProvider"])


def onnx_predict(
    path_or_session: str | os.PathLike[str] | Any, x: torch.Tensor, *, threads: int = 1
) -> torch.Tensor:
    """Predicted classes (argmax of the output) of ONNX Runtime for each row of ``x``.

    The rows are run one at a time: the exported graph has batch 1.

    Args:
        path_or_session: An ``.onnx`` file, or a session from :func:`onnx_session`.
        x: Inputs ``(N, C, H, W)``.
        threads: Intra-op threads of the session made for a path (else unused).

    Returns:
        ``(N,)`` class indices, ``torch.long``.
    """
    if isinstance(path_or_session, str | os.PathLike):
        sess = onnx_session(path_or_session, threads=threads)
    else:
        sess = path_or_session
    name = sess.get_inputs()[0].name
    data = x.detach().cpu().numpy().astype(np.float32)
    preds = [int(sess.run(None, {name: data[i : i + 1]})[0].argmax(1)[0]) for i in range(len(data))]
    return torch.tensor(preds, dtype=torch.long)


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
    if (
        threads < 1
        or warmup < 0
        or repeats < 1
        or clock not in _CLOCKS
        or (clock == "thread" and threads != 1)
    ):
        raise ValueError(
            f"threads={threads}, warmup={warmup}, repeats={repeats}, clock={clock!r} invalid; "
            f"need threads >= 1, warmup >= 0, repeats >= 1, clock in {_CLOCKS} "
            "(thread only with threads=1)"
        )
    sess = onnx_session(path, threads=threads)
    x = np.random.default_rng(0).standard_normal(tuple(input_shape), dtype=np.float32)
    timer = time.perf_counter if clock == "wall" else time.thread_time
    times = _run_times_ms(sess, {sess.get_inputs()[0].name: x}, warmup, repeats, timer)
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
    macs = weight_macs(proto)
    total = sum(macs.values())
    if not total:
        return 0.0
    int8_weights = _int8_kernel_weights(proto)
    return sum(m for w, m in macs.items() if w in int8_weights) / total


def weight_macs(proto: Any) -> dict[str, int]:
    """Stored weight name -> MACs of the Conv/Gemm/MatMul nodes that use it."""
    import onnx

    g = onnx.shape_inference.infer_shapes(proto).graph
    dims = _tensor_dims(g)
    dq_source = {n.output[0]: n.input[0] for n in g.node if n.op_type == "DequantizeLinear"}
    consts = {i.name for i in g.initializer} | {
        n.output[0] for n in g.node if n.op_type == "Constant"
    }
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
        macs[weight] = macs.get(weight, 0) + int(np.prod(out)) * _macs_per_output(n, w)
    return macs


def _session_options(threads: int) -> Any:
    import onnxruntime as ort

    if threads < 1:
        raise ValueError(f"threads={threads} invalid; need threads >= 1")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # ORT warns about every optimized-model dump
    return so


def _run_times_ms(
    sess: Any, feed: dict[str, np.ndarray], warmup: int, repeats: int, timer: Callable[[], float]
) -> list[float]:
    """Milliseconds of each of ``repeats`` runs of ``sess`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(repeats):
        start = timer()
        sess.run(None, feed)
        times.append((timer() - start) * 1e3)
    return times


def _int8_kernel_weights(proto: Any) -> set[str]:
    """Names of the weights that feed an integer kernel once ORT has optimized ``proto``."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.onnx"
        out = Path(tmp) / "opt.onnx"
        onnx.save(proto, src)
        so = _session_options(1)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = os.fspath(out)
        ort.InferenceSession(os.fspath(src), so, providers=["CPUExecutionProvider"])
        opt = onnx.load(out)
    return {
        n.input[INT8_OPS[n.op_type]]
        for n in opt.graph.node
        if n.op_type in INT8_OPS and len(n.input) > INT8_OPS[n.op_type]
    }


def _tensor_dims(g: Any) -> dict[str, list[int]]:
    """Tensor name -> shape (0 for an unknown dimension), from inferred shapes and weights."""
    dims: dict[str, list[int]] = {}
    for vi in [*g.value_info, *g.input, *g.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            dims[vi.name] = [d.dim_value if d.HasField("dim_value") else 0 for d in t.shape.dim]
    for init in g.initializer:
        dims[init.name] = list(init.dims)
    return dims


def _macs_per_output(n: Any, w: list[int]) -> int:
    """MACs per output element of the node ``n`` whose weight has shape ``w``."""
    if n.op_type in ("Conv", "QLinearConv"):
        return int(np.prod(w[1:]))
    if n.op_type in ("Gemm", "QGemm"):
        trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0)
        return w[1] if trans_b else w[0]
    return w[0]
