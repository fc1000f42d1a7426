"""Crashes, Ctrl-C, failing trials, bad input, unreachable budgets, crafted artifacts.

The crash tests run the real CLI as a subprocess and inject slowness through a
``--plugin`` module written to the test's tmp dir, so a signal lands at a known
point: during training or while the evaluator process scores an artifact.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
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
from nas.study import EXIT_INTERRUPTED, EXIT_NO_FEASIBLE
from nas.study.keys import INTERRUPTED

FAST = [
    "dataset=digits",
    "search_space=tiny",
    "train.epochs=2",
    "compress.finetune_epochs=1",
    "search.progress=false",
    "search.timeout_s=null",
]

# Imported by the driver (--plugin) and by the evaluator process (plugins are passed on).
PLUGIN = """
import multiprocessing as mp
import os
import time
from pathlib import Path

MARKS = Path(os.environ["FAULT_MARKS"])
PHASE = os.environ.get("FAULT_PHASE", "")
TRIALS = {int(n) for n in os.environ.get("FAULT_TRIALS", "").split(",") if n}
SLEEP = float(os.environ.get("FAULT_SLEEP", "120"))

if mp.current_process().name == "nas-evaluator":
    import nas.pipeline._evaluator as ev

    (MARKS / f"evaluator-{os.getpid()}.pid").write_text(str(os.getpid()))
    _evaluate = ev.evaluate_artifact

    def evaluate_artifact(path, splits):
        number = int(Path(path).stem.split("_")[-1])
        if PHASE == "evaluate" and number in TRIALS:
            (MARKS / f"evaluate-{number}").touch()
            time.sleep(SLEEP)
        return _evaluate(path, splits)

    ev.evaluate_artifact = evaluate_artifact
else:
    import nas.driver._search as search
    import nas.pipeline._candidate as trial

    _run_trial, _train = search.run_trial, trial.train
    current = {}

    def run_trial(suggest, ctx, *, number):
        current["number"] = number
        return _run_trial(suggest, ctx, number=number)

    def train(model, batches, **kw):
        number = current.get("number")
        if PHASE == "train" and number in TRIALS:
            (MARKS / f"train-{number}").touch()
            kw["on_epoch"] = lambda epoch, loss: time.sleep(SLEEP)
        return _train(model, batches, **kw)

    search.run_trial, trial.train = run_trial, train
"""


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    """The fault plugin's directory (for PYTHONPATH) with a marks/ folder."""
    d = tmp_path / "plugin"
    (d / "marks").mkdir(parents=True)
    (d / "faultplug.py").write_text(PLUGIN)
    return d


def _env(plugin: Path, **faults: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(plugin), env.get("PYTHONPATH", "")])
    env["FAULT_MARKS"] = str(plugin / "marks")
    env.update({f"FAULT_{k.upper()}": v for k, v in faults.items()})
    return env


