"""nas._stop: the stop signals, pre-emption, children that leave the stop to the
search, a thread blocked past its deadline, and a full disk. The whole search under
each fault: tests/e2e/test_faults.py."""

from __future__ import annotations

import errno
import gc
import multiprocessing as mp
import os
import signal
import sqlite3
import threading
import time
import weakref

import pytest

from nas._stop import (
    DiskFull,
    children_shielded,
    is_disk_full,
    preempted,
    raise_at,
    raise_if_preempted,
    raise_if_stop_lost,
    reclaim_stop_signals,
    set_grace,
    shield_child,
    stop_cause,
    stop_signals_as_interrupt,
    writing,
)
from nas.study import sigint_ignored


def _wait(seconds: float) -> None:
    """Sleep in small steps, so that a signal's handler runs promptly."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_interrupts_and_is_named(sig: signal.Signals) -> None:
    with stop_signals_as_interrupt():
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
            _wait(5)
        assert stop_cause() == sig.name
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    assert stop_cause() == ""


def test_nohup_keeps_sighup_ignored() -> None:
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_signals_as_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            _wait(0.2)  # nothing happens
            raise_if_stop_lost()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_stop_during_bookkeeping_is_raised_at_the_next_safe_point() -> None:
    with stop_signals_as_interrupt():
        with sigint_ignored():  # bookkeeping that must not be cut short
            os.kill(os.getpid(), signal.SIGTERM)
            _wait(0.2)
        with pytest.raises(KeyboardInterrupt):
            raise_if_stop_lost()
        raise_if_stop_lost()  # raised once, not again


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the point
def test_a_stop_swallowed_in_a_finaliser_is_raised_at_the_next_safe_point() -> None:
    class Held:
        pass

    raise_if_stop_lost()  # outside a block: nothing pending, nothing raised
    with stop_signals_as_interrupt():
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        held = Held()
        # The handler runs inside a weakref callback, as it can inside SQLAlchemy's:
        # Python prints "Exception ignored in ..." and drops the KeyboardInterrupt.
        ref = weakref.ref(held, lambda _: handler(signal.SIGTERM, None))
        del held
        gc.collect()
        assert ref() is None
        with pytest.raises(KeyboardInterrupt):
            raise_if_stop_lost()
        raise_if_stop_lost()


def test_a_preemption_notice_lets_the_work_finish_within_the_grace() -> None:
    with stop_signals_as_interrupt(grace_s=30):
        assert not preempted()
        os.kill(os.getpid(), signal.SIGUSR1)
        _wait(0.5)  # the work in flight goes on: nothing is raised
        assert preempted()
        raise_if_stop_lost()  # a notice is no stop: safe points start nothing new instead
        with pytest.raises(KeyboardInterrupt):
            raise_if_preempted()  # where the work in flight has ended
        assert "ended within 30 s" in stop_cause()


def test_a_preemption_notice_interrupts_work_past_the_grace() -> None:
    with stop_signals_as_interrupt(grace_s=60):
        set_grace(0.3)  # search.grace_s, known once the config is composed
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(30)  # a blocking wait: the grace's end wakes it
        assert 0.2 < time.monotonic() - start < 10
        assert "did not end within 0.3 s" in stop_cause()


def test_handlers_a_library_replaced_are_reclaimed() -> None:
    with stop_signals_as_interrupt():
        signal.signal(signal.SIGUSR1, lambda *_: None)  # as Ray Tune does
        reclaim_stop_signals()
        os.kill(os.getpid(), signal.SIGUSR1)
        _wait(0.2)
        assert preempted()


def _report_mask_and_wait(conn) -> None:  # type: ignore[no-untyped-def]
    conn.send(sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])))
    shield_child()
    conn.send("shielded")
    conn.recv()


def test_a_child_started_shielded_leaves_the_stop_to_its_parent() -> None:
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    with children_shielded():
        proc = ctx.Process(target=_report_mask_and_wait, args=(theirs,), daemon=True)
        proc.start()
    try:
        blocked = set(ours.recv())  # before shield_child: nothing could stop it
        assert {int(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)} <= blocked
        assert ours.recv() == "shielded"
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            os.kill(proc.pid, sig)
        time.sleep(0.5)
        assert proc.is_alive()
        ours.send("done")
        proc.join(10)
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
    # and this thread's own mask is as it was
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_raise_at_stops_a_blocked_main_thread_and_says_where() -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"stopped in .*test_stop.py"):
        with raise_at(time.monotonic() + 0.3, lambda where: TimeoutError(f"stopped in {where}")):
            time.sleep(30)
    assert time.monotonic() - start < 10


def test_raise_at_stops_a_worker_thread_waiting_in_python() -> None:
    """Ray Tune runs a trial in a thread of its own: the error lands there, with its
    message, within the wait's poll."""
    caught: list[BaseException] = []

    def trial() -> None:
        try:
            with raise_at(time.monotonic() + 0.3, lambda where: TimeoutError(f"in {where}")):
                while True:  # a loader polling a queue that stays empty
                    time.sleep(0.05)
        except TimeoutError as e:
            caught.append(e)

    t = threading.Thread(target=trial)
    t.start()
    t.join(10)
    assert not t.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], TimeoutError)
    assert str(caught[0]).startswith("in trial (test_stop.py:")


