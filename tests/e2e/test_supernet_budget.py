"""A supernet search whose budget is short trains fewer epochs, records them in the
study, and a resume (under any budget) reuses them: one study, one supernet; the study
name is the command line's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from supernet_configs import tiny_supernet

from nas import compose
from nas.driver import run_search, study_name_of
from nas.pipeline import SupernetStrategy
from nas.pipeline import _supernet_plan as plan_module
from nas.pipeline._supernet_cache import read_key
from nas.study import keys, make_storage

STEP_S = 2.0
"""The step time the test pretends to measure: ~13 s an epoch of 5 steps at 1.3x, so a
budget of ~60 s fits 3 of 6 epochs while the real tiny search takes seconds."""


def test_fitted_epochs_are_recorded_and_a_resume_reuses_them(
    tmp_path: Path, fast: Callable[..., list[str]], monkeypatch, capsys, mlflow_runs
) -> None:
    monkeypatch.setattr(plan_module, "step_seconds", lambda *a, shared, **k: STEP_S)
    monkeypatch.setattr(
        SupernetStrategy, "reserve_s", lambda self, ctx, seconds=None, largest=None: 1.0
    )
    # fmt: off
    args = (*tiny_supernet(n_trials=8, warmup_epochs=2), "strategy.epochs=6",
            "dataset.n_train=300", "train.batch_size=64", f"search.output_dir={tmp_path}")
    # fmt: on
    epoch_s = 5 * STEP_S * plan_module.SAFETY  # 300 images in batches of 64: 5 steps
    timeout = 1.0 + 3 * epoch_s / plan_module.TRAIN_SHARE + 5  # + the start before the fit
    cfg = compose(fast(*args, f"search.timeout_s={timeout}"))
    name = study_name_of(cfg)
    outcome = run_search(cfg)
    assert outcome.exit_code == 0, outcome
    said = capsys.readouterr().err
    assert "The supernet trains 3 of strategy.epochs=6 epochs (warm-up 1)" in said
    study = optuna.load_study(study_name=name, storage=make_storage(None, name, tmp_path))
    assert study.user_attrs[keys.STRATEGY_PLAN] == {"epochs": 3, "warmup_epochs": 1}
    (cached,) = (tmp_path / "outputs" / "supernets").glob("*.safetensors")
    assert read_key(cached)["recipe"]["epochs"] == 3
    (parent,) = mlflow_runs(tmp_path, "search")
    assert parent.data.params["strategy.epochs"] == "3"

    # A resume with another budget (budgets are not in the study's name), that would
    # fit another plan: the recorded one is applied, nothing is measured or retrained.
    monkeypatch.setattr(plan_module, "step_seconds", None)
    again = compose(fast(*args, "search.timeout_s=30", "search.n_trials=10"))
    assert study_name_of(again) == name
    outcome = run_search(again)
    assert outcome.exit_code == 0, outcome
    said = capsys.readouterr().err
    assert "Resuming with what its first start fitted to its budget: strategy.epochs=3, " \
        "strategy.warmup_epochs=1." in said  # fmt: skip
    assert "Trained the supernet" not in said
    assert len(list((tmp_path / "outputs" / "supernets").glob("*.safetensors"))) == 1


@pytest.mark.parametrize("timeout", [2])
def test_a_budget_that_cannot_train_two_epochs_writes_nothing(
    tmp_path: Path, fast: Callable[..., list[str]], monkeypatch, timeout: int
) -> None:
    from nas.config import ConfigError

    monkeypatch.setattr(plan_module, "step_seconds", lambda *a, shared, **k: STEP_S)
    cfg = compose(fast(*tiny_supernet(n_trials=8, warmup_epochs=1),
                       f"search.output_dir={tmp_path}", f"search.timeout_s={timeout}"))  # fmt: skip
    with pytest.raises(ConfigError, match="its training needs at least"):
        run_search(cfg)
    assert not list(tmp_path.glob("*.journal")) and not (tmp_path / "mlflow.db").exists()
