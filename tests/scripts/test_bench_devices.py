"""scripts/bench_devices.py pairs each seed's searches and reports the targets; the
record renders in docs/results.md."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[2]
DEVICES = ["mobile", "raspi4", "mcu"]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, _ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(hv: dict[str, float], wall: float) -> dict[str, Any]:
    return {"hypervolume": hv, "wall_s": wall}


def _results() -> dict[tuple[str, int], dict[str, Any]]:
    return {
        ("multi", 0): _run({"mobile": 0.10, "raspi4": 0.05, "mcu": 0.20}, 300.0),
        ("mobile", 0): _run({"mobile": 0.10}, 250.0),
        ("raspi4", 0): _run({"raspi4": 0.10}, 200.0),
        ("mcu", 0): _run({"mcu": 0.0}, 300.0),  # nothing on its front: no ratio
        ("multi", 1): _run({"mobile": 0.12, "raspi4": 0.09, "mcu": 0.19}, 260.0),
        ("mobile", 1): _run({"mobile": 0.10}, 260.0),
        ("raspi4", 1): _run({"raspi4": 0.10}, 260.0),
        ("mcu", 1): _run({"mcu": 0.20}, 260.0),
    }


def test_ratios_are_paired_per_seed_then_averaged() -> None:
    bench = _load("bench_devices")
    report = bench.summarize(_results(), DEVICES, [0, 1])
    first, second = report["per_seed"]
    assert first["hv_ratio_mobile"] == pytest.approx(1.0)
    assert first["hv_ratio_raspi4"] == pytest.approx(0.5)
    assert first["hv_ratio_mcu"] is None
    assert first["wall_ratio"] == pytest.approx(300 / 250)
    assert first["wall_ratio_to_all_dedicated"] == pytest.approx(300 / 750)
    assert report["hv_ratio_mobile"] == pytest.approx((1.0 + 1.2) / 2)
    assert report["hv_ratio_raspi4"] == pytest.approx((0.5 + 0.9) / 2)
    assert report["hv_ratio_mcu"] == pytest.approx(0.95)  # the one seed with a ratio
    assert report["wall_ratio"] == pytest.approx((1.2 + 1.0) / 2)
    assert report["target"] == {
        "hv_ratio_min": 0.95, "wall_ratio_max": 1.2, "hv_met": False, "wall_met": True,
    }  # fmt: skip


def test_the_record_renders_in_results_md(tmp_path: Path) -> None:
    bench = _load("bench_devices")
    report = bench.summarize(_results(), DEVICES, [0, 1])
    report.update(n_trials=27, machine="2 CPUs; searches side by side: 2", commit="abc1234",
                  date="2026-11-29", device_constraint="round_robin")  # fmt: skip
    report["compared"] = {
        "device_constraint": "any", "commit": "def5678", "wall_ratio": 1.15,
        "hv_ratio_mobile": 0.99, "hv_ratio_raspi4": 0.48, "hv_ratio_mcu": 0.95,
    }  # fmt: skip
    report["constraints"] = {
        "proposals": 10,
        "seeds": [0],
        **{
            s: {
                "feasible_nowhere_share": 0.1,
                "feasible_on": dict.fromkeys(DEVICES, 3.0),
                "hypervolume": dict.fromkeys(DEVICES, 0.01),
            }  # fmt: skip
            for s in bench.CONSTRAINT_SETTINGS
        },
    }
    assert "| any_device | 10% | 3 / 0.0100 |" in bench.markdown(report)
    records = tmp_path / "bench"
    shutil.copytree(_ROOT / "docs" / "bench", records)
    (records / "devices.json").write_text(json.dumps(report))
    out = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, str(_ROOT / "scripts" / "make_results.py"), "--bench-dir", str(records),
         "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    section = out.read_text().split("\n## Several devices, one search\n")[1].split("\n## ")[0]
    text = " ".join(section.split())
    assert "commit abc1234, date 2026-11-29" in text
    assert "| 0 | 0.1000 / 0.1000 (1.00x) | 0.0500 / 0.1000 (0.50x) | 0.2000 / 0.0000 |" in text
    assert "Hypervolume ratio at least 0.95 on every device: **missed** (mobile 1.10x, " in text
    assert "Wall time at most 1.2x one dedicated search: **met** (1.10x" in text
    assert (
        "bench_devices.py --jobs 2 --n-trials 27 --seeds 2 --device-constraint round_robin" in text
    )
    assert "| feasible on any device (`any`) | 10% | 3 / 0.0100 | 3 / 0.0100 | 3 / 0.0100 |" in (
        text
    )
    assert (
        "device_constraint=any` (the same dedicated searches; its multi-device runs at "
        "commit def5678): hypervolume mobile 0.99x, raspi4 0.48x, mcu 0.95x; wall time "
        "1.15x." in text
    )
