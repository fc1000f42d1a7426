"""ONNX export (fp32 and ONNX Runtime static int8), sessions, predictions and the int8
MAC share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import timm
import torch
from torch import nn

from compress import (
    OnnxInt8Config,
    export_onnx,
    int8_mac_share,
    measure_onnx_latency_ms,
    onnx_predict,
    onnx_session,
    size_bytes,
)

SHAPE = (1, 3, 32, 32)


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding is exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _run(path: Path, x: torch.Tensor) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"input": xi[None].numpy()})[0] for xi in x])


@pytest.mark.parametrize("kind", ["cnn", "mobilenetv3"])
def test_fp32_export_matches_torch(tmp_path: Path, kind: str) -> None:
    if kind == "cnn":
        model, shape = _cnn(), SHAPE
    else:
        torch.manual_seed(0)
        model, shape = timm.create_model("mobilenetv3_small_050", num_classes=10).eval(), (
            1, 3, 64, 64)
    path = tmp_path / "m.onnx"
    size = export_onnx(model, path, input_shape=shape)
    assert size == path.stat().st_size == size_bytes(path)
    assert not Path(f"{path}.data").exists()
    x = torch.randn(4, *shape[1:])
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(_run(path, x) - expected).max() < 1e-4
    assert model.training is False


def test_int8_close_to_fp32_and_all_macs_int8(tmp_path: Path) -> None:
    model = _cnn()
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    export_onnx(model, fp32, input_shape=SHAPE)
    size = export_onnx(model, int8, input_shape=SHAPE, int8=True,
                       calibration=torch.randn(64, *SHAPE[1:]))
    assert size == size_bytes(int8)
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = torch.randn(16, *SHAPE[1:])  # held out: not the calibration inputs
    a, b = _run(fp32, x), _run(int8, x)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99
    assert int8_mac_share(fp32) == 0.0
    assert int8_mac_share(int8) == pytest.approx(1.0)


def test_excluded_nodes_lower_the_int8_mac_share(tmp_path: Path) -> None:
    path = tmp_path / "int8.onnx"
    cfg = OnnxInt8Config(exclude=("/0/Conv",))  # the first conv, as the exporter names it
    export_onnx(_cnn(), path, input_shape=SHAPE, int8=True,
                calibration=torch.randn(16, *SHAPE[1:]), config=cfg)
    share = int8_mac_share(onnx.load(str(path)))
    # First conv: 16 x 36 MACs per pixel at 32x32 (the rewrite pads RGB with a zero
    # channel, for ORT's fast int8 kernels); second: 32 x 144 at 16x16; Linear 320.
    first, second = 32 * 32 * 16 * 36, 16 * 16 * 32 * 144
    assert share == pytest.approx((second + 320) / (first + second + 320))


def test_onnx_predict_matches_torch_argmax(tmp_path: Path) -> None:
    model = _cnn()
    path = tmp_path / "m.onnx"
    export_onnx(model, path, input_shape=SHAPE)
    x = torch.randn(8, *SHAPE[1:])
    with torch.no_grad():
        expected = model(x).argmax(1)
    sess = onnx_session(path, threads=2)
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert sess.get_session_options().intra_op_num_threads == 2
    for source in (path, str(path), sess):  # a path, or a session reused across calls
        pred = onnx_predict(source, x)
        assert pred.dtype == torch.long and pred.shape == (8,)
        assert torch.equal(pred, expected)
    with pytest.raises(ValueError, match="threads=0"):
        onnx_session(path, threads=0)


def test_size_counts_the_external_data_file(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    Path(f"{path}.data").write_bytes(b"stale")
    size = export_onnx(_cnn(), path, input_shape=SHAPE)
    assert not Path(f"{path}.data").exists()  # a stale sibling would be counted
    proto = onnx.load(str(path))
    onnx.save(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=f"{path.name}.data", size_threshold=0)
    data = Path(f"{path}.data").stat().st_size
    assert data > 0
    assert size_bytes(path) == path.stat().st_size + data
    assert size_bytes(path) >= size


def test_bad_arguments_name_the_value(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="calibration"):
        export_onnx(_cnn(), tmp_path / "m.onnx", input_shape=SHAPE, int8=True)
    with pytest.raises(ValueError, match="does not fit"):
        export_onnx(_cnn(), tmp_path / "m.onnx", input_shape=SHAPE, int8=True,
                    calibration=torch.randn(4, 3, 16, 16))
    with pytest.raises(ValueError, match="opset"):
        export_onnx(_cnn(), tmp_path / "m.onnx", input_shape=SHAPE, opset=11)
    with pytest.raises(ValueError, match="quant_format"):
        OnnxInt8Config(quant_format="int4")


def _mobile_block() -> nn.Module:
    """A MobileNetV3-style block with the shapes that need rewriting: an RGB stem, a
    40-channel depthwise conv (not a multiple of 16), hard-swish, squeeze-excite with a
    hard-sigmoid gate and a ReduceMean, and a residual add."""

    class SE(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.reduce, self.expand = nn.Conv2d(c, 8, 1), nn.Conv2d(8, c, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = self.expand(torch.relu(self.reduce(x.mean((2, 3), keepdim=True))))
            return x * nn.functional.hardsigmoid(s)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16),
                                      nn.Hardswish())
            self.pw = nn.Sequential(nn.Conv2d(16, 40, 1), nn.BatchNorm2d(40), nn.Hardswish())
            self.dw = nn.Sequential(nn.Conv2d(40, 40, 3, 1, 1, groups=40), nn.BatchNorm2d(40),
                                    nn.Hardswish(), SE(40))
            self.pwl = nn.Sequential(nn.Conv2d(40, 16, 1), nn.BatchNorm2d(16))
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            return self.head(x + self.pwl(self.dw(self.pw(x))))

    torch.manual_seed(0)
    model = Block()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_rewrite_keeps_the_float_function_and_reaches_the_fast_int8_shapes(
        tmp_path: Path) -> None:
    from onnxruntime.quantization import quant_pre_process

    from compress._onnx_rewrites import rewrite_for_int8

    model = _mobile_block()
    fp32, pre = tmp_path / "fp32.onnx", tmp_path / "pre.onnx"
    export_onnx(model, fp32, input_shape=SHAPE)
    quant_pre_process(str(fp32), str(pre))
    proto = rewrite_for_int8(onnx.load(str(pre)))
    ops = [n.op_type for n in proto.graph.node]
    assert "ReduceMean" not in ops and "HardSigmoid" not in ops and "HardSwish" not in ops
    weights = {i.name: list(i.dims) for i in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type == "Conv":
            w = weights[n.input[1]]
            group = next((a.i for a in n.attribute if a.name == "group"), 1)
            if group > 1:
                assert w[0] % 16 == 0 and group == w[0]  # 40 -> 48 channels
            else:
                assert w[1] % 4 == 0  # the stem reads 3 + 1 zero channels
    rewritten = tmp_path / "rewritten.onnx"
    onnx.save(proto, str(rewritten))
    x = torch.randn(4, *SHAPE[1:])
    assert np.abs(_run(rewritten, x) - _run(fp32, x)).max() < 1e-5


@pytest.mark.parametrize("rewrite", [True, False])
def test_int8_of_a_mobile_block_is_close_to_fp32(tmp_path: Path, rewrite: bool) -> None:
    model = _mobile_block()
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    export_onnx(model, fp32, input_shape=SHAPE)
    export_onnx(model, int8, input_shape=SHAPE, int8=True,
                calibration=torch.randn(64, *SHAPE[1:]), config=OnnxInt8Config(rewrite=rewrite))
    x = torch.randn(16, *SHAPE[1:])
    a, b = _run(fp32, x), _run(int8, x)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.98
    assert int8_mac_share(int8) == pytest.approx(1.0)
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    if rewrite:  # the hard-sigmoid scales were folded into the dequantization
        assert not any(n.name.endswith("_dsz_scale") for n in onnx.load(str(int8)).graph.node)
        assert "HardSigmoid" not in ops


def test_qoperator_format_counts_its_int8_macs(tmp_path: Path) -> None:
    # Without the rewrite's input Concat (QLinearConcat, a com.microsoft op that stops
    # ONNX shape inference, so MACs after it cannot be counted in QOperator files).
    path = tmp_path / "int8.onnx"
    export_onnx(_cnn(), path, input_shape=SHAPE, int8=True,
                calibration=torch.randn(16, *SHAPE[1:]),
                config=OnnxInt8Config(quant_format="qoperator", rewrite=False))
    assert "QLinearConv" in {n.op_type for n in onnx.load(str(path)).graph.node}
    assert int8_mac_share(path) == pytest.approx(1.0)


def test_thread_clock_latency(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    export_onnx(_cnn(), path, input_shape=SHAPE)
    ms, spread = measure_onnx_latency_ms(path, SHAPE, warmup=1, repeats=5, clock="thread")
    assert ms > 0 and spread >= 0
    with pytest.raises(ValueError, match="clock='cpu'"):
        measure_onnx_latency_ms(path, SHAPE, clock="cpu")
    with pytest.raises(ValueError, match="thread only with threads=1"):
        measure_onnx_latency_ms(path, SHAPE, threads=2, clock="thread")
