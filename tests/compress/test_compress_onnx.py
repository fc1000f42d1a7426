"""ONNX export (fp32 and ONNX Runtime static int8) and the int8 MAC share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import timm
import torch
from torch import nn

from compress import size_bytes
from compress._onnx import OnnxInt8Config, export_onnx, int8_mac_share

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
    # First conv: 16 x 27 MACs per pixel at 32x32; second: 32 x 144 at 16x16; Linear 320.
    first, second = 32 * 32 * 16 * 27, 16 * 16 * 32 * 144
    assert share == pytest.approx((second + 320) / (first + second + 320))


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
