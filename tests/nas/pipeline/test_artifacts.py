"""Crafted artifacts are refused by ``nas.pipeline.load_artifact``: nothing in a
``.dsz`` file is unpickled or runs code, and a model too large to build is refused."""

from __future__ import annotations

import functools
import json
import os
import pickle
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from torch import nn

import compress
from nas.pipeline import load_artifact
from search_spaces import InputSpec, get_search_space


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@functools.cache
def _format() -> tuple[bytes, int]:
    """The magic bytes and the header version of the artifact format, as written by a
    real export: magic, header length (uint32, little-endian), JSON header."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.dsz"
        compress.export(nn.Linear(1, 1), path, meta={})
        raw = path.read_bytes()
    start = raw.index(b"{")
    (length,) = struct.unpack("<I", raw[start - 4 : start])
    return raw[: start - 4], json.loads(raw[start : start + length])["version"]


def _magic() -> bytes:
    return _format()[0]


def _header(meta: dict) -> bytes:
    raw = json.dumps({"format": "downsize", "version": _format()[1], "meta": meta}).encode()
    return _magic() + struct.pack("<I", len(raw)) + raw


ARTIFACTS: dict[str, Callable[[], bytes]] = {
    "pickle": lambda: pickle.dumps(_Boom()),
    "torch-save-zip": lambda: b"PK\x03\x04" + pickle.dumps(_Boom()),
    "header-length-huge": lambda: _magic() + struct.pack("<I", 2**32 - 1) + b"{}",
    "header-not-json": lambda: _magic() + struct.pack("<I", 4) + b"\xff\xfe{[",
    "meta-missing-keys": lambda: _header({"space": "tiny"}),
    "meta-unknown-space": lambda: _header(
        {"space": "os.system", "space_cfg": {}, "arch": {}, "spec": {}}
    ),
    "model-huge": lambda: _header({
        "space": "tiny", "space_cfg": {},
        "arch": {"kind": "mlp", "hidden": [1_000_000, 1_000_000]},
        "spec": {"in_chans": 1, "image_size": 8, "num_classes": 10},
    }),
}  # fmt: skip


def test_a_real_header_loads(tmp_path: Path) -> None:
    """The control: a header of this format with a real space and arch loads, so each
    refusal below is the crafted part's."""
    arch = {"kind": "mlp", "hidden": [16]}
    spec = {"in_chans": 1, "image_size": 8, "num_classes": 10}
    model = get_search_space("tiny").build(arch, InputSpec(**spec))
    path = tmp_path / "model.dsz"
    compress.export(
        model, path, meta={"space": "tiny", "space_cfg": {}, "arch": arch, "spec": spec}
    )
    assert path.read_bytes().startswith(_magic())
    assert isinstance(load_artifact(path), nn.Module)


@pytest.mark.parametrize("kind", list(ARTIFACTS))
def test_crafted_artifacts_are_refused(tmp_path: Path, kind: str, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.dsz"
    path.write_bytes(ARTIFACTS[kind]())
    with pytest.raises(ValueError):
        load_artifact(path)
    assert not (tmp_path / "pwned").exists()
