"""ONNX export for deployment: fp32, or int8 by ONNX Runtime static quantization.

The int8 path is ONNX Runtime's post-training static quantization in QDQ form
(``QuantizeLinear``/``DequantizeLinear`` pairs that ORT fuses into int8 kernels such
as ``QLinearConv`` when it loads the model), with per-channel int8 weights, uint8
activations calibrated (min/max) on a few hundred inputs, after ``quant_pre_process``
(symbolic shape inference and ORT's float graph optimizations).

Whether int8 pays off depends on the network, not just its MACs; measure it with
:func:`measure_onnx_latency_ms` and see how much of the network really runs in int8
kernels with :func:`int8_mac_share`. On an AVX-512 VNNI CPU (1 thread, batch 1)
ResNet-18 runs about 2.5x faster in int8, but timm's MobileNetV3s run slower
(``mobilenetv3_small_050`` about 0.6x, ``mobilenetv3_large_100`` about 0.9x): ORT's
int8 depthwise and 3-channel stem convolutions are slower than its fp32 NCHWc ones
(about 2.5x and 1.6x), hard-swish and squeeze-excite have no int8 kernel and cost a
dequantize/requantize pass each, and keeping those parts in float is worse still:
a float convolution between int8 ones loses the NCHWc kernels (depthwise ~15x
slower) and adds layout transposes. No choice of ops, format or extra options
tried made it as fast as fp32 with most MACs in int8.
``scripts/bench_int8.py`` measures both.
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
_MAC_OPS = ("Conv", "Gemm", "MatMul")
_FORMATS = ("qdq", "qoperator")


@dataclass(frozen=True)
class OnnxInt8Config:
    """How :func:`export_onnx` quantizes (ONNX Runtime static quantization).

    Args:
        per_channel: One weight scale per output channel (else one per tensor).
        op_types: ONNX op types to quantize (``None``: all that ORT can).
        exclude: Names of ONNX nodes (after ``quant_pre_process``) kept in float.
        quant_format: ``"qdq"`` (Q/DQ pairs ORT fuses at load) or ``"qoperator"``
            (``QLinearConv`` etc. written into the file).
        symmetric_activations: int8 activations with zero point 0 instead of uint8.
        extra_options: Passed to ``quantize_static`` as is (e.g.
            ``{"QDQKeepRemovableActivations": True}``).
    """

    per_channel: bool = True
    op_types: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    quant_format: str = "qdq"
    symmetric_activations: bool = False
    extra_options: tuple[tuple[str, Any], ...] = ()

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
) -> tuple[float, float]:
    """Median latency of one ONNX Runtime CPU inference, and its spread.

    The session has ``threads`` intra-op threads (one inter-op thread) and all graph
    optimizations on, as a deployment would.

    Returns:
        ``(median_ms, spread)`` where spread is the interquartile range over the median.
    """
    if threads < 1 or warmup < 0 or repeats < 1:
        raise ValueError(
            f"threads={threads}, warmup={warmup}, repeats={repeats} invalid; need threads >= 1, "
            "warmup >= 0, repeats >= 1"
        )
    sess = _session(path, threads=threads)
    feed = {sess.get_inputs()[0].name: np.random.default_rng(0).standard_normal(
        tuple(input_shape), dtype=np.float32)}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
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
        if n.op_type not in _MAC_OPS or len(n.input) < 2:
            continue
        weight = n.input[1]
        while weight in dq_source:  # Q/DQ chain back to the stored tensor
            weight = dq_source[weight]
        if weight not in consts:
            continue
        w = dims.get(weight) or dims.get(n.input[1])
        out = dims.get(n.output[0])
        if not w or not out or 0 in out:
            continue
        if n.op_type == "Conv":
            per_output = int(np.prod(w[1:]))
        elif n.op_type == "Gemm":
            trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0)
            per_output = w[1] if trans_b else w[0]
        else:
            per_output = w[0]
        macs[weight] = macs.get(weight, 0) + int(np.prod(out)) * per_output
    return macs
