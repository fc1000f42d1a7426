"""When scoring stops (``nas.driver._search._scoring_deadline``): the finalists' reserve
before the budget's end; for a strategy that finalises, a floor when its preparation (a
supernet trained on a loaded machine) ran past its plan, so the search still ends with
a front, and says that it ends late."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from nas.driver._search import _scoring_deadline

CFG = OmegaConf.create({"search": {"timeout_s": 900}})


def _strategy(records_scores: bool, reserve: float) -> SimpleNamespace:
    return SimpleNamespace(records_scores=records_scores, reserve_s=lambda ctx, s: reserve)


def test_scoring_ends_where_the_finalists_reserve_begins() -> None:
    deadline = time.monotonic() + 800
    got = _scoring_deadline(CFG, _strategy(False, 300.0), None, deadline)  # type: ignore[arg-type]
    assert got == pytest.approx(deadline - 300)


def test_an_overrun_preparation_still_leaves_a_floor_of_scoring(
    capsys: pytest.CaptureFixture[str],
) -> None:
    deadline = time.monotonic() + 200  # the supernet took 700 of 900 s; 300 s reserved
    start = time.monotonic()
    got = _scoring_deadline(CFG, _strategy(False, 300.0), None, deadline)  # type: ignore[arg-type]
    assert got - start == pytest.approx(0.05 * 900, abs=1.0)
    err = capsys.readouterr().err
    assert "left 0 s of search.timeout_s=900 for scoring" in err
    assert "will end past its budget" in err


def test_a_strategy_that_trains_every_candidate_keeps_its_deadline() -> None:
    deadline = time.monotonic() + 10
    assert _scoring_deadline(CFG, _strategy(True, 0.0), None, deadline) == deadline  # type: ignore[arg-type]
