"""The runner benchmark's steady-state window: trials per minute and overhead."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

_spec = importlib.util.spec_from_file_location(
    "bench_runner", Path(__file__).resolve().parents[2] / "scripts" / "bench_runner.py"
)
assert _spec is not None and _spec.loader is not None
bench_runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_runner)


def _trials(n: int, slots: int, *, period: float, own: float, phase: float) -> dict[str, Any]:
    """``n`` trials over ``slots`` slots, each taking ``period`` s of which ``own`` is the
    trial's; slot k starts ``k * phase`` s late (the phases need not be even)."""
    trials = []
    for i in range(n):
        start = (i % slots) * phase + (i // slots) * period
        trials.append({"start": start, "end": start + period, "trial_seconds": own})
    trials.sort(key=lambda t: t["end"])
    return {"trials": trials, "total_wall_s": trials[-1]["end"]}


@pytest.mark.parametrize(
    ("n", "slots", "phase"), [(8, 1, 0.0), (8, 2, 1.0), (10, 2, 7.0), (9, 2, 13.0), (12, 3, 4.0)]
)
def test_steady_state_rate_and_overhead_are_exact(n: int, slots: int, phase: float) -> None:
    fig = bench_runner.figures(_trials(n, slots, period=30.0, own=27.0, phase=phase), slots)
    assert fig["trials_per_minute"] == pytest.approx(60.0 * slots / 30.0)
    assert fig["overhead_fraction"] == pytest.approx(0.1)


def test_an_idle_slot_at_the_end_is_not_overhead() -> None:
    # 2 slots, 9 trials: the last one runs alone; the window stops before it
    raw = _trials(9, 2, period=30.0, own=30.0, phase=0.0)
    raw["trials"][-1]["end"] += 30.0  # and it is slow
    fig = bench_runner.figures(raw, 2)
    assert fig["overhead_fraction"] == pytest.approx(0.0)
    assert fig["trials_per_minute"] == pytest.approx(4.0)
