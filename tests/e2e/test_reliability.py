"""Crashes, Ctrl-C, failing trials, time limits and budgets unmet after a search.

The crash tests run the real CLI as a subprocess and inject slowness through the
``--plugin`` module ``scripts/faultplug.py``, so a signal lands at a known point:
during training or while the evaluator process scores an artifact. (Every fault a
scheduler or machine delivers, row by row: test_faults.py; bad input refused at
start-up: tests/nas/driver/test_bad_input.py; crafted artifacts:
tests/nas/pipeline/test_artifacts.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from nas import compose
from nas.driver import run_search
from nas.study import EXIT_INTERRUPTED, EXIT_NO_FEASIBLE, keys
from search_spaces import get_search_space

INTERRUPTED = keys.INTERRUPTED


@pytest.fixture
def overrides(fast) -> list[str]:
    """A fast search of two epochs (so that a trial can be stopped between them)."""
    return fast("train.epochs=2")


SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    """A folder for the fault plugin's marks (scripts/faultplug.py: trials held in
    training or evaluation, the evaluator's pid)."""
    d = tmp_path / "plugin"
    (d / "marks").mkdir(parents=True)
    return d


def _env(plugin: Path, **faults: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SCRIPTS), env.get("PYTHONPATH", "")])
    env["FAULT_MARKS"] = str(plugin / "marks")
    env.update({f"FAULT_{k.upper()}": v for k, v in faults.items()})
    return env


def _cmd(overrides: list[str], out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "nas.search", "--plugin", "faultplug", *overrides,
        f"search.output_dir={out}", *extra,
    ]  # fmt: skip


def _wait_for(what: str, ok: Callable[[], bool], proc: subprocess.Popen[str], limit: float) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if ok():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"search exited ({proc.returncode}) before {what}:\n{err[-3000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def _study(out: Path) -> optuna.Study:
    (journal,) = out.glob("*.journal")
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "State:\tZ" not in state  # a zombie has exited; only its parent's reaping is left


def _evaluator_pids(plugin: Path) -> list[int]:
    return [int(p.read_text()) for p in (plugin / "marks").glob("evaluator-*.pid")]


def _trial_run(runs: list, number: int):
    """The child run of trial ``number`` among ``runs`` (exactly one)."""
    (run,) = [r for r in runs if r.data.tags[keys.TAG_TRIAL] == str(number)]
    return run


# -- crash, Ctrl-C, resume ------------------------------------------------------------------


