"""bench_fidelity's recipes section: every recipe and a scratch trial on the same
candidates, resumable, and the page's verdict follows the figures."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import _fidelity_recipes as fr
import pytest
from _results._supernet_fidelity import recipes as render

import nas.hw
import nas.pipeline

_DEFAULTS = {"finetune_lr": 0.005, "finetune_patience": 2, "finetune_epochs": 10,
             "bn_calib_images": 500}  # fmt: skip


class _Strategy:
    def __init__(self) -> None:
        self.cfg = dict(_DEFAULTS)
        self.finalised: list[tuple[int, dict[str, Any]]] = []

    def score(self, p: Any, ctx: Any) -> Any:
        return SimpleNamespace(metrics={"val_accuracy": 0.9})

    def finalize(self, p: Any, ctx: Any) -> Any:
        assert p.phase == "final"
        self.finalised.append((p.number, dict(self.cfg)))
        acc = 0.97 if self.cfg["finetune_lr"] == 0.02 else 0.96
        return SimpleNamespace(metrics={"val_accuracy": acc, "size_bytes": 100,
                                        "finetune_epochs": 4}, test_accuracy=acc)  # fmt: skip


def _propose(suggest: Any, ctx: Any, *, number: int) -> Any:
    # Every other draw is 2-bit: left out of the front's part of the space.
    bits = 2 if number % 2 else 4
    return SimpleNamespace(number=number, feasible=True, arch={"w": 1},
                           compression={"bits": bits, "sparsity": 0.1}, phase="score")  # fmt: skip


def _scratch(p: Any, ctx: Any) -> Any:
    return SimpleNamespace(metrics={"val_accuracy": 0.96, "size_bytes": 100}, test_accuracy=0.96)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nas.pipeline, "propose", _propose)
    monkeypatch.setattr(nas.pipeline, "train_proposal", _scratch)
    monkeypatch.setattr(nas.hw, "RandomSuggest", lambda rng: None)


def test_every_recipe_runs_on_the_same_candidates_and_defaults_come_back(
    fakes: None, tmp_path: Path
) -> None:
    strategy = _Strategy()
    ctx = SimpleNamespace(train_cfg=SimpleNamespace(epochs=5))
    out = fr.recipes(ctx, strategy, 2, tmp_path)
    assert [r["number"] for r in out["candidates"]] == [0, 2]  # the 2-bit draws left out
    assert strategy.cfg == _DEFAULTS  # each variant's settings were put back
    lrs = [cfg["finetune_lr"] for _, cfg in strategy.finalised]
    assert lrs == [0.005, 0.02, 0.005, 0.005] * 2
    assert [cfg["finetune_epochs"] for _, cfg in strategy.finalised][3] == 20
    assert out["compared_on"] == 2
    assert out["summary"]["finetune_lr 0.02"]["test_accuracy_mean"] == pytest.approx(0.97)
    assert set(out["summary"]) == {*fr.RECIPES, fr.SCRATCH}
    # A rerun finds every row kept and measures nothing again.
    again = _Strategy()
    fr.recipes(ctx, again, 2, tmp_path)
    assert again.finalised == []


def _record(default_test: float, default_s: float) -> dict[str, Any]:
    row = {"test_accuracy_mean": 0.960, "val_accuracy_mean": 0.970, "seconds": 100.0}
    return {
        "summary": {
            "default": {**row, "test_accuracy_mean": default_test, "seconds": default_s},
            "finetune_lr 0.02": row,
            fr.SCRATCH: row,
        },
        "scratch": fr.SCRATCH, "compared_on": 7, "draw": "uniform, seed 1",
        "defaults": {"finetune_lr": 0.005, "finetune_patience": 2, "finetune_epochs": 10},
        "measured": {"commit": "abc1234", "date": "2026-12-07", "quick": False},
    }  # fmt: skip


def test_the_page_says_the_inherited_start_buys_nothing_when_it_does_not() -> None:
    text = " ".join(render(_record(0.961, 127.0)))
    assert "| default | 0.9610 | 0.9700 | 127 | 1.27x |" in text
    assert "gives +0.1 points of test accuracy over a scratch trial at 1.27x its time" in text
    assert "buys a finalist nothing that a scratch trial does not" in text


def test_the_page_does_not_say_so_when_the_start_pays() -> None:
    text = " ".join(render(_record(0.970, 127.0)))
    assert "gives +1.0 points of test accuracy over a scratch trial at 1.27x its time." in text
    assert "buys a finalist nothing" not in text
    assert render(None) == [] and render({"summary": {}}) == []
