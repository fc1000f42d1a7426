"""Whole searches on the `digits` data, checked through what they wrote: the study
(journal file) and the MLflow runs."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from nas import compose
from nas.config import ConfigError
from nas.driver import run_search
from nas.pipeline import load_splits
from nas.study import SAMPLERS, keys, make_storage, smallest_achievable


@pytest.fixture
def cfg_of(tmp_path: Path, fast):
    """``cfg_of(*overrides)``: a fast search's config, writing to ``tmp_path``."""

    def cfg_of(*overrides: str):
        return compose(fast(f"search.output_dir={tmp_path}", *overrides))

    return cfg_of


def _study(tmp_path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=make_storage(None, name, tmp_path))


def test_search_writes_front_and_runs_to_mlflow(tmp_path: Path, cfg_of, mlflow_runs) -> None:
    outcome = run_search(cfg_of("search.n_trials=4"))
    assert outcome.exit_code == 0
    assert outcome.n_trials == 4
    assert len(outcome.front) >= 1
    for row in outcome.front:
        assert 0.0 <= row["val_accuracy"] <= 1.0
        assert 0.0 <= row["test_accuracy"] <= 1.0
        # size_bytes is the artifact actually written
        assert Path(tmp_path / "outputs" / outcome.study_name).is_dir()

    client = MlflowClient(tracking_uri=outcome.tracking_uri)
    parents = mlflow_runs(tmp_path, "search")
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

    children = mlflow_runs(tmp_path, "trial")
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


def test_budget_breaking_candidates_are_rejected_without_training(
    tmp_path: Path, cfg_of, mlflow_runs, monkeypatch
) -> None:
    # Every training goes through the recipe's epoch loop; a private module attribute,
    # the only seam below the strategy (nas.pipeline.train is bound at import).
    import nas.pipeline._recipe

    def boom(*args, **kwargs):
        raise AssertionError("an infeasible candidate must not be trained")

    monkeypatch.setattr(nas.pipeline._recipe, "train", boom)
    # The budget only the smallest candidate at the strongest compression meets (a
    # smaller one is refused at start-up, see tests/nas/driver/test_bad_input.py):
    # sampled ones break it.
    cfg = cfg_of("+hw=mcu")
    smallest = smallest_achievable(cfg, load_splits(cfg.dataset, seed=0).spec)["size_bytes"]
    outcome = run_search(
        cfg_of("search.n_trials=3", "+hw=mcu", f"hw.size_budget_bytes={int(smallest)}")
    )
    assert outcome.n_infeasible == 3 and outcome.front == []
    study = _study(tmp_path, outcome.study_name)
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert t.user_attrs["feasible"] is False
        assert t.system_attrs["constraints:size_bytes"] > 0
        assert t.user_attrs["metrics"]["feasibility_seconds"] < 5.0
    children = mlflow_runs(tmp_path, "trial")
    assert {r.data.tags["feasible"] for r in children} == {"false"}
    assert {r.data.tags["pareto"] for r in children} == {"false"}


def test_resume_runs_only_the_remaining_trials(tmp_path: Path, cfg_of, mlflow_runs) -> None:
    first = run_search(cfg_of("search.n_trials=2"))
    study = _study(tmp_path, first.study_name)
    before = {t.number: t.values for t in study.trials}
    study.ask()  # a trial a crash left RUNNING
    second = run_search(cfg_of("search.n_trials=4"))
    assert second.study_name == first.study_name
    study = _study(tmp_path, first.study_name)
    states = [t.state for t in study.trials]
    assert len(study.trials) == 5  # 2 done + 1 interrupted + 2 new
    assert states[2] == optuna.trial.TrialState.FAIL
    assert study.trials[2].user_attrs[keys.INTERRUPTED]
    for number, values in before.items():
        assert study.trials[number].values == values
    assert len(mlflow_runs(tmp_path, "search")) == 1


def test_resume_with_other_config_is_refused(cfg_of) -> None:
    run_search(cfg_of("search.n_trials=1", "search.study_name=fixed"))
    with pytest.raises(ConfigError, match="different config"):
        run_search(cfg_of("search.n_trials=2", "search.study_name=fixed", "train.lr=0.01"))


@pytest.mark.parametrize("sampler", SAMPLERS.names())
def test_every_sampler_handles_the_constrained_two_objective_study(cfg_of, sampler) -> None:
    # Two startup trials so that TPE and GP fit their models on the third, with
    # constraints from +hw=mcu in play.
    cfg = cfg_of(
        f"sampler={sampler}", "search.n_trials=3", "+hw=mcu",
        "sampler.n_startup_trials=2", "sampler.population_size=2", "train.epochs=1",
    )  # fmt: skip
    outcome = run_search(cfg)
    assert outcome.n_trials == 3 and outcome.n_failed == 0


def test_pruning_kind_rank_and_distillation_are_searched_jointly(tmp_path: Path, cfg_of) -> None:
    """Structured and unstructured pruning, low-rank and distillation in one search;
    every trained artifact reloads (the evaluator scores it) and the teacher is cached."""
    cfg = cfg_of(
        "search.n_trials=6",
        "sampler=random",
        "compress.prune_kinds=[unstructured,structured]",
        "compress.rank_ratios=[0.5,1.0]",
        "compress.distill=[false,true]",
        "search.seed=3",
    )
    outcome = run_search(cfg)
    assert outcome.n_failed == 0
    study = _study(tmp_path, outcome.study_name)
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


def test_search_with_moasha_prunes_and_keeps_the_front_complete(tmp_path: Path, cfg_of) -> None:
    outcome = run_search(
        cfg_of(
            "train.epochs=3",
            "compress.finetune_epochs=0",
            "search.n_trials=6",
            "early_stop=moasha",
            "early_stop.reduction_factor=2",
        )
    )
    study = _study(tmp_path, outcome.study_name)
    states = {t.number: t.state for t in study.trials}
    pruned = [n for n, s in states.items() if s == TrialState.PRUNED]
    assert pruned, states
    for n in pruned:
        t = study.trials[n]
        assert "stopped early" in t.user_attrs["stopped"]
        assert len(t.user_attrs[keys.PARTIAL]["val_accuracy"]) >= 1
    assert outcome.front
    assert all(states[row["trial"]] == TrialState.COMPLETE for row in outcome.front)
