"""The artifact: exact round trip in a fresh process, true sizes, refusal of bad files."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from compress_models import MODEL_KINDS, build, example_input, fine_tune, make
from torch import nn

import compress
from compress import PruneConfig, QuantConfig

HERE = Path(__file__).parent

# Loads every artifact in a new interpreter: nothing is shared with the exporter
# but the file and the build function; inputs and outputs travel as .npy.
_LOADER = """
import sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
import compress
from compress_models import build
for stem in sys.argv[2:]:
    model = compress.load(stem + ".dsz", build).eval()
    with torch.no_grad():
        y = model(torch.from_numpy(np.load(stem + ".in.npy")))
    np.save(stem + ".out.npy", y.numpy())
"""

CASES = [(kind, cfgs) for kind in MODEL_KINDS for cfgs in (
    [PruneConfig(sparsity=0.5), QuantConfig(bits=4)],
    [PruneConfig(sparsity=0.9, scope="layer"), QuantConfig(bits=3)],
    [QuantConfig(bits=16)],
)] + [("cnn", [PruneConfig(sparsity=0.8)]), ("cnn", [QuantConfig(bits=6)]),
      ("mlp", [QuantConfig(bits=2)]), ("mlp", [QuantConfig(bits=8)]), ("mlp", [])]


def test_round_trip_in_a_fresh_process(tmp_path: Path) -> None:
    expected, stems = [], []
    for i, (kind, cfgs) in enumerate(CASES):
        model, x = make(kind, seed=i), example_input(kind)
        compress.apply(model, cfgs)
        fine_tune(model, x, steps=2)
        with torch.no_grad():
            expected.append(model(x).numpy())
        stem = str(tmp_path / f"case{i}")
        written = compress.export(model, stem + ".dsz", meta={"kind": kind})
        assert written == compress.size_bytes(stem + ".dsz")
        np.save(stem + ".in.npy", x.numpy())
        stems.append(stem)
    subprocess.run([sys.executable, "-c", _LOADER, str(HERE), *stems], check=True)
    for (kind, cfgs), stem, want in zip(CASES, stems, expected, strict=True):
        got = np.load(stem + ".out.npy")
        assert np.array_equal(got, want), f"{kind} {cfgs}: max diff {np.abs(got - want).max()}"


def test_load_gives_the_effective_weights(tmp_path: Path) -> None:
    model = make("cnn")
    compress.apply(model, [PruneConfig(sparsity=0.6), QuantConfig(bits=4)])
    compress.export(model, tmp_path / "m.dsz", meta={"kind": "cnn"})
    plain = compress.load(tmp_path / "m.dsz", build)
    assert compress.stats(plain) == compress.stats(model)
    for name, b in plain.named_modules():
        if isinstance(b, nn.Conv2d | nn.Linear):
            assert torch.equal(model.get_submodule(name).weight, b.weight)


def test_read_meta(tmp_path: Path) -> None:
    meta = {"kind": "mlp", "arch": {"depth": [1, 2], "name": "é"}}
    compress.export(make("mlp"), tmp_path / "m.dsz", meta=meta)
    assert compress.read_meta(tmp_path / "m.dsz") == meta
    with pytest.raises(ValueError, match="JSON-serializable"):
        compress.export(make("mlp"), tmp_path / "n.dsz", meta={"bad": object()})


def test_four_bit_layer_takes_half_a_byte_per_weight(tmp_path: Path) -> None:
    layer = nn.Linear(1000, 100, bias=False)  # 100k weights
    compress.apply(layer, [QuantConfig(bits=4)])
    size = compress.export(layer, tmp_path / "l.dsz")
    assert 50_000 + 400 <= size <= 50_000 + 400 + 300  # codes + 100 fp32 scales + header


@pytest.mark.parametrize("bits", [2, 3, 6])
def test_odd_bit_widths_are_packed_exactly(tmp_path: Path, bits: int) -> None:
    layer = nn.Linear(800, 10, bias=False)
    compress.apply(layer, [QuantConfig(bits=bits)])
    size = compress.export(layer, tmp_path / "l.dsz")
    assert size <= 8000 * bits // 8 + 40 + 300


def test_size_bytes_counts_onnx_external_data(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x" * 10)
    assert compress.size_bytes(tmp_path / "m.onnx") == 10
    (tmp_path / "m.onnx.data").write_bytes(b"x" * 5)
    assert compress.size_bytes(tmp_path / "m.onnx") == 15


def _artifact(tmp_path: Path) -> tuple[Path, bytes, dict]:  # type: ignore[type-arg]
    path = tmp_path / "good.dsz"
    model = make("mlp")
    compress.apply(model, [PruneConfig(sparsity=0.5), QuantConfig(bits=4)])
    compress.export(model, path, meta={"kind": "mlp"})
    data = path.read_bytes()
    (hlen,) = struct.unpack("<I", data[8:12])
    return path, data, json.loads(data[12 : 12 + hlen])


def _with_header(data: bytes, header: dict) -> bytes:  # type: ignore[type-arg]
    (hlen,) = struct.unpack("<I", data[8:12])
    raw = json.dumps(header).encode()
    return data[:8] + struct.pack("<I", len(raw)) + raw + data[12 + hlen :]


def _tamper(header: dict, field: str, value: object, index: int = 1
            ) -> dict:  # type: ignore[type-arg]
    header = json.loads(json.dumps(header))
    header["tensors"][index][field] = value  # 0 is "1.bias" (64 fp32), 1 is "1.weight" (int)
    return header


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d, h: b"", "bad magic"),
        (lambda d, h: b"PK\x03\x04" + d[4:], "bad magic"),  # e.g. a zip / torch.save file
        (lambda d, h: d[:8] + struct.pack("<I", 10**9) + d[12:], "exceeds the file size"),
        (lambda d, h: d[:12] + b"\xff" * 8 + d[20:], "not valid JSON"),
        (lambda d, h: _with_header(d, {**h, "version": 9}), "version=9"),
        (lambda d, h: _with_header(d, _tamper(h, "enc", "evil")), "enc='evil'"),
        (lambda d, h: _with_header(d, _tamper(h, "bits", 5)), "bits=5"),
        (lambda d, h: _with_header(d, _tamper(h, "off", 10**9)), "out of bounds"),
        (lambda d, h: _with_header(d, _tamper(h, "len", 3)), "does not match"),
        (lambda d, h: _with_header(d, _tamper(h, "count", -1)), "non-negative"),
        (lambda d, h: _with_header(d, _tamper(h, "shape", [8, 8], 0)), "has shape"),
        (lambda d, h: _with_header(d, _tamper(h, "name", "x.weight")), "do not match"),
        (lambda d, h: d[:-1], "out of bounds"),  # truncated payload
    ],
)
def test_corrupt_files_are_refused(tmp_path: Path, corrupt, message: str) -> None:  # type: ignore[no-untyped-def]
    path, data, header = _artifact(tmp_path)
    bad = tmp_path / "bad.dsz"
    bad.write_bytes(corrupt(data, header))
    with pytest.raises(ValueError, match=message):
        compress.load(bad, build)


def test_loaded_file_never_calls_build_with_code(tmp_path: Path) -> None:
    path, data, header = _artifact(tmp_path)
    header["meta"] = {"kind": "mlp", "__reduce__": "os.system"}
    bad = tmp_path / "meta.dsz"
    bad.write_bytes(_with_header(data, header))
    seen = []
    compress.load(bad, lambda meta: seen.append(meta) or build({"kind": "mlp"}))
    assert seen == [{"kind": "mlp", "__reduce__": "os.system"}]  # plain data, nothing run
