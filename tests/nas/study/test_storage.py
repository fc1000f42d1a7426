"""``nas.study.trial_at``: one trial, without copying the whole study."""

from __future__ import annotations

import copy
from pathlib import Path

import optuna
import pytest

from nas.study import JournalFile, trial_at


@pytest.fixture(params=["journal", "sqlite"])
def study(request: pytest.FixtureRequest, tmp_path: Path) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage: optuna.storages.BaseStorage | str = (
        optuna.storages.JournalStorage(JournalFile(str(tmp_path / "s.journal")))
        if request.param == "journal"
        else f"sqlite:///{tmp_path / 's.db'}"
    )
    s = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    for i in range(5):
        t = s.ask()
        t.suggest_int("width", 1, 9)
        t.set_user_attr("metrics", {"val_accuracy": i / 10})
        s.tell(t, [i / 10, 100 - i])
    return s


def test_it_is_the_trial_study_trials_would_give(study: optuna.Study) -> None:
    for n in range(5):
        got, want = trial_at(study, n), study.trials[n]
        assert (got.number, got.params, got.user_attrs, got.values) == (
            want.number, want.params, want.user_attrs, want.values,
        )  # fmt: skip


def test_it_copies_only_that_trial(study: optuna.Study, monkeypatch: pytest.MonkeyPatch) -> None:
    copied: list[object] = []
    real = copy.deepcopy
    monkeypatch.setattr(copy, "deepcopy", lambda x, *a: copied.append(x) or real(x, *a))
    t = trial_at(study, 3)
    assert len(copied) == 1 and not isinstance(copied[0], list)  # one trial, not the study
    t.user_attrs["metrics"]["val_accuracy"] = 9.0  # the caller's copy: the study is untouched
    assert study.get_trials(deepcopy=False)[3].user_attrs["metrics"]["val_accuracy"] == 0.3


def test_a_number_the_study_lacks_is_a_key_error(study: optuna.Study) -> None:
    with pytest.raises(KeyError, match="has no trial 7"):
        trial_at(study, 7)
