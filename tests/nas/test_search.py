"""End-to-end searches on the `digits` data, checked through what they wrote."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from nas import compose
from nas.driver import run_search, study_name_of
from nas.pipeline import load_splits
from nas.study import smallest_achievable
from nas.study.keys import INTERRUPTED

FAST = [
    "dataset=digits",
    "search_space=tiny",
    "train.epochs=1",
    "compress.finetune_epochs=1",
    "search.progress=false",
    "search.timeout_s=null",
]


def _cfg(tmp_path: Path, *extra: str):
    return compose([*FAST, f"search.output_dir={tmp_path}", *extra])


def _runs(tmp_path: Path, role: str):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("downsize")
    return client, client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`nas.role` = '{role}'", max_results=1000
    )


def test_search_writes_front_and_runs_to_mlflow(tmp_path: Path) -> None:
    outcome = run_search(_cfg(tmp_path, "search.n_trials=4"))
    assert outcome.exit_code == 0
    assert outcome.n_trials == 4
    assert len(outcome.front) >= 1
    for row in outcome.front:
        assert 0.0 <= row["val_accuracy"] <= 1.0
        assert 0.0 <= row["test_accuracy"] <= 1.0
        # size_bytes is the artifact actually written
        assert Path(tmp_path / "outputs" / outcome.study_name).is_dir()

    client, parents = _runs(tmp_path, "search")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["nas.study_name"] == outcome.study_name
    assert "version.torch" in parent.data.tags and "git.commit" in parent.data.tags
    assert parent.data.params["dataset.name"] == "digits"
    assert float(parent.data.params["hv.ref_accuracy"]) == 0.5
    hv = client.get_metric_history(parent.info.run_id, "hypervolume")
    assert sorted(m.step for m in hv) == [0, 1, 2, 3]
    assert math.isclose(hv[-1].value, outcome.hypervolume) or hv
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto.csv", "pareto.png", "pareto.html"} <= names

    _, children = _runs(tmp_path, "trial")
    assert len(children) == 4
    on_front = {r["run_id"] for r in outcome.front}
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["feasible"] == "true"
        assert run.data.tags["pareto"] == str(run.info.run_id in on_front).lower()
        m = run.data.metrics
        for key in (
            "val_accuracy",
            "size_bytes",
            "params",
            "nonzero_params",
            "macs",
            "train_seconds",
        ):
            assert key in m, key
        assert m["size_bytes_estimate"] >= m["size_bytes"]
        assert {"bits", "sparsity", "kind"} <= set(run.data.params)
        if run.info.run_id in on_front:
            assert "test_accuracy" in m
            assert any(a.path.endswith(".dsz") for a in client.list_artifacts(run.info.run_id))
        else:
            assert "test_accuracy" not in m


def test_budget_breaking_candidates_are_rejected_without_training(tmp_path, monkeypatch) -> None:
    import nas.pipeline._candidate

    def boom(*args, **kwargs):
        raise AssertionError("an infeasible candidate must not be trained")

    monkeypatch.setattr(nas.pipeline._candidate, "train", boom)
    # The budget only the smallest candidate at the strongest compression meets (a
    # smaller one is refused at start-up, see test_reliability.py): sampled ones break it.
    cfg = _cfg(tmp_path, "+hw=mcu")
    smallest = smallest_achievable(cfg, load_splits(cfg.dataset, seed=0).spec)["size_bytes"]
    cfg = _cfg(tmp_path, "search.n_trials=3", "+hw=mcu", f"hw.size_budget_bytes={int(smallest)}")
    outcome = run_search(cfg)
    assert outcome.n_infeasible == 3 and outcome.front == []
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / f"{outcome.study_name}.journal"))
    )
    study = optuna.load_study(study_name=outcome.study_name, storage=storage)
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert t.user_attrs["feasible"] is False
        assert t.system_attrs["constraints:size_bytes"] > 0
        assert t.user_attrs["metrics"]["feasibility_seconds"] < 5.0
    _, children = _runs(tmp_path, "trial")
    assert {r.data.tags["feasible"] for r in children} == {"false"}
    assert {r.data.tags["pareto"] for r in children} == {"false"}


def test_resume_runs_only_the_remaining_trials(tmp_path: Path) -> None:
    first = run_search(_cfg(tmp_path, "search.n_trials=2"))
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / f"{first.study_name}.journal"))
    )
    study = optuna.load_study(study_name=first.study_name, storage=storage)
    before = {t.number: t.values for t in study.trials}
    study.ask()  # a trial a crash left RUNNING
    second = run_search(_cfg(tmp_path, "search.n_trials=4"))
    assert second.study_name == first.study_name
    study = optuna.load_study(study_name=first.study_name, storage=storage)
    states = [t.state for t in study.trials]
    assert len(study.trials) == 5  # 2 done + 1 interrupted + 2 new
    assert states[2] == optuna.trial.TrialState.FAIL and study.trials[2].user_attrs[INTERRUPTED]
    for number, values in before.items():
        assert study.trials[number].values == values
    _, parents = _runs(tmp_path, "search")
    assert len(parents) == 1


def test_resume_with_other_config_is_refused(tmp_path: Path) -> None:
    from nas.config import ConfigError

    run_search(_cfg(tmp_path, "search.n_trials=1", "search.study_name=fixed"))
    with pytest.raises(ConfigError, match="different config"):
        run_search(_cfg(tmp_path, "search.n_trials=2", "search.study_name=fixed", "train.lr=0.01"))


def test_study_name_is_a_hash_of_the_search_relevant_config(tmp_path: Path) -> None:
    a = study_name_of(_cfg(tmp_path, "search.n_trials=3"))
    b = study_name_of(_cfg(tmp_path, "search.n_trials=9"))
    c = study_name_of(_cfg(tmp_path, "train.lr=0.01"))
    assert a == b != c


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random", "gp"])
def test_every_sampler_handles_the_constrained_two_objective_study(tmp_path, sampler) -> None:
    # Two startup trials so that TPE and GP fit their models on the third, with
    # constraints from +hw=mcu in play.
    cfg = _cfg(
        tmp_path, f"sampler={sampler}", "search.n_trials=3", "+hw=mcu",
        "sampler.n_startup_trials=2", "sampler.population_size=2", "train.epochs=1",
    )  # fmt: skip
    outcome = run_search(cfg)
    assert outcome.n_trials == 3 and outcome.n_failed == 0


def test_pruning_kind_rank_and_distillation_are_searched_jointly(tmp_path: Path) -> None:
    """Structured and unstructured pruning, low-rank and distillation in one search;
    every trained artifact reloads (the evaluator scores it) and the teacher is cached."""
    cfg = _cfg(
        tmp_path,
        "search.n_trials=6",
        "sampler=random",
        "compress.prune_kinds=[unstructured,structured]",
        "compress.rank_ratios=[0.5,1.0]",
        "compress.distill=[false,true]",
        "search.seed=3",
    )
    outcome = run_search(cfg)
    assert outcome.n_failed == 0
    study = optuna.load_study(
        study_name=outcome.study_name,
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(
                str(tmp_path / f"{outcome.study_name}.journal")
            )
        ),
    )
    params = [t.params for t in study.trials]
    kinds = {p["prune_kind"] for p in params}
    assert kinds == {"unstructured", "structured"}, params
    assert {p["rank_ratio"] for p in params} == {0.5, 1.0}, params
    distilled = [p for p in params if p["distill"]]
    assert distilled and all(
        "distill_temperature" in p and "distill_alpha" in p for p in distilled
    ), params
    # Conditional: a structured trial draws no sparsity, an unstructured one no ratio.
    for p in params:
        assert ("channel_ratio" in p) == (p["prune_kind"] == "structured"), p
        assert ("sparsity" in p) == (p["prune_kind"] == "unstructured"), p
    assert len(list((tmp_path / "outputs" / "teachers").glob("teacher_*.dsz"))) == 1
    for t in study.trials:
        m = t.user_attrs["metrics"]
        assert m["size_bytes_estimate"] >= m["size_bytes"]