def _cmd(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "nas.search", "--plugin", "faultplug", *FAST,
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


def _runs(out: Path, role: str) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("downsize")
    return client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`nas.role` = '{role}'", max_results=1000
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "State:\tZ" not in state  # a zombie has exited; only its parent's reaping is left


def _evaluator_pids(plugin: Path) -> list[int]:
    return [int(p.read_text()) for p in (plugin / "marks").glob("evaluator-*.pid")]


def _trial_run(out: Path, number: int):
    (run,) = [r for r in _runs(out, "trial") if r.data.tags["nas.trial"] == str(number)]
    return run


# -- crash, Ctrl-C, resume ------------------------------------------------------------------


def test_sigkill_mid_trial_then_resume(tmp_path: Path, plugin: Path) -> None:
    out = tmp_path / "out"
    cmd = _cmd(out, "search.n_trials=4")
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
    (parent,) = _runs(out, "search")
    assert parent.info.status == "FINISHED"
    assert len(_runs(out, "trial")) == 5
    run = _trial_run(out, 2)
    assert run.info.status == "FAILED" and run.data.tags["error"] == "interrupted"



def test_resume_gives_every_cut_trial_one_failed_run(tmp_path: Path) -> None:
    """A kill can land between asking the study and creating the trial's MLflow run, or
    between creating the run and recording its id in the study. On resume, both trials
    end FAILED (interrupted, uncounted), each with exactly one FAILED child run. A kill
    between telling the study and ending the run leaves a finished trial: its run
    ends FINISHED with the trial's metrics and params."""
    out = tmp_path / "out"
    cfg = compose([*FAST, "search.n_trials=1", f"search.output_dir={out}"])
    assert run_search(cfg).exit_code == 0
    study = _study(out)
    study.ask()  # killed before its run was created
    orphan = study.ask()  # killed after creating the run, before recording its id
    (parent,) = _runs(out, "search")
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
    done.set_user_attr("mlflow_run_id", told.info.run_id)
    study.tell(done, first.values)

    cfg = compose([*FAST, "search.n_trials=3", f"search.output_dir={out}"])
    assert run_search(cfg).exit_code == 0
    study = _study(out)
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE,
        TrialState.COMPLETE,
    ]  # fmt: skip
    runs = _runs(out, "trial")
    assert sorted(int(r.data.tags["nas.trial"]) for r in runs) == [0, 1, 2, 3, 4]
    ended = _trial_run(out, done.number)
    assert ended.info.status == "FINISHED"
    assert ended.data.metrics["val_accuracy"] == first.user_attrs["metrics"]["val_accuracy"]
    # the derived compression params too, as a normally ended run logs them
    compression = first.user_attrs["compression"]
    assert compression and all(ended.data.params[k] == str(v) for k, v in compression.items())
    for t in study.trials[1:3]:
        assert t.user_attrs[INTERRUPTED] is True
        run = _trial_run(out, t.number)
        assert run.info.run_id == t.user_attrs["mlflow_run_id"]
        assert run.info.status == "FAILED" and run.data.tags["error"] == "interrupted"
    assert study.trials[2].user_attrs["mlflow_run_id"] == created.info.run_id


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and Python keeps it ignored
    # (no KeyboardInterrupt) when it starts that way; a test that sends Ctrl-C must
    # give its child the disposition a terminal's foreground job has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("phase", ["train", "evaluate"])
