"""`python -m nas.export` refuses bad input with one line and exit 2, before any work.

Fast: no search runs. Refusals of the request itself need no MLflow at all; those of
runs and artifacts use a tiny MLflow database made here, with runs tagged as a
search would tag them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

import compress
from nas.export.__main__ import main
from nas.study import keys

RUN_ID = "0123456789abcdef0123456789abcdef"  # well-formed, in no database
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_ENABLE_ASYNC_LOGGING": "false"}


class TinyDb:
    """An MLflow database with a search run and trial runs, but no trained model."""

    def __init__(self, root: Path) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        client = MlflowClient(tracking_uri=self.uri)
        exp = client.create_experiment("downsize", artifact_location=(root / "art").as_uri())
        search = {keys.TAG_ROLE: keys.ROLE_SEARCH, keys.TAG_STUDY: "tiny-study"}
        self.search = client.create_run(exp, tags=search).info.run_id
        client.log_param(self.search, "dataset.name", "digits")

        def trial(number: int, **tags: str) -> str:
            base = {keys.TAG_ROLE: keys.ROLE_TRIAL, keys.TAG_TRIAL: str(number),
                    keys.TAG_PARENT: self.search, keys.TAG_PARETO: "true"}  # fmt: skip
            return client.create_run(exp, tags={**base, **tags}).info.run_id

        self.unknown_space = trial(0)
        dsz = root / "trial_00000.dsz"
        meta = {"space": "no_such_space", "space_cfg": {}, "arch": {}, "compression": {},
                "spec": {"in_chans": 1, "image_size": 8, "num_classes": 10}}  # fmt: skip
        compress.export(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), dsz, meta=meta)
        client.log_artifact(self.unknown_space, str(dsz))
        self.no_artifact = trial(1)
        self.not_nas = client.create_run(exp).info.run_id


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> TinyDb:
    return TinyDb(tmp_path_factory.mktemp("tinydb"))


def _refused(args: list[str], capsys: pytest.CaptureFixture[str], message: str) -> None:
    code, err = main(args), capsys.readouterr().err
    _assert_one_line(code, err, message)


def _assert_one_line(code: int, err: str, message: str) -> None:
    """Exit 2 and one error line; before it, at most the progress of steps already done."""
    lines = [line for line in err.strip().splitlines() if not line.startswith("export: ")]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0], err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retrain-epochs", "-1"], "--retrain-epochs=-1 must be >= 0"),
        (["--threads", "0"], "--threads=0 must be >= 1"),
        (["--trial", "-1"], "--trial=-1 must be >= 0"),
        (["--plugin", "no_such_module_for_export"], "--plugin no_such_module_for_export: cannot"),
        (["--tracking-uri", "sqlite:///NOWHERE/mlflow.db"], "no MLflow database at"),
        (
            ["--tracking-uri", "http://127.0.0.1:9"],
            "--tracking-uri http://127.0.0.1:9 is unreachable",
        ),
    ],
)
def test_a_bad_option_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    args = [a.replace("NOWHERE", str(tmp_path / "nowhere")) for a in args]
    if "--tracking-uri" not in args:  # a database that does not exist: never opened
        args += ["--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"]
    out = tmp_path / "out"
    code, err = main([RUN_ID, "--out", str(out), *args]), capsys.readouterr().err
    _assert_one_line(code, err, message)
    assert len(err.strip().splitlines()) == 1  # nothing done, so no progress either
    assert not out.exists() and not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("run_id", ["abc", RUN_ID.upper(), RUN_ID + "0", "../" + RUN_ID[3:]])
def test_a_malformed_run_id_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run_id: str
) -> None:
    args = [run_id, "--out", str(tmp_path / "out"), "--tracking-uri", "http://127.0.0.1:9"]
    _refused(args, capsys, "32 hex characters")


def test_a_plugin_that_fails_on_import_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_export_plugin.py").write_text("raise RuntimeError('bad\\nplugin')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    args = [RUN_ID, "--out", str(tmp_path / "out"), "--plugin", "broken_export_plugin"]
    _refused(args, capsys, "--plugin broken_export_plugin: cannot import it (bad plugin)")


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_an_out_that_cannot_be_a_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" if where == "file" else tmp_path / "file" / "out"
    _refused([RUN_ID, "--out", str(out)], capsys, "is a file, not a folder")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_out_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    _refused([RUN_ID, "--out", str(locked / "out")], capsys, "is not writable")


@pytest.mark.parametrize(
    ("run", "extra", "message"),
    [
        ("RUN_ID", [], "not found at sqlite:///"),
        ("search", [], "is a search (study tiny-study), not a trial; pick one with --trial N"),
        ("search", ["--trial", "99"], "has no trial 99"),
        ("no_artifact", ["--trial", "1"], "needs a search's parent run id"),
        ("not_nas", [], "is not a trial of a nas.search study"),
        ("no_artifact", [], "has no .dsz artifact in MLflow"),
        ("unknown_space", [], "search space 'no_such_space' is not registered"),
    ],
)
def test_a_bad_run_is_refused(
    db: TinyDb,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    run: str,
    extra: list[str],
    message: str,
) -> None:
    run_id = RUN_ID if run == "RUN_ID" else getattr(db, run)
    args = [run_id, "--out", str(tmp_path / "out"), "--tracking-uri", db.uri, *extra]
    _refused(args, capsys, message)


def test_an_unregistered_space_suggests_the_plugin_on_the_command_line(
    db: TinyDb, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nas.export", db.unknown_space, "--out", str(tmp_path / "o"),
         "--tracking-uri", db.uri],
        capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    _assert_one_line(done.returncode, done.stderr, "a user search space needs --plugin MODULE")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trial", "1"], "--adaptive takes a search's run id, without"),
        (["--points", "1,x"], "--points '1,x': give trial numbers separated by commas"),
        ([], "is not a weight-sharing search (strategy=?)"),
    ],
)
def test_an_adaptive_export_of_what_cannot_make_one_is_refused(
    db: TinyDb, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    _refused([db.search, "--adaptive", "--out", str(out), "--tracking-uri", db.uri, *args],
             capsys, message)  # fmt: skip
    assert not out.exists()
