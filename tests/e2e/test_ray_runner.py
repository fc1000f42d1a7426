"""runner=ray: the same search through Ray Tune, on a local Ray and on a real multi-node
cluster on this machine (scripts/ray_cluster.sh via cluster_fixtures), with faults.
(Bad Ray settings refused at start-up: tests/nas/runners/test_ray_settings.py.)

Checked through what the searches wrote: the persisted Optuna study (journal file) and
the MLflow runs, which the driver alone writes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cluster_fixtures
import optuna
import pytest
from optuna.trial import TrialState

from nas import compose
from nas.driver import run_search
from nas.study import keys

INTERRUPTED = keys.INTERRUPTED
CLI = [sys.executable, "-m", "nas.search"]


@pytest.fixture
def ray_fast(fast) -> list[str]:
    """A fast search whose trials run on Ray, two at a time."""
    return fast("runner=ray", "runner.max_concurrent=2")


def _journal(tmp_path: Path, name: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / f"{name}.journal"))
    )
    return optuna.load_study(study_name=name, storage=storage)


def _only_study(tmp_path: Path) -> optuna.Study:
    (journal,) = tmp_path.glob("*.journal")
    return _journal(tmp_path, journal.stem)


def _runs(mlflow_runs, uri: str, experiment: str = "downsize") -> tuple[list[Any], list[Any]]:
    """(parent runs, child runs) of ``experiment``."""
    runs = mlflow_runs(uri, experiment=experiment)
    parents = [r for r in runs if r.data.tags.get(keys.TAG_ROLE) == keys.ROLE_SEARCH]
    children = [r for r in runs if r.data.tags.get(keys.TAG_ROLE) == keys.ROLE_TRIAL]
    return parents, children


def _check_records(study: optuna.Study, parents: list[Any], children: list[Any]) -> None:
    """The structure every search leaves, whatever ran its trials."""
    assert len(parents) == 1
    parent = parents[0]
    by_number = {int(r.data.tags["nas.trial"]): r for r in children}
    assert len(by_number) == len(children) == len(study.trials), "one child run per trial"
    for t in study.trials:
        run = by_number[t.number]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.run_id == t.user_attrs["mlflow_run_id"]
        assert run.info.status != "RUNNING"
        if t.state == TrialState.COMPLETE and t.user_attrs["feasible"]:
            assert run.info.status == "FINISHED"
            assert len(run.data.tags["ray.node_id"]) == 56  # hex node id
            for key in ("val_accuracy", "size_bytes", "train_seconds", "trial_seconds"):
                assert key in run.data.metrics
            assert t.values == [run.data.metrics["val_accuracy"], run.data.metrics["size_bytes"]]
            assert Path(t.user_attrs["artifact"]).is_absolute()
            assert Path(t.user_attrs["artifact"]).is_file()
        elif t.state == TrialState.COMPLETE:
            assert run.data.tags["feasible"] == "false" and "ray.node_id" not in run.data.tags
        elif t.state == TrialState.PRUNED:
            assert run.info.status == "KILLED" and run.data.tags["stopped"]
            assert "ray.node_id" in run.data.tags
        elif t.state == TrialState.FAIL:
            assert run.info.status in ("FAILED", "KILLED") and run.data.tags["error"]


def test_ray_search_records_like_local_and_resumes(
    tmp_path: Path, ray_fast, mlflow_runs, monkeypatch
) -> None:
    """A short search on a local Ray: the study and MLflow runs are those of a local
    search (parent + one child per trial, tagged with its Ray node), an infeasible
    proposal is told in the driver without reaching Ray, the shared early-stopping judge
    (an actor) sees every trained trial, and a rerun with a larger budget adds trials."""
    # The searcher proposes each trial in the driver: a private module attribute, the
    # only seam between the study's trial and its proposal.
    import nas.runners._ray_searcher as searcher

    real = searcher.propose

    def propose(suggest, ctx, *, number):
        p = real(suggest, ctx, number=number)
        # A budget only trial 1 breaks, through the real trial's constraints.
        p.constraints["size_bytes"] = 1.0 if number == 1 else -1.0
        suggest.set_constraint("size_bytes", p.constraints["size_bytes"])
        return p

    monkeypatch.setattr(searcher, "propose", propose)
    # Two epochs, so that MO-ASHA's rung at epoch 1 asks the judge actor.
    extra = [
        "train.epochs=2",
        "early_stop=moasha",
        "early_stop.min_epochs=1",
        f"search.output_dir={tmp_path}",
    ]
    first = run_search(compose([*ray_fast, *extra, "search.n_trials=4"]))
    assert (first.exit_code, first.n_trials, first.n_infeasible, first.n_failed) == (0, 4, 1, 0)
    study = _journal(tmp_path, first.study_name)
    # MO-ASHA may stop one at its rung (PRUNED counts, as locally).
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert study.trials[1].state == TrialState.COMPLETE
    assert study.trials[1].user_attrs["feasible"] is False
    assert study.trials[1].system_attrs["constraints:size_bytes"] == 1.0
    trained = [t for t in study.trials if t.number != 1]
    assert all(keys.PARTIAL in t.user_attrs for t in trained), "the judge actor saw each trial"
    uri = first.tracking_uri
    _check_records(study, *_runs(mlflow_runs, uri))
    before = {t.number: t.values for t in study.trials}

    second = run_search(compose([*ray_fast, *extra, "search.n_trials=6"]))
    assert second.study_name == first.study_name and second.exit_code == 0
    study = _journal(tmp_path, first.study_name)
    assert [t.number for t in study.trials] == list(range(6))
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    for number, values in before.items():
        assert study.trials[number].values == values
    parents, children = _runs(mlflow_runs, uri)
    _check_records(study, parents, children)
    assert parents[0].info.status == "FINISHED"


def test_a_multi_device_search_on_ray_records_each_devices_front(
    tmp_path: Path, ray_fast, mlflow_runs
) -> None:
    """``+hw=[...]`` through Ray: proposed (and refused when infeasible everywhere) in
    the driver, trained on the workers, a front per device from what they return."""
    devices = ["mobile", "raspi4", "mcu"]
    outcome = run_search(
        compose([*ray_fast, "+hw=[mobile,raspi4,mcu]", "devices.mobile.size_budget_bytes=3000",
                 "devices.mcu.peak_memory_budget_bytes=1500", "sampler=random",
                 "search.n_trials=6", f"search.output_dir={tmp_path}"])
    )  # fmt: skip
    assert outcome.exit_code == 0 and outcome.n_failed == 0
    assert list(outcome.devices) == devices
    study = _journal(tmp_path, outcome.study_name)
    parents, children = _runs(mlflow_runs, outcome.tracking_uri)
    _check_records(study, parents, children)
    by_number = {int(r.data.tags["nas.trial"]): r for r in children}
    for t in study.trials:
        per = t.user_attrs[keys.DEVICE_CONSTRAINTS]  # came back from the worker
        on = [d for d in devices if all(v <= 0 for v in per[d].values())]
        assert t.user_attrs["feasible"] is bool(on)
        for d in devices:
            assert by_number[t.number].data.tags[f"feasible.{d}"] == str(d in on).lower()
    for d in devices:
        members = {int(r.data.tags["nas.trial"]) for r in children
                   if r.data.tags.get(f"pareto.{d}") == "true"}  # fmt: skip
        assert members == {r["trial"] for r in outcome.devices[d].front}
        assert f"hypervolume.{d}" in parents[0].data.metrics


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and Python keeps it ignored
    # (no KeyboardInterrupt) when it starts that way; a test that sends Ctrl-C must
    # give its child the disposition a terminal's foreground job has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(
    overrides: list[str], tmp_path: Path, env: dict[str, str], *args: str
) -> subprocess.Popen[str]:
    # Its own session, so that a test can Ctrl-C its process group as a terminal would.
    return subprocess.Popen(
        [*CLI, *overrides, f"search.output_dir={tmp_path}", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )


def _finish(proc: subprocess.Popen[str], timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        message = f"the search did not finish in {timeout:.0f} s:\n{out[-4000:]}"
        raise AssertionError(message) from None
    assert proc.returncode == 0, out[-4000:]
    return out


def _running_children(mlflow_runs, uri: str, folder: Path, experiment: str) -> list[Any]:
    # Not before the search (its output in ``folder``) has made its store and begun a
    # trial: a client that opens a database being created races its migrations.
    if not any(b'"op_code":4' in j.read_bytes() for j in folder.glob("*.journal")):
        return []
    try:
        _, children = _runs(mlflow_runs, uri, experiment)
    except Exception:  # the database is still being created
        return []
    return [r for r in children if r.info.status == "RUNNING" and "ray.node_id" in r.data.tags]


def _wait_for(what: str, cond, proc: subprocess.Popen[str], timeout: float) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = cond()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"the search ended before {what}:\n{proc.stdout.read()[-4000:]}")
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}:\n{proc.communicate()[0][-4000:]}")


def _streamed(root: Path) -> list[str]:
    """Overrides of a small image folder streamed by loader workers (made here)."""
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parents[2] / "scripts" /
         "make_imagefolder.py"), "--out", str(root), "--n", "300", "--size", "16",
         "--classes", "3", "--no-progress", "--workers", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return ["dataset=imagefolder", f"dataset.root={root}", "dataset.image_size=16",
            "dataset.n_test=45", "dataset.n_val=45", "dataset.num_workers=2",
            "train.batch_size=32", "search.min_accuracy=0"]  # fmt: skip


def test_a_multi_node_search_loses_no_trial_when_a_worker_node_dies(
    tmp_path: Path, ray_fast, mlflow_server, mlflow_runs
) -> None:
    """Two 1-CPU worker nodes and a head with no CPU, runner.address=auto, MLflow over
    HTTP (as distributed trials log): the two concurrent trials run one on each worker,
    streaming an image folder through loader workers; worker 1 is SIGKILLed while they
    run. The search still finishes its 4 trials: the lost one is retried on the
    surviving node (runner.max_failures=1) or recorded as failed, counted once, no
    finished trial is lost, and the MLflow server holds every trial."""
    streamed = _streamed(tmp_path / "images")
    experiment = f"ray-multinode-{tmp_path.name}"
    with cluster_fixtures.start_ray_cluster(workers=2, cpus_per_node=1, head_cpus=0) as cluster:
        uri = mlflow_server.uri
        proc = _cli(
            [*ray_fast, *streamed], tmp_path, cluster.environ(), "runner.address=auto",
            "search.n_trials=4", f"mlflow.tracking_uri={uri}", f"mlflow.experiment={experiment}",
        )  # fmt: skip
        running = _wait_for(
            "two trials running on two nodes",
            lambda: (
                (r := _running_children(mlflow_runs, uri, tmp_path, experiment))
                and len({x.data.tags["ray.node_id"] for x in r}) >= 2
                and r
            ),
            proc,
            timeout=180,
        )
        done_before = {
            int(r.data.tags["nas.trial"]): r.data.metrics.get("val_accuracy")
            for r in _runs(mlflow_runs, uri, experiment)[1]
            if r.info.status == "FINISHED"
        }
        cluster_fixtures.kill_worker_node(cluster, 1)
        _finish(proc, timeout=240)
    study = _only_study(tmp_path)
    parents, children = _runs(mlflow_runs, uri, experiment)
    _check_records(study, parents, children)
    counted = [t for t in study.trials if not t.user_attrs.get(INTERRUPTED)]
    assert len(counted) == 4 and len(study.trials) == 4, [t.state for t in study.trials]
    by_number = {int(r.data.tags["nas.trial"]): r for r in children}
    for number, acc in done_before.items():
        assert by_number[number].data.metrics.get("val_accuracy") == acc
    # The trial that was on the lost node: retried elsewhere, or failed with the reason.
    hit = [int(r.data.tags["nas.trial"]) for r in running]
    lost = [by_number[n] for n in hit]
    assert any(
        r.data.tags.get("ray.attempts") == "2" or "RayWorkerFailed" in r.data.tags.get("error", "")
        for r in lost
    ), [(r.data.tags, r.info.status) for r in lost]
    for r in lost:
        if r.data.tags.get("ray.attempts") == "2":
            assert r.info.status == "FINISHED"
            assert len(set(r.data.tags["ray.retried_on"].split(","))) == 2


def test_killed_then_interrupted_driver_resumes(tmp_path: Path, ray_fast, mlflow_runs) -> None:
    """SIGKILL the driver (a local Ray) while trials run and rerun the same command;
    Ctrl-C that one's process group, as a terminal does, while its trials run, and rerun
    it again. (One search for both faults: each start of Ray costs ~20 s.) The search
    resumes the study each time, keeps every finished trial, leaves the ones cut short
    FAILED (interrupted, uncounted) and finishes the requested number of trials."""
    # Trials of a few seconds each: at 2 epochs one takes ~0.3 s, and a poll of the journal
    # could miss the moment one has finished while another runs.
    args = ("search.n_trials=5", "search.study_name=killed", "train.epochs=20")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    journal = tmp_path / "killed.journal"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def trials() -> list[optuna.trial.FrozenTrial]:
        # The journal file appears before the search appends the study's record to it.
        try:
            return _journal(tmp_path, "killed").trials if journal.exists() else []
        except KeyError:
            return []

    proc = _cli(ray_fast, tmp_path, env, *args)
    _wait_for(
        "a finished and a running trial",
        lambda: {TrialState.COMPLETE, TrialState.RUNNING} <= {t.state for t in trials()},
        proc, timeout=240,
    )  # fmt: skip
    before = {t.number: t.values for t in trials() if t.values}
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    known = len(trials())

    # The same command resumes; Ctrl-C it as soon as a trial of its own runs (waiting
    # for one to finish too may leave none running: Ray runs them side by side).
    proc = _cli(ray_fast, tmp_path, env, *args)
    _wait_for(
        "a trial of the resumed search running",
        lambda: any(t.number >= known and t.state == TrialState.RUNNING for t in trials()),
        proc, timeout=240,
    )  # fmt: skip
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out and "Resuming study killed" in out, out[-3000:]
    study = _journal(tmp_path, "killed")
    cut = [t for t in study.trials if t.user_attrs.get(INTERRUPTED)]
    assert len(cut) >= 2 and all(t.state == TrialState.FAIL for t in cut)  # one per stop
    assert TrialState.RUNNING not in [t.state for t in study.trials]
    parents, children = _runs(mlflow_runs, uri)
    assert parents[0].info.status == "KILLED"
    assert "RUNNING" not in {r.info.status for r in children}

    out = _finish(_cli(ray_fast, tmp_path, env, *args), timeout=300)
    assert "Resuming study killed" in out
    study = _journal(tmp_path, "killed")
    counted = [t for t in study.trials if not t.user_attrs.get(INTERRUPTED)]
    cut = [t for t in study.trials if t.user_attrs.get(INTERRUPTED)]
    assert len(counted) == 5 and cut, [t.state for t in study.trials]
    assert all(t.state == TrialState.FAIL for t in cut)
    for number, values in before.items():
        assert study.trials[number].values == values
    parents, children = _runs(mlflow_runs, uri)
    _check_records(study, parents, children)
    assert parents[0].info.status == "FINISHED"