def test_ctrl_c_stops_cleanly_and_resumes(tmp_path: Path, plugin: Path, phase: str) -> None:
    out = tmp_path / "out"
    cmd = _cmd(out, "search.n_trials=2")
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
    run = _trial_run(out, 1)
    assert run.info.status == "KILLED" and run.data.tags["error"] == "interrupted"
    (parent,) = _runs(out, "search")
    assert parent.info.status == "KILLED"

    if phase == "train":  # resuming once is enough; it does not depend on the phase
        again = subprocess.run(cmd, env=_env(plugin), text=True, capture_output=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        study = _study(out)
        assert [t.state for t in study.trials] == [
            TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
        ]  # fmt: skip
        (parent,) = _runs(out, "search")
        assert parent.info.status == "FINISHED"


# -- failing trials -------------------------------------------------------------------------


def _failed(out: Path, number: int) -> tuple[optuna.trial.FrozenTrial, str]:
    t = _study(out).trials[number]
    assert t.state == TrialState.FAIL
    run = _trial_run(out, number)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == t.user_attrs["error"]
    return t, t.user_attrs["error"]


def test_raising_and_diverging_trials_fail_and_the_search_goes_on(tmp_path, monkeypatch) -> None:
    import nas.pipeline._candidate
    from search_spaces._tiny import TinySearchSpace

    build, train = TinySearchSpace.build, nas.pipeline._candidate.train
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
    monkeypatch.setattr(nas.pipeline._candidate, "train", nan_train)
    outcome = run_search(compose([*FAST, f"search.output_dir={tmp_path}", "search.n_trials=3"]))
    assert outcome.exit_code == 0 and outcome.n_trials == 3 and outcome.n_failed == 2
    _, reason = _failed(tmp_path, 0)
    assert reason == "RuntimeError: injected build failure"
    _, reason = _failed(tmp_path, 1)
    assert reason.startswith("TrainFailed: loss became nan")
    assert _study(tmp_path).trials[2].state == TrialState.COMPLETE
    assert [r["trial"] for r in outcome.front] == [2]


def test_trial_timeout_during_training(tmp_path: Path) -> None:
    cfg = compose([*FAST, f"search.output_dir={tmp_path}", "search.n_trials=1",
                   "search.trial_timeout_s=0.001"])  # fmt: skip
    outcome = run_search(cfg)
    assert outcome.exit_code == EXIT_NO_FEASIBLE and outcome.n_failed == 1
    _, reason = _failed(tmp_path, 0)
    assert reason.startswith("TrialTimeout: trial exceeded search.trial_timeout_s during training")


def test_trial_timeout_bounds_a_hung_evaluation(tmp_path, plugin, monkeypatch) -> None:
    # The evaluator process imports the plugin, which hangs trial 0's evaluation.
    monkeypatch.syspath_prepend(str(plugin))
    for k, v in _env(plugin, phase="evaluate", trials="0", sleep="600").items():
        monkeypatch.setenv(k, v)
    cfg = compose([*FAST, f"search.output_dir={tmp_path}", "search.n_trials=2",
                   "search.trial_timeout_s=20"])  # fmt: skip
    start = time.monotonic()
    outcome = run_search(cfg, plugins=["faultplug"])
    assert time.monotonic() - start < 120
    _, reason = _failed(tmp_path, 0)
    assert reason.startswith("TimeoutError: evaluating trial_00000.dsz took longer than")
    assert "the trial's time limit" in reason
    # The hung worker was replaced; the next trial is scored by a fresh one.
    t1 = _study(tmp_path).trials[1]
    assert t1.state == TrialState.COMPLETE, t1.user_attrs.get("error")
    assert outcome.n_failed == 1 and len(_evaluator_pids(plugin)) == 2
    assert not any(_alive(pid) for pid in _evaluator_pids(plugin))


# -- bad input through the CLI --------------------------------------------------------------


def _image_dirs(root: Path) -> dict[str, Path]:
    from PIL import Image

    corrupt = root / "corrupt"
    for cls in ("a", "b"):
        (corrupt / cls).mkdir(parents=True)
        Image.new("L", (8, 8), 128).save(corrupt / cls / "ok.png")
    (corrupt / "b" / "broken.png").write_bytes(b"this is not a png")
    empty = root / "empty"
    empty.mkdir()
    return {"corrupt": corrupt, "empty": empty}


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BAD_INPUT = [
    # (id, overrides, words the one line must contain, fails before torch is imported)
    ("hw", ["+hw=nosuch"], ["+hw=nosuch", "mcu, mobile"], True),
    ("dataset", ["dataset=nosuch"], ["dataset=nosuch", "digits"], True),
    ("space", ["search_space=nosuch"], ["search_space=nosuch", "mbconv"], True),
    ("key", ["search.n_trail=3"], ["search.n_trail", "n_trials"], True),
    ("bits", ["compress.bits=[5]"], ["contains 5", "(2, 3, 4, 6, 8, 16, 32)"], True),
    ("sparsity", ["compress.sparsity_max=1.5"], ["sparsity_max=1.5", "[0, 1)"], True),
    ("n_trials", ["search.n_trials=0"], ["search.n_trials=0", ">= 1"], True),
    ("root", ["dataset=imagefolder", "dataset.root={tmp}/nosuch"], ["nosuch", "existing"], True),
    ("corrupt", ["dataset=imagefolder", "dataset.root={corrupt}"], ["broken.png", "corrupt"],
     False),
    ("empty", ["dataset=imagefolder", "dataset.root={empty}"], ["empty", "class"], False),
    ("mlflow", ["mlflow.tracking_uri=http://127.0.0.1:{port}"], ["127.0.0.1", "unreachable"],
     False),
    ("budget", ["+hw=mcu", "hw.size_budget_bytes=100"],
     ["hw.size_budget_bytes=100", "cannot be met", "740 B"], False),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path: Path, case) -> None:
    _, overrides, words, early = case
    out = tmp_path / "out"
    subs = {"tmp": str(tmp_path), "port": str(_closed_port())}
    subs.update({k: str(v) for k, v in _image_dirs(tmp_path / "imgs").items()})
    args = [o.format(**subs) for o in overrides]
    # The CLI's own main(), plus a report of whether torch got imported before it failed.
    probe = (
        "import sys; from nas.search import main; rc = main(sys.argv[1:]); "
        "print('torch imported' if 'torch' in sys.modules else 'torch not imported'); "
        "sys.exit(rc)"
    )
    start = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-c", probe, *FAST, f"search.output_dir={out}", *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "INFO mlflow" not in ln]
    assert r.returncode == 2, r.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-3000:]
    for word in words:
        assert word in lines[0]
    if early:
        assert "torch not imported" in r.stdout
        assert elapsed < 10
    # Nothing half-written: no study, no parent run.
    assert not list(tmp_path.rglob("*.journal"))
    assert not (out / "mlflow.db").exists()


