"""ONNX export for deployment: fp32, or int8 by ONNX Runtime static quantization.

The int8 path is ONNX Runtime's post-training static quantization in QDQ form
(``QuantizeLinear``/``DequantizeLinear`` pairs that ORT fuses into int8 kernels such
as ``QLinearConv`` when it loads the model), with per-channel int8 weights, uint8
activations calibrated (min/max) on a few hundred inputs, after ``quant_pre_process``
(symbolic shape inference and ORT's float graph optimizations).

Whether int8 pays off depends on the network, not just its MACs; measure it with
:func:`compress.measure_onnx_latency_ms` and see how much of the network really runs
in int8 kernels with :func:`compress.int8_mac_share`. By default
(``OnnxInt8Config(rewrite=True)``), the float graph is first rewritten into an
equivalent one (same outputs) that maps onto ORT's fast int8 kernels; why and how is
in :mod:`compress._onnx_rewrites`.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compress._format import size_bytes
from compress._onnx_rewrites import fold_scale_muls, rewrite_for_int8

__all__ = ["OnnxInt8Config", "export_onnx"]

_FORMATS = ("qdq", "qoperator")


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
            kernels (see :mod:`compress._onnx_rewrites`); the float function is unchanged.
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
    checked = _checked_calibration(calibration, shape) if int8 else None
    path = Path(path)
    Path(f"{path}.data").unlink(missing_ok=True)  # a stale sibling would be counted
    if checked is None:
        _export_fp32(model, path, shape, opset)
    else:
        _export_int8(model, path, shape, opset, checked, config or OnnxInt8Config())
    return size_bytes(path)


def _checked_calibration(calibration: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    if calibration is None:
        raise ValueError("int8=True needs calibration inputs (a few hundred, N x C x H x W)")
    if tuple(calibration.shape[1:]) != shape[1:] or calibration.shape[0] < shape[0]:
        raise ValueError(
            f"calibration of shape {tuple(calibration.shape)} does not fit "
            f"input_shape={shape}: need (N >= {shape[0]}, *{shape[1:]})"
        )
    return calibration


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
            torch.onnx.export(
                model,
                (x,),
                os.fspath(path),
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                do_constant_folding=True,
            )
    finally:
        model.train(was_training)


def _export_int8(
    model: nn.Module,
    path: Path,
    shape: tuple[int, ...],
    opset: int,
    calibration: torch.Tensor,
    cfg: OnnxInt8Config,
) -> None:
    """fp32 export -> ``quant_pre_process`` -> rewrite -> ``quantize_static`` -> fold."""
    from onnxruntime.quantization import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        pre = Path(tmp) / "pre.onnx"
        _export_fp32(model, fp32, shape, opset)
        quant_pre_process(os.fspath(fp32), os.fspath(pre))
        if cfg.rewrite:
            _rewrite_file(pre, rewrite_for_int8)
        _quantize_static(pre, path, _calibration_reader(calibration, shape[0]), cfg)
        if cfg.rewrite:
            _rewrite_file(path, fold_scale_muls)


def _rewrite_file(path: Path, rewrite: Callable[[Any], Any]) -> None:
    import onnx

    onnx.save(rewrite(onnx.load(os.fspath(path))), os.fspath(path))


def _quantize_static(pre: Path, out: Path, reader: Any, cfg: OnnxInt8Config) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    extra = dict(cfg.extra_options)
    if cfg.symmetric_activations:
        extra.setdefault("ActivationSymmetric", True)
    quantize_static(
        os.fspath(pre),
        os.fspath(out),
        reader,
        quant_format=QuantFormat.QDQ if cfg.quant_format == "qdq" else QuantFormat.QOperator,
        op_types_to_quantize=list(cfg.op_types) if cfg.op_types is not None else None,
        nodes_to_exclude=list(cfg.exclude),
        per_channel=cfg.per_channel,
        activation_type=QuantType.QInt8 if cfg.symmetric_activations else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        extra_options=extra,
    )


def _calibration_reader(calibration: torch.Tensor, batch: int) -> Any:
    """ORT's ``CalibrationDataReader`` over ``calibration``, ``batch`` rows at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            data = calibration.detach().float().cpu().numpy()
            n = len(data) // batch * batch
            self._batches: Iterator[np.ndarray] = iter(
                [data[i : i + batch] for i in range(0, n, batch)]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._batches, None)
            return None if x is None else {"input": x}

    return _Reader()
