"""``nas.study.TrialRecorder``: how a trial ended is one :class:`~nas.study.State`,
written to the Optuna study and to the trial's MLflow run alike; a resume's sweep ends
every trial a crash cut short. (The same through whole searches, with real crashes:
tests/e2e/test_reliability.py.)"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas._stop import DiskFull
from nas.pipeline import TrainFailed, TrialResult, TrialStopped, TrialTimeout
from nas.study import State, Tracker, TrialOutcome, TrialRecorder, keys, run_and_record


def _result(feasible: bool = True) -> TrialResult:
    metrics = {"val_accuracy": 0.9, "size_bytes": 1000.0, "params": 10.0}
    return TrialResult(feasible, {"kind": "mlp", "hidden": [8]}, {"bits": 8}, metrics)


@pytest.fixture
def recorder(tmp_path: Path) -> TrialRecorder:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", directions=["maximize", "minimize"])
    tracker = Tracker(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        experiment="downsize",
        artifact_root=tmp_path / "mlartifacts",
    )
    tracker.open_parent(study_name="s", params={}, tags={})
    return TrialRecorder(study, tracker, "s")


def _run(mlflow_runs, tmp_path: Path, number: int):
    (run,) = [
        r for r in mlflow_runs(tmp_path, "trial") if r.data.tags[keys.TAG_TRIAL] == str(number)
    ]
    return run


def test_each_outcome_is_recorded_in_the_study_and_its_run_alike(
    recorder: TrialRecorder, tmp_path: Path, mlflow_runs
) -> None:
    seen: list[int] = []
    recorder.callbacks.append(lambda frozen: seen.append(frozen.number))

    def raises(error: BaseException):
        def body(trial: optuna.Trial) -> TrialResult:
            raise error

        return body

    finished = run_and_record(recorder, lambda trial: _result())
    infeasible = run_and_record(recorder, lambda trial: _result(feasible=False))
    failed = run_and_record(recorder, raises(RuntimeError("injected")))
    stopped = run_and_record(recorder, raises(TrialStopped("stopped early after epoch 1")))
    with pytest.raises(KeyboardInterrupt):
        run_and_record(recorder, raises(KeyboardInterrupt()))
    interrupted = recorder.study.trials[4]

    assert finished.state == TrialState.COMPLETE and finished.values == [0.9, 1000.0]
    assert finished.user_attrs[keys.FEASIBLE] is True
    assert finished.user_attrs[keys.COMPRESSION] == {"bits": 8}
    run = _run(mlflow_runs, tmp_path, 0)
    assert run.info.run_id == finished.user_attrs[keys.RUN_ID]
    assert run.info.status == "FINISHED" and run.data.tags[keys.TAG_FEASIBLE] == "true"
    assert run.data.metrics["val_accuracy"] == 0.9 and run.data.params["bits"] == "8"

    assert infeasible.state == TrialState.COMPLETE
    assert infeasible.user_attrs[keys.FEASIBLE] is False
    assert _run(mlflow_runs, tmp_path, 1).data.tags[keys.TAG_FEASIBLE] == "false"

    assert failed.state == TrialState.FAIL
    assert failed.user_attrs[keys.ERROR] == "RuntimeError: injected"
    run = _run(mlflow_runs, tmp_path, 2)
    assert run.info.status == "FAILED" and run.data.tags[keys.TAG_ERROR] == "RuntimeError: injected"

    assert stopped.state == TrialState.PRUNED
    assert stopped.user_attrs[keys.STOPPED] == "stopped early after epoch 1"
    assert _run(mlflow_runs, tmp_path, 3).info.status == "KILLED"

    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs[keys.INTERRUPTED]
    assert _run(mlflow_runs, tmp_path, 4).info.status == "KILLED"
    assert seen == [0, 1, 2, 3]  # an interrupted trial is not reported as done


def test_an_outcome_is_its_state_in_optuna() -> None:
    assert TrialOutcome.of_result(_result()).state is State.FINISHED
    assert TrialOutcome.of_result(_result(feasible=False)).state is State.INFEASIBLE
    assert TrialOutcome.of_error(TrialStopped("early")).state is State.STOPPED
    failed = TrialOutcome.of_error(ValueError("bad\nvalue"))
    assert failed.state is State.FAILED and failed.reason.startswith("ValueError: bad")
    assert "\n" not in failed.reason  # one line, for the run's tag
    # its time limit stops a trial, saying so; a NaN loss fails it as diverged
    timeout = TrialOutcome.of_error(TrialTimeout("trial exceeded search.trial_timeout_s=8 s"))
    assert timeout.state is State.STOPPED
    assert timeout.reason == "TrialTimeout: trial exceeded search.trial_timeout_s=8 s"
    diverged = TrialOutcome.of_error(TrainFailed("loss became nan at step 3 (epoch 0)"))
    assert diverged.state is State.FAILED
    assert diverged.reason == "diverged: loss became nan at step 3 (epoch 0)"


def test_a_full_disk_interrupts_the_trial_and_stops_the_search(
    recorder: TrialRecorder, tmp_path: Path, mlflow_runs
) -> None:
    """The trial cut short runs again on resume (interrupted, uncounted); the search
    stops, as no trial can go on without space."""

    def body(trial: optuna.Trial) -> TrialResult:
        raise OSError(28, "No space left on device", str(tmp_path / "trial_00000.dsz"))

    with pytest.raises(DiskFull) as info:
        run_and_record(recorder, body)
    assert info.value.filename == str(tmp_path / "trial_00000.dsz")
    (t,) = recorder.study.trials
    assert t.state == TrialState.FAIL and t.user_attrs[keys.INTERRUPTED] is True
    assert "no space left on device" in t.user_attrs[keys.ERROR]
    assert _run(mlflow_runs, tmp_path, 0).info.status == "KILLED"


def test_the_sweep_ends_every_trial_a_crash_cut_short(
    recorder: TrialRecorder, tmp_path: Path, mlflow_runs
) -> None:
    """Cut before its run was created, after creating the run but before recording its
    id, and after telling the study but before ending the run: the first two end FAILED
    (interrupted) with exactly one FAILED run each; the third's run ends FINISHED."""
    study, tracker = recorder.study, recorder.tracker
    no_run = recorder.begin()
    orphan = recorder.begin()
    orphan_run = tracker.start_trial(orphan.trial.number, "s")
    told = recorder.begin()
    recorder.open_run(told)
    for key, value in (
        (keys.FEASIBLE, True), (keys.ARCH, {"kind": "mlp"}), (keys.COMPRESSION, {"bits": 8}),
        (keys.METRICS, _result().metrics),
    ):  # fmt: skip
        told.trial.set_user_attr(key, value)
    study.tell(told.trial, [0.9, 1000.0])

    recorder.sweep_interrupted()

    trials = study.trials
    for cut in (no_run, orphan):
        t = trials[cut.trial.number]
        assert t.state == TrialState.FAIL and t.user_attrs[keys.INTERRUPTED] is True
        run = _run(mlflow_runs, tmp_path, t.number)
        assert run.info.run_id == t.user_attrs[keys.RUN_ID]
        assert run.info.status == "FAILED" and run.data.tags[keys.TAG_ERROR] == "interrupted"
    assert trials[orphan.trial.number].user_attrs[keys.RUN_ID] == orphan_run
    assert trials[told.trial.number].state == TrialState.COMPLETE
    run = _run(mlflow_runs, tmp_path, told.trial.number)
    assert run.info.status == "FINISHED" and run.data.metrics["val_accuracy"] == 0.9
    assert run.data.params["bits"] == "8"  # the derived compression params, as a normal end
    assert len(mlflow_runs(tmp_path, "trial")) == 3


def test_the_cost_axis_is_the_studys_second_objective(recorder: TrialRecorder) -> None:
    recorder.cost = "energy_uj"  # search.cost=energy_uj
    result = _result()
    result.metrics["energy_uj"] = 2.5
    assert run_and_record(recorder, lambda trial: result).values == [0.9, 2.5]
