"""scripts/bench_supernet_shift.py: its arguments and its summary (the measurement
itself is docs/bench/supernet_shift.json's, minutes long)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_supernet_shift.py"


def test_an_unknown_variant_is_one_clear_line() -> None:
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--variants", "before,nosuch"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2
    assert "unknown variants ['nosuch']; choose from ['before', 'shift2_20'" in r.stderr


def _variant(largest: float, inherited: list[float], finals: list[float]) -> dict[str, Any]:
    return {
        "largest_by_width": [{"test": largest}],
        "uniform_inherited": [{"test": t} for t in inherited],
        "finalised": [{"test": t, "seconds": 1.0} for t in finals],
    }


def test_the_summary_pairs_each_finalist_with_the_baselines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from bench_supernet_shift import _summary

    s = _summary({
        "before": _variant(0.95, [0.9, 0.8], [0.96, 0.97, 0.95]),
        "shift2_30": _variant(0.97, [0.9, 0.9], [0.97, 0.96, 0.98]),
    })  # fmt: skip
    assert "finalised_gain_points" not in s["before"]
    after = s["shift2_30"]
    assert after["finalised_gain_points"] == pytest.approx(100 * (0.01 - 0.01 + 0.03) / 3)
    assert after["finalised_higher"] == "2 of 3"
    assert after["inherited_test_mean"] == pytest.approx(0.9)
    assert after["finalised_seconds"] == 3.0
