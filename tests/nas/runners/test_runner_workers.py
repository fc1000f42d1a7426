"""What the driver of a ``runner=ray`` search sends its workers (``worker_setup``), and
where every runner records that a trial ran (``worker_record``). No Ray is started.
(The Ray searches themselves: tests/e2e/test_ray_runner.py, test_ray_supernet.py.)"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from nas import compose
from nas.runners import worker_record, worker_setup


def _setup(tmp_path: Path, *overrides: str) -> dict:
    cfg = compose(["runner=ray", *overrides])
    loop = SimpleNamespace(cfg=cfg, out_dir=tmp_path, study_name="s", plugins=())
    return worker_setup(loop).cfg  # type: ignore[arg-type]


def test_a_relative_supernet_checkpoint_reaches_the_workers_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tune runs each trial in a directory of its own: a ``strategy.checkpoint`` given
    relative to the driver's working directory is resolved there, before it is sent."""
    monkeypatch.chdir(tmp_path)
    cfg = _setup(
        tmp_path, "strategy=supernet", "search_space=mbconv", "strategy.checkpoint=sn.safetensors"
    )
    assert cfg["strategy"]["checkpoint"] == str(tmp_path / "sn.safetensors")
    assert cfg["mlflow"]["tracking_uri"] is None and cfg["search"]["storage"] is None


def test_no_checkpoint_stays_none(tmp_path: Path) -> None:
    assert (
        _setup(tmp_path, "strategy=supernet", "search_space=mbconv")["strategy"]["checkpoint"]
        is None
    )
    assert _setup(tmp_path)["strategy"]["name"] == "scratch"


def test_a_worker_record_names_the_process() -> None:
    assert worker_record() == {"host": socket.gethostname(), "pid": os.getpid()}
    assert worker_record("ab" * 28)["node"] == "ab" * 28


def test_the_local_runner_records_where_each_trial_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver is the local runner's worker: each trial it runs gets the record."""
    import nas.runners._local as local
    from nas.runners import get_runner
    from nas.study import keys

    trial = SimpleNamespace(number=0, user_attrs={})
    trial.set_user_attr = trial.user_attrs.__setitem__
    loop = SimpleNamespace(remaining=1, ctx=None, phase="score", recorder=None, durations=[])
    loop.past_deadline = lambda: False
    loop.phase_of = lambda t: loop.phase
    loop.ends_at = lambda: 123.0
    sent: dict = {}

    def run_and_record(recorder, body):
        body(trial)
        loop.remaining -= 1
        return SimpleNamespace(state=None, user_attrs=trial.user_attrs)

    monkeypatch.setattr(local, "run_and_record", run_and_record)
    monkeypatch.setattr(local, "run_trial", lambda *a, **kw: sent.update(kw))
    get_runner("local").run(loop)  # type: ignore[arg-type]
    assert trial.user_attrs[keys.WORKER] == worker_record()
    assert sent["ends_at"] == 123.0  # the search's end reaches the trial (a finalist's rounds)


def test_an_enqueued_finalist_keeps_its_phase_whichever_phase_asks() -> None:
    """A finalist a crash left queued is asked for first by the resumed search's scoring
    phase: it must still be finalised, not scored as an estimate."""
    from nas.runners import SearchLoop
    from nas.study import keys

    loop = SearchLoop.__new__(SearchLoop)
    loop.phase = "score"
    assert loop.phase_of(SimpleNamespace(user_attrs={keys.PHASE: "final"})) == "final"
    assert loop.phase_of(SimpleNamespace(user_attrs={})) == "score"


def test_the_search_end_a_trial_sees_is_the_deadline_on_the_wall_clock() -> None:
    """A Ray worker compares the search's end with its own clock: the loop gives it as
    ``time.time()``, not the driver's ``time.monotonic()``."""
    import time

    from nas.runners import SearchLoop

    loop = SearchLoop.__new__(SearchLoop)
    loop.deadline = None
    assert loop.ends_at() is None
    loop.deadline = time.monotonic() + 60.0
    assert abs(loop.ends_at() - (time.time() + 60.0)) < 1.0  # type: ignore[operator]