def test_budget_unmet_after_the_search_reports_the_nearest(tmp_path: Path) -> None:
    from nas.pipeline import load_splits
    from nas.study import smallest_achievable

    cfg = compose([*FAST, "+hw=mcu"])
    smallest = smallest_achievable(cfg, load_splits(cfg.dataset, seed=0).spec)["size_bytes"]
    r = subprocess.run(
        [sys.executable, "-m", "nas.search", *FAST, f"search.output_dir={tmp_path}",
         "search.n_trials=3", "+hw=mcu", f"hw.size_budget_bytes={int(smallest)}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == EXIT_NO_FEASIBLE, r.stderr[-3000:]
    assert "No trained candidate met the budgets; the nearest" in r.stdout
    nearest = [ln for ln in r.stdout.splitlines() if ln.startswith("  trial ")]
    assert 1 <= len(nearest) <= 3 and "size_bytes +" in nearest[0]
    (parent,) = _runs(tmp_path, "search")
    assert parent.info.status == "FINISHED"


# -- crafted artifacts ----------------------------------------------------------------------


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _header(meta: dict) -> bytes:
    import json

    from compress._format import MAGIC, VERSION

    raw = json.dumps({"format": "downsize", "version": VERSION, "meta": meta}).encode()
    return MAGIC + struct.pack("<I", len(raw)) + raw


ARTIFACTS: dict[str, Callable[[], bytes]] = {
    "pickle": lambda: pickle.dumps(_Boom()),
    "torch-save-zip": lambda: b"PK\x03\x04" + pickle.dumps(_Boom()),
    "header-length-huge": lambda: _header({})[:8] + struct.pack("<I", 2**32 - 1) + b"{}",
    "header-not-json": lambda: _header({})[:8] + struct.pack("<I", 4) + b"\xff\xfe{[",
    "meta-missing-keys": lambda: _header({"space": "tiny"}),
    "meta-unknown-space": lambda: _header(
        {"space": "os.system", "space_cfg": {}, "arch": {}, "spec": {}}
    ),
    "model-huge": lambda: _header({
        "space": "tiny", "space_cfg": {},
        "arch": {"kind": "mlp", "hidden": [1_000_000, 1_000_000]},
        "spec": {"in_chans": 1, "image_size": 8, "num_classes": 10},
    }),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(ARTIFACTS))
def test_crafted_artifacts_are_refused(tmp_path: Path, kind: str, monkeypatch) -> None:
    from nas.pipeline import load_artifact

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.dsz"
    path.write_bytes(ARTIFACTS[kind]())
    with pytest.raises(ValueError):
        load_artifact(path)
    assert not (tmp_path / "pwned").exists()