def test_sigkill_mid_trial_then_resume(
    tmp_path: Path, plugin: Path, overrides, mlflow_runs
) -> None:
    out = tmp_path / "out"
    cmd = _cmd(overrides, out, "search.n_trials=4")
    # Killed while the evaluator scores trial 2: the worker is busy, so only its
    # parent watchdog (not EOF on its pipe) can notice the driver is gone.
    proc = subprocess.Popen(
        cmd, env=_env(plugin, phase="evaluate", trials="2"), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _wait_for("trial 2's evaluation", (plugin / "marks" / "evaluate-2").exists, proc, 240)
    assert [t.number for t in _study(out).trials if t.state == TrialState.RUNNING] == [2]
    proc.kill()
    proc.communicate()
    before = {t.number: t.values for t in _study(out).trials if t.state == TrialState.COMPLETE}
    assert sorted(before) == [0, 1]
    (worker,) = _evaluator_pids(plugin)
    end = time.monotonic() + 15
    while _alive(worker) and time.monotonic() < end:
        time.sleep(0.2)
    assert not _alive(worker), "the evaluator outlived the SIGKILLed driver"

    again = subprocess.run(cmd, env=_env(plugin), text=True, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming study" in again.stderr
    study = _study(out)
    assert len(study.trials) == 5  # 2 done + the killed one + 2 new
    killed = study.trials[2]
    assert killed.state == TrialState.FAIL and killed.user_attrs[INTERRUPTED] is True
    counted = [t for t in study.trials if not t.user_attrs.get(INTERRUPTED)]
    assert len(counted) == 4 and all(t.state == TrialState.COMPLETE for t in counted)
    for number, values in before.items():
        assert study.trials[number].values == values
    (parent,) = mlflow_runs(out, "search")
    assert parent.info.status == "FINISHED"
    runs = mlflow_runs(out, "trial")
    assert len(runs) == 5
    run = _trial_run(runs, 2)
    assert run.info.status == "FAILED" and run.data.tags["error"] == "interrupted"


def test_resume_gives_every_cut_trial_one_failed_run(
    tmp_path: Path, overrides, mlflow_runs
) -> None:
    """A kill can land between asking the study and creating the trial's MLflow run, or
    between creating the run and recording its id in the study. On resume, both trials
    end FAILED (interrupted, uncounted), each with exactly one FAILED child run. A kill
    between telling the study and ending the run leaves a finished trial: its run
    ends FINISHED with the trial's metrics and params."""
    out = tmp_path / "out"
    cfg = compose([*overrides, "search.n_trials=1", f"search.output_dir={out}"])
    assert run_search(cfg).exit_code == 0
    study = _study(out)
    study.ask()  # killed before its run was created
    orphan = study.ask()  # killed after creating the run, before recording its id
    (parent,) = mlflow_runs(out, "search")
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    created = client.create_run(
        parent.info.experiment_id,
        tags={"mlflow.parentRunId": parent.info.run_id, "nas.role": "trial",
              "nas.trial": str(orphan.number)},
    )  # fmt: skip

    # killed after telling the study, before ending the run: a copy of trial 0's record
    done = study.ask()
    first = study.trials[0]
    for key in ("metrics", "arch", "feasible", "compression"):
        done.set_user_attr(key, first.user_attrs[key])
    told = client.create_run(
        parent.info.experiment_id,
        tags={"mlflow.parentRunId": parent.info.run_id, "nas.role": "trial",
              "nas.trial": str(done.number)},
    )  # fmt: skip
    done.set_user_attr(keys.RUN_ID, told.info.run_id)
    study.tell(done, first.values)

    cfg = compose([*overrides, "search.n_trials=3", f"search.output_dir={out}"])
    assert run_search(cfg).exit_code == 0
    study = _study(out)
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE,
        TrialState.COMPLETE,
    ]  # fmt: skip
    runs = mlflow_runs(out, "trial")
    assert sorted(int(r.data.tags["nas.trial"]) for r in runs) == [0, 1, 2, 3, 4]
    ended = _trial_run(runs, done.number)
    assert ended.info.status == "FINISHED"
    assert ended.data.metrics["val_accuracy"] == first.user_attrs["metrics"]["val_accuracy"]
    # the derived compression params too, as a normally ended run logs them
    compression = first.user_attrs["compression"]
    assert compression and all(ended.data.params[k] == str(v) for k, v in compression.items())
    for t in study.trials[1:3]:
        assert t.user_attrs[INTERRUPTED] is True
        run = _trial_run(runs, t.number)
        assert run.info.run_id == t.user_attrs[keys.RUN_ID]
        assert run.info.status == "FAILED" and run.data.tags["error"] == "interrupted"
    assert study.trials[2].user_attrs[keys.RUN_ID] == created.info.run_id


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and Python keeps it ignored
    # (no KeyboardInterrupt) when it starts that way; a test that sends Ctrl-C must
    # give its child the disposition a terminal's foreground job has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# Ctrl-C in training: test_faults.py's sigint_group row.
@pytest.mark.parametrize("phase", ["evaluate"])
def test_ctrl_c_stops_cleanly_and_resumes(
    tmp_path: Path, plugin: Path, phase: str, overrides, mlflow_runs
) -> None:
    out = tmp_path / "out"
    cmd = _cmd(overrides, out, "search.n_trials=2")
    # A terminal's Ctrl-C reaches the whole process group, the evaluator included.
    proc = subprocess.Popen(
        cmd, env=_env(plugin, phase=phase, trials="1"), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip
    _wait_for(f"trial 1's {phase}", (plugin / "marks" / f"{phase}-1").exists, proc, 240)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "run the same command again to resume" in stdout
    for pid in _evaluator_pids(plugin):
        assert not _alive(pid)

    study = _study(out)
    assert study.trials[0].state == TrialState.COMPLETE
    t1 = study.trials[1]
    assert t1.state == TrialState.FAIL and t1.user_attrs[INTERRUPTED] is True
    assert "interrupted" in t1.user_attrs["error"]
    run = _trial_run(mlflow_runs(out, "trial"), 1)
    assert run.info.status == "KILLED" and run.data.tags["error"] == "interrupted"
    (parent,) = mlflow_runs(out, "search")
    assert parent.info.status == "KILLED"

    if phase == "train":  # resuming once is enough; it does not depend on the phase
        again = subprocess.run(cmd, env=_env(plugin), text=True, capture_output=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        study = _study(out)
        assert [t.state for t in study.trials] == [
            TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
        ]  # fmt: skip
        (parent,) = mlflow_runs(out, "search")
        assert parent.info.status == "FINISHED"


# -- failing trials -------------------------------------------------------------------------


def _failed(mlflow_runs, out: Path, number: int) -> tuple[optuna.trial.FrozenTrial, str]:
    """Trial ``number``, FAILED in the study and in MLflow alike, and why."""
    t = _study(out).trials[number]
    assert t.state == TrialState.FAIL
    run = _trial_run(mlflow_runs(out, "trial"), number)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == t.user_attrs["error"]
    return t, t.user_attrs["error"]


def test_raising_and_diverging_trials_fail_and_the_search_goes_on(
    tmp_path, overrides, mlflow_runs, monkeypatch
) -> None:
    # Every training goes through the recipe's epoch loop; a private module attribute,
    # the only seam where a trial's loss can be swapped (nas.pipeline.train is bound).
    import nas.pipeline._recipe

    TinySearchSpace = type(get_search_space("tiny"))
    build, train = TinySearchSpace.build, nas.pipeline._recipe.train
    calls = {"build": 0, "train": 0}

    def broken_build(self, arch, spec):  # trial 0's model cannot be built
        calls["build"] += 1
        if calls["build"] == 1:
            raise RuntimeError("injected build failure")
        return build(self, arch, spec)

    def nan_train(model, batches, **kw):  # trial 1 (the first trained one) diverges
        calls["train"] += 1
        if calls["train"] == 1:
            kw["loss_fn"] = lambda logits, y, x: logits.sum() * float("nan")
        return train(model, batches, **kw)

    monkeypatch.setattr(TinySearchSpace, "build", broken_build)
    monkeypatch.setattr(nas.pipeline._recipe, "train", nan_train)
    outcome = run_search(
        compose([*overrides, f"search.output_dir={tmp_path}", "search.n_trials=3"])
    )
    assert outcome.exit_code == 0 and outcome.n_trials == 3 and outcome.n_failed == 2
    _, reason = _failed(mlflow_runs, tmp_path, 0)
    assert reason == "RuntimeError: injected build failure"
    _, reason = _failed(mlflow_runs, tmp_path, 1)
    assert reason == "diverged: loss became nan at step 0 (epoch 0)"  # its first step
    assert _study(tmp_path).trials[2].state == TrialState.COMPLETE
    assert [r["trial"] for r in outcome.front] == [2]


def _stopped(mlflow_runs, out: Path, number: int) -> str:
    """Trial ``number``, stopped (PRUNED in the study, KILLED in MLflow), and why."""
    t = _study(out).trials[number]
    assert t.state == TrialState.PRUNED
    run = _trial_run(mlflow_runs(out, "trial"), number)
    assert run.info.status == "KILLED"
    assert run.data.tags["stopped"] == t.user_attrs["stopped"]
    return t.user_attrs["stopped"]


def test_trial_timeout_during_training(tmp_path: Path, overrides, mlflow_runs) -> None:
    cfg = compose([*overrides, f"search.output_dir={tmp_path}", "search.n_trials=1",
                   "search.trial_timeout_s=0.001"])  # fmt: skip
    outcome = run_search(cfg)
    assert outcome.exit_code == EXIT_NO_FEASIBLE and outcome.n_failed == 0
    reason = _stopped(mlflow_runs, tmp_path, 0)
    assert reason.startswith("TrialTimeout: trial exceeded search.trial_timeout_s during training")


def test_trial_timeout_bounds_a_hung_evaluation(
    tmp_path, plugin, overrides, mlflow_runs, monkeypatch
) -> None:
    # The evaluator process imports the plugin, which hangs trial 0's evaluation.
    monkeypatch.syspath_prepend(str(SCRIPTS))
    for k, v in _env(plugin, phase="evaluate", trials="0", sleep="600").items():
        monkeypatch.setenv(k, v)
    cfg = compose([*overrides, f"search.output_dir={tmp_path}", "search.n_trials=2",
                   "search.trial_timeout_s=12"])  # fmt: skip
    start = time.monotonic()
    outcome = run_search(cfg, plugins=["faultplug"])
    assert time.monotonic() - start < 120
    reason = _stopped(mlflow_runs, tmp_path, 0)
    assert reason.startswith("TrialTimeout: evaluating trial_00000.dsz took longer than")
    assert "the trial's time limit" in reason
    # The hung worker was replaced; the next trial is scored by a fresh one.
    t1 = _study(tmp_path).trials[1]
    assert t1.state == TrialState.COMPLETE, t1.user_attrs.get("error")
    assert outcome.n_failed == 0 and len(_evaluator_pids(plugin)) == 2
    assert not any(_alive(pid) for pid in _evaluator_pids(plugin))


# -- budgets ------------------------------------------------------------------------------


def test_budget_unmet_after_the_search_reports_the_nearest(
    tmp_path: Path, overrides, mlflow_runs
) -> None:
    from nas.pipeline import load_splits
    from nas.study import smallest_achievable

    cfg = compose([*overrides, "+hw=mcu"])
    smallest = smallest_achievable(cfg, load_splits(cfg.dataset, seed=0).spec)["size_bytes"]
    r = subprocess.run(
        [sys.executable, "-m", "nas.search", *overrides, f"search.output_dir={tmp_path}",
         "search.n_trials=3", "+hw=mcu", f"hw.size_budget_bytes={int(smallest)}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == EXIT_NO_FEASIBLE, r.stderr[-3000:]
    assert "No trained candidate met the budgets; the nearest" in r.stdout
    nearest = [ln for ln in r.stdout.splitlines() if ln.startswith("  trial ")]
    assert 1 <= len(nearest) <= 3 and "size_bytes +" in nearest[0]
    (parent,) = mlflow_runs(tmp_path, "search")
    assert parent.info.status == "FINISHED"
