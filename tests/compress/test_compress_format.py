"""The artifact: exact round trip in a fresh process, true sizes, refusal of bad files."""

from __future__ import annotations

import dataclasses
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from compress_models import MODEL_KINDS, build, example_input, fine_tune, make
from torch import nn

import compress
from compress import PruneConfig, QuantConfig
from compress._params import plain_tensors
from compress._table import FLAG_DEFLATE, Record, parse_table, table_bytes

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
    assert size <= 50_000 + 200 + 60  # codes + 100 fp16 scales + header and table


@pytest.mark.parametrize("bits", [2, 3, 6])
def test_odd_bit_widths_are_packed_exactly(tmp_path: Path, bits: int) -> None:
    layer = nn.Linear(800, 10, bias=False)
    compress.apply(layer, [QuantConfig(bits=bits)])
    size = compress.export(layer, tmp_path / "l.dsz")
    assert size <= 8000 * bits // 8 + 20 + 80


def test_header_and_table_are_a_small_part_of_a_mobile_model(tmp_path: Path) -> None:
    model, path = make("mobilenetv3"), tmp_path / "m.dsz"  # mobilenetv3_small_050, 10 classes
    compress.apply(model, [PruneConfig(sparsity=0.5), QuantConfig(bits=4)])
    size = compress.export(model, path, meta={"kind": "mobilenetv3"})
    data = path.read_bytes()
    (hlen,) = struct.unpack("<I", data[8:12])
    sizes = [tuple(t.tensor.shape) for t in plain_tensors(model)]
    *_, table_len = parse_table(data[12 + hlen :], sizes)
    assert len(sizes) > 100
    assert 12 + hlen + table_len < 0.1 * size
    assert table_len <= 2 + 4 + 4 * len(sizes)  # a few bytes per tensor


def test_payload_is_deflated_only_when_smaller(tmp_path: Path) -> None:
    model = make("cnn").eval()  # BatchNorm weights of 1 and biases of 0 deflate well
    compress.apply(model, [QuantConfig(bits=8)])
    x = example_input("cnn")
    with torch.no_grad():
        want = model(x)
    size = compress.export(model, tmp_path / "m.dsz", meta={"kind": "cnn"})
    data = (tmp_path / "m.dsz").read_bytes()
    (hlen,) = struct.unpack("<I", data[8:12])
    assert data[12 + hlen] == FLAG_DEFLATE
    assert size < compress.estimate_size_bytes(make("cnn"), [QuantConfig(bits=8)],
                                               meta={"kind": "cnn"})
    with torch.no_grad():
        assert torch.equal(compress.load(tmp_path / "m.dsz", build).eval()(x), want)
    noise = nn.Linear(64, 64, bias=False)  # random fp32 bits: deflate cannot shrink them
    bits = np.random.default_rng(0).integers(1, 2**31, size=(64, 64), dtype=np.uint32)
    with torch.no_grad():
        noise.weight.copy_(torch.from_numpy(bits.view(np.float32)))
    compress.export(noise, tmp_path / "n.dsz")
    data = (tmp_path / "n.dsz").read_bytes()
    (hlen,) = struct.unpack("<I", data[8:12])
    assert data[12 + hlen] == 0


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


def _split(data: bytes) -> tuple[bytes, int, int, list[Record], bytes]:
    """(bytes before the table, flags, signature, records, payload) of the mlp artifact."""
    (hlen,) = struct.unpack("<I", data[8:12])
    shapes = [tuple(t.tensor.shape) for t in plain_tensors(build({"kind": "mlp"}))]
    flags, sig, records, used = parse_table(data[12 + hlen :], shapes)
    return data[: 12 + hlen], flags, sig, records, data[12 + hlen + used :]


def _with_table(data: bytes, *, flags: int | None = None, sig: int | None = None,
                index: int | None = None, **fields: object) -> bytes:
    head, old_flags, old_sig, records, payload = _split(data)
    if index is not None:  # 0 is "1.bias" (64 fp32), 1 is "1.weight" (64x192, int, bitmask)
        records[index] = dataclasses.replace(records[index], **fields)
    table = table_bytes(records, sig=old_sig if sig is None else sig,
                        flags=old_flags if flags is None else flags)
    return head + table + payload


