from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn

from nas.hw import HardwareModel, list_latency_methods, measure_latency_ms, register_latency_method


@dataclass
class Profile:
    name: str = "test"
    latency: str = "predict"
    predictor: str | None = "pixel3"
    latency_budget_ms: float | None = None
    size_budget_bytes: int | None = None
    peak_memory_budget_bytes: int | None = None
    bits: list[int] = field(default_factory=lambda: [8, 32])
    activation_bytes: int = 4
    threads: int = 1


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1))


def test_methods_registered() -> None:
    assert list_latency_methods() == ["measure", "none", "predict"]
    with pytest.raises(ValueError, match="already registered"):
        register_latency_method("measure")(lambda hw, m, s: 0.0)


def test_predict_measure_none() -> None:
    shape = (1, 3, 16, 16)
    assert HardwareModel(Profile()).latency_ms(tiny(), shape) > 0
    measured = HardwareModel(Profile(latency="measure", predictor=None))
    assert measured.latency_ms(tiny(), shape) > 0
    assert math.isnan(
        HardwareModel(Profile(latency="none", predictor=None)).latency_ms(tiny(), shape)
    )


def test_peak_memory_uses_activation_bytes() -> None:
    shape = (1, 3, 16, 16)
    fp32 = HardwareModel(Profile()).peak_memory_bytes(tiny(), shape)
    int8 = HardwareModel(Profile(activation_bytes=1)).peak_memory_bytes(tiny(), shape)
    assert fp32 == 4 * int8 == 4 * (8 + 8) * 16 * 16  # conv1 output + conv2 output


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"latency": "guess"}, "allowed: measure, none, predict"),
        ({"predictor": None}, "needs predictor"),
        ({"predictor": "pixel9"}, "available:"),
        ({"activation_bytes": 0}, "activation_bytes=0"),
    ],
)
def test_bad_profiles(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HardwareModel(Profile(**kwargs))  # type: ignore[arg-type]


def test_measure_latency_restores_threads() -> None:
    before = torch.get_num_threads()
    model = tiny()
    model.train()
    median, spread = measure_latency_ms(model, (1, 3, 16, 16), threads=1, warmup=2, repeats=5)
    assert median > 0 and spread >= 0
    assert torch.get_num_threads() == before and model.training
    with pytest.raises(ValueError, match="repeats=0"):
        measure_latency_ms(model, (1, 3, 16, 16), repeats=0)


# -- the device-profile commands refuse bad input: one line, exit code 2, before any work ----

FBNET_ARCH = {"ops": ["skip"] * 22}


def _rows(*cells: str) -> str:
    return "arch,ms\n" + "".join(f"{c}\n" for c in cells)


GOOD_ROW = '"' + json.dumps(FBNET_ARCH).replace('"', '""') + '",2.5'

CALIBRATE_BAD = [
    # (id, CSV text or None for no file, extra argv, words the one line must contain)
    ("missing-file", None, [], ["not found"]),
    ("not-utf8", b"\xff\xfe\x00arch", [], ["not a UTF-8"]),
    ("no-ms-column", "arch,latency\nx,1\n", [], ["missing column", "'ms'"]),
    ("unquoted-json", _rows('{"ops": ["skip", "skip"]},1'), [], ["line 2", "quote the arch"]),
    ("not-json", _rows("nope,1"), [], ["line 2", "not JSON"]),
    ("not-object", _rows('"[1, 2]",1'), [], ["line 2", "JSON object"]),
    ("empty-ms", _rows(GOOD_ROW, '"{}",'), [], ["line 3", "empty"]),
    ("ms-text", _rows(GOOD_ROW.replace("2.5", "fast")), [], ["ms='fast'", "not a number"]),
    ("ms-inf", _rows(GOOD_ROW.replace("2.5", "inf")), [], ["ms=inf", "finite number > 0"]),
    ("ms-zero", _rows(GOOD_ROW.replace("2.5", "0")), [], ["ms=0", "> 0"]),
    ("few-ops", _rows('"{""ops"": [""skip""]}",1'), [], ["line 2", "22 op names", "got 1"]),
    ("unknown-op", _rows(GOOD_ROW.replace("skip", "k9_e9", 1)), [], ["unknown ops ['k9_e9']"]),
    ("row-space", "arch,ms,space\n\"{}\",1,nosuch\n", [], ["space='nosuch'", "fbnet, mbconv"]),
    ("bad-arch", _rows('"{""kind"": ""mlp"", ""hidden"": [-5]}",1'),
     ["--space", "tiny", "--in-chans", "1", "--image-size", "8", "--num-classes", "10"],
     ["line 2", "not a tiny architecture"]),
    ("too-few", _rows(GOOD_ROW, GOOD_ROW), [], [">= 3 networks"]),
    ("space", _rows(GOOD_ROW), ["--space", "nosuch"], ["--space='nosuch'", "fbnet"]),
    ("image-size", _rows(GOOD_ROW), ["--image-size", "0"], ["--image-size=0", ">= 1"]),
    ("exclude", _rows(GOOD_ROW), ["--exclude", "pixel9"], ["pixel9", "pixel3, raspi4"]),
    ("device", _rows(GOOD_ROW), ["--device", " "], ["--device is empty"]),
    ("out-dir", _rows(GOOD_ROW), ["--out", "{tmp}"], ["is a directory"]),
    ("out-under-file", _rows(GOOD_ROW), ["--out", "{tmp}/m.csv/x.json"], ["not a directory"]),
    ("flag", _rows(GOOD_ROW), ["--image-size", "big"], ["invalid int value: 'big'"]),
]  # fmt: skip


@pytest.mark.parametrize("case", CALIBRATE_BAD, ids=[c[0] for c in CALIBRATE_BAD])
def test_calibrate_hw_refuses_bad_input(tmp_path: Path, case, capsys) -> None:
    from nas.calibrate_hw import main

    _, text, extra, words = case
    csv_path = tmp_path / "m.csv"
    if isinstance(text, bytes):
        csv_path.write_bytes(text)
    elif text is not None:
        csv_path.write_text(text)
    out = tmp_path / "dev.json"
    argv = [str(csv_path), "--out", str(out), *(a.format(tmp=tmp_path) for a in extra)]
    assert main(argv) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0]
    assert not out.exists()


PROFILE_BAD = [
    ("quick-and-grid", ["--quick", "--grid", "full"], ["--quick and --grid full"]),
    ("threads-zero", ["--threads", "0"], ["--threads=0", "[1, "]),
    ("threads-too-many", ["--threads", "4096"], ["--threads=4096", "cores"]),
    ("n-fit", ["--n-fit", "3"], ["--n-fit=3", ">= 6"]),
    ("n-eval", ["--n-eval", "-1"], ["--n-eval=-1", ">= 0"]),
    ("device", ["--device", ""], ["--device is empty"]),
    ("grid", ["--grid", "huge"], ["invalid choice: 'huge'"]),
    ("out-dir", ["--out", "{tmp}"], ["is a directory"]),
    # Seeded: the tiny grid's first 6 networks hold 2 with fp32 kernels, 3 are needed.
    ("few-fp32", ["--grid", "tiny", "--n-fit", "6"], ["--n-fit=6", "use --n-fit 7"]),
]


@pytest.mark.parametrize("case", PROFILE_BAD, ids=[c[0] for c in PROFILE_BAD])
def test_profile_hw_refuses_bad_input(tmp_path: Path, case, capsys) -> None:
    from nas.profile_hw import main

    _, extra, words = case
    out = tmp_path / "host.json"
    assert main(["--out", str(out), *(a.format(tmp=tmp_path) for a in extra)]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0]
    assert not out.exists()