def test_raise_at_leaves_a_block_that_ended_in_time_alone() -> None:
    with raise_at(time.monotonic() + 0.2, lambda where: TimeoutError(where)):
        pass
    _wait(0.5)  # no late error
    with raise_at(None, lambda where: TimeoutError(where)):
        pass


def test_a_full_disk_is_recognised_in_every_form() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    try:  # SQLite's SQLITE_FULL, wrapped as a driver wraps it
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as e:
            raise RuntimeError("a database error") from e
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("database is locked"))


def test_writing_names_the_file_that_could_not_be_written(tmp_path) -> None:
    with pytest.raises(DiskFull) as info:
        with writing(tmp_path / "store.db"):
            raise sqlite3.OperationalError("database or disk is full")
    assert info.value.filename == str(tmp_path / "store.db")
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(DiskFull) as info:
        with writing(tmp_path):  # the error's own file wins
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a.dsz"))
    assert info.value.filename == str(tmp_path / "a.dsz")
    with pytest.raises(PermissionError):
        with writing(tmp_path):
            raise PermissionError(errno.EACCES, "Permission denied")


def test_the_kernels_enospc_is_a_disk_full(tmp_path) -> None:
    with pytest.raises(DiskFull) as info:
        with writing(tmp_path / "x"), open("/dev/full", "wb") as f:
            f.write(b"x" * 10)
            f.flush()
    assert info.value.filename == str(tmp_path / "x")


def test_time_unwatched_does_not_count_toward_the_deadline() -> None:
    """The evaluator process starting up is the search's wait, not the trial's."""
    from nas._stop import unwatched

    start = time.monotonic()
    with raise_at(time.monotonic() + 0.5, lambda where: TimeoutError(where)):
        with unwatched():
            time.sleep(1.0)  # past the deadline, unwatched
        time.sleep(0.3)  # 0.3 s of the 0.5 counted
    with pytest.raises(TimeoutError):
        with raise_at(time.monotonic() + 0.5, lambda where: TimeoutError(where)):
            with unwatched():
                time.sleep(0.3)
            time.sleep(5)
    assert time.monotonic() - start < 4


def test_a_childs_death_is_moot_once_the_command_is_stopping() -> None:
    """A scheduler that signals every process of a job kills the loader workers as it
    stops the search: torch's SIGCHLD error must not land in the stop's bookkeeping."""
    from nas._stop import moot_while_stopping, stopping

    def torch_like(signum: int, frame: object) -> None:
        raise RuntimeError("DataLoader worker (pid 7) is killed by signal: Terminated.")

    guarded = moot_while_stopping(torch_like)
    with stop_signals_as_interrupt():
        with pytest.raises(RuntimeError):  # not stopping: a worker that died is news
            guarded(signal.SIGCHLD, None)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            _wait(5)
        assert stopping()
        guarded(signal.SIGCHLD, None)  # dropped
    assert not stopping()