def _with_table_byte(data: bytes, index: int, offset: int, value: int) -> bytes:
    """Overwrite byte ``offset`` (0: kind, 1: encoding) of tensor ``index``'s table entry."""
    head, *_, payload = _split(data)
    table = bytearray(data[len(head) : len(data) - len(payload)])
    pos = 5 + 1  # flags, crc32, a one-byte tensor count
    for _ in range(index):
        pos += 2 if table[pos + 1] == 0 else 2 + 1 + (table[pos + 2] >= 0x80)
    table[pos + offset] = value
    return head + bytes(table) + payload


def _bomb(data: bytes, header: object) -> bytes:
    """A deflated payload, shorter than the table implies, that inflates to far more."""
    head, flags, sig, records, payload = _split(data)
    raw = zlib.decompress(payload, -15) if flags & FLAG_DEFLATE else payload
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return head + table_bytes(records, sig=sig, flags=FLAG_DEFLATE) + c.compress(
        raw[: len(raw) // 2] + bytes(10**6)) + c.flush()


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d, h: b"", "bad magic"),
        (lambda d, h: b"PK\x03\x04" + d[4:], "bad magic"),  # e.g. a zip / torch.save file
        (lambda d, h: d[:8] + struct.pack("<I", 10**9) + d[12:], "exceeds the file size"),
        (lambda d, h: d[:12] + b"\xff" * 8 + d[20:], "not valid JSON"),
        (lambda d, h: _with_header(d, {**h, "version": 9}), "version=9"),
        (lambda d, h: _with_header(d, {**h, "tensors": []}), "expected exactly"),
        (lambda d, h: _with_table(d, sig=12345), "do not match the built model"),
        (lambda d, h: _with_table(d, flags=0x40), "unknown bits"),
        (lambda d, h: _with_table(d, index=1, count=10**9), "exceeds its 12288 elements"),
        (lambda d, h: _with_table(d, index=1, count=100), "payload"),  # lengths disagree
        (lambda d, h: _with_table(d, index=0, kind="int", bits=3), "payload"),
        (lambda d, h: _with_table_byte(d, 1, 1, 200), "encoding code 200"),
        (lambda d, h: _with_table_byte(d, 1, 0, 7), "kind code 7"),
        (lambda d, h: _with_table_byte(d, 1, 0, 0x82), "shape override"),  # 6144 > 64 rows
        (lambda d, h: d[: len(_split(d)[0]) + 8], "truncated"),  # truncated table
        (lambda d, h: d[:-1], "payload"),  # truncated payload
        (lambda d, h: d + b"\x00", "payload"),  # trailing bytes
        (_bomb, "does not hold exactly"),
    ],
)
def test_corrupt_files_are_refused(tmp_path: Path, corrupt, message: str) -> None:  # type: ignore[no-untyped-def]
    path, data, header = _artifact(tmp_path)
    bad = tmp_path / "bad.dsz"
    bad.write_bytes(corrupt(data, header))
    with pytest.raises(ValueError, match=message):
        compress.load(bad, build)


def test_a_different_model_is_refused(tmp_path: Path) -> None:
    path, _, _ = _artifact(tmp_path)
    with pytest.raises(ValueError, match="6 tensors, the built model has 13"):
        compress.load(path, lambda meta: build({"kind": "cnn"}))
    with pytest.raises(ValueError, match="do not match the built model"):  # same names, widths
        compress.load(path, lambda meta: nn.Sequential(
            nn.Flatten(), nn.Linear(192, 65), nn.ReLU(), nn.Linear(65, 32), nn.ReLU(),
            nn.Linear(32, 10)))


def test_loaded_file_never_calls_build_with_code(tmp_path: Path) -> None:
    path, data, header = _artifact(tmp_path)
    header["meta"] = {"kind": "mlp", "__reduce__": "os.system"}
    bad = tmp_path / "meta.dsz"
    bad.write_bytes(_with_header(data, header))
    seen = []
    compress.load(bad, lambda meta: seen.append(meta) or build({"kind": "mlp"}))
    assert seen == [{"kind": "mlp", "__reduce__": "os.system"}]  # plain data, nothing run
