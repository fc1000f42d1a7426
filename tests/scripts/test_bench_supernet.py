"""scripts/bench_supernet.py's finalised section: a finalist that overruns its trial time
is a failed row, as a search records it, and the bench goes on."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from _results._supernet_fidelity import _finalised as render
from _supernet_finalised import finalised

import nas.hw
import nas.pipeline
from nas.pipeline import TrialTimeout


class _Strategy:
    def __init__(self, final: list[float | None]) -> None:
        self.final = final  # per candidate: val accuracy, or None to overrun

    def score(self, p: Any, ctx: Any) -> Any:
        return SimpleNamespace(metrics={"val_accuracy": 0.5})

    def finalize(self, p: Any, ctx: Any) -> Any:
        assert p.phase == "final"
        val = self.final[p.number]
        if val is None:
            raise TrialTimeout("trial 1 ran past search.trial_timeout_s=180")
        return SimpleNamespace(
            metrics={"val_accuracy": val, "size_bytes": 1000}, test_accuracy=val - 0.01
        )


def _propose(suggest: Any, ctx: Any, *, number: int) -> Any:
    return SimpleNamespace(number=number, feasible=True, compression={"bits": 4}, phase="score")


def test_a_finalist_that_overruns_is_a_failed_row_and_the_rest_still_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nas.pipeline, "propose", _propose)
    monkeypatch.setattr(nas.hw, "RandomSuggest", lambda rng: None)
    out = finalised(None, {"sandwich": _Strategy([0.9, None, 0.7])}, 3)
    rows = [r["sandwich"] for r in out["candidates"]]
    assert [r.get("val_accuracy") for r in rows] == [0.9, None, 0.7]
    assert rows[1]["failed"].startswith("TrialTimeout: trial 1 ran past")
    assert out["val_accuracy_mean"] == {"sandwich": pytest.approx(0.8)}
    page = "\n".join(render(out))
    assert "0.500 -> failed (TrialTimeout)" in page
    assert "sandwich 0.800 (failed finalists left out)." in page


def test_every_finalist_failing_leaves_no_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nas.pipeline, "propose", _propose)
    monkeypatch.setattr(nas.hw, "RandomSuggest", lambda rng: None)
    out = finalised(None, {"sandwich": _Strategy([None])}, 1)
    assert out["val_accuracy_mean"] == {"sandwich": None}
    assert "sandwich none finished (failed finalists left out)." in "\n".join(render(out))
