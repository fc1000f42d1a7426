"""A thread blocked past its deadline, stopped from outside: SIGALRM on the main thread,
an asynchronous exception on another."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

__all__ = [
    "raise_at",
    "unwatched",
]


# -- a thread blocked past its deadline -------------------------------------------------------


@contextlib.contextmanager
def raise_at(deadline: float | None, error: Callable[[str], BaseException]) -> Iterator[None]:
    """Raise ``error(where)`` in this thread if the block still runs at ``deadline``
    (a ``time.monotonic()`` value), even when the thread is blocked waiting, as on a
    data loader that never delivers; ``where`` names the code it was stopped in.

    On the main thread the error comes by a signal (SIGALRM) sent to that thread, which
    also wakes a blocking wait. On another thread (Ray Tune runs a trial in one) it is
    an asynchronous exception, which lands at the next Python instruction the thread
    runs: a wait in Python (a DataLoader's, which polls) is stopped within its poll, a
    single C call that never returns is not.
    """
    if deadline is None:
        yield
        return
    thread = threading.current_thread()
    watch = _Watch(error, thread, deadline)
    if watch.main:
        _install_alarm_handler()
    outer = _WATCHES.get(thread.ident or 0)
    _WATCHES[thread.ident or 0] = watch
    threading.Thread(target=watch.wait, daemon=True, name="raise_at").start()
    try:
        yield
    finally:
        watch.disarm()
        if outer is None:
            _WATCHES.pop(thread.ident or 0, None)
        else:
            _WATCHES[thread.ident or 0] = outer


@contextlib.contextmanager
def unwatched() -> Iterator[None]:
    """Time in this block does not count toward this thread's :func:`raise_at`
    deadline: a wait that is the whole search's cost, not the trial's (the evaluator
    process starting up while the first trial trains)."""
    watch = _WATCHES.get(threading.get_ident())
    if watch is None:
        yield
        return
    watch.paused += 1
    start = time.monotonic()
    try:
        yield
    finally:
        watch.deadline += time.monotonic() - start
        watch.paused -= 1


class _Watch:
    def __init__(
        self, error: Callable[[str], BaseException], thread: threading.Thread, deadline: float
    ) -> None:
        self.error, self.thread, self.deadline = error, thread, deadline
        self.main = thread is threading.main_thread()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.armed, self.fired = True, False
        self.paused = 0  # blocks of unwatched() in progress
        self.pending: BaseException | None = None

    def wait(self) -> None:
        while True:
            left = self.deadline - time.monotonic()
            if self.done.wait(1.0 if self.paused else max(0.0, left)):
                return
            if not self.paused and time.monotonic() >= self.deadline:
                break  # the deadline moves on while paused: look again
        with self.lock:
            if not self.armed:
                return
            self.fired = True
            ident = self.thread.ident or 0
            self.pending = self.error(_where(sys._current_frames().get(ident)))
            if self.main:
                global _ALARM
                _ALARM = self
                signal.pthread_kill(ident, signal.SIGALRM)
            else:
                _async_raise(ident, _fixed(self.pending))

    def disarm(self) -> None:
        # First, and without the lock: the SIGALRM handler may run inside this method,
        # on this thread, and must then see the block as ended.
        self.armed = False
        self.done.set()
        with self.lock:
            if self.fired and not self.main:
                _async_raise(self.thread.ident or 0, None)  # not raised yet: cancel it


_WATCHES: dict[int, _Watch] = {}  # each thread's innermost raise_at block
_ALARM: _Watch | None = None  # the watch whose SIGALRM is on its way to the main thread
_ALARM_HANDLER_SET = False


def _install_alarm_handler() -> None:
    """Once per process: a SIGALRM handler that raises a fired watch's error. It stays
    (restoring the default could let a late SIGALRM end the process)."""
    global _ALARM_HANDLER_SET
    if not _ALARM_HANDLER_SET:
        signal.signal(signal.SIGALRM, _on_alarm)
        _ALARM_HANDLER_SET = True


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    global _ALARM
    watch, _ALARM = _ALARM, None
    if watch is None or watch.pending is None or not watch.armed:
        return  # the block ended before this handler ran
    watch.armed = False
    raise watch.pending


def _where(frame: FrameType | None) -> str:
    if frame is None:
        return "an unknown place"
    code = frame.f_code
    return f"{code.co_name} ({Path(code.co_filename).name}:{frame.f_lineno})"


def _fixed(error: BaseException) -> type[BaseException]:
    """An exception class whose instances are ``error`` again: an asynchronous
    exception is raised from its class, with no arguments."""
    cls = type(error)
    args = error.args
    return type(cls.__name__, (cls,), {"__init__": lambda self, *_: cls.__init__(self, *args)})


def _async_raise(ident: int, cls: type[BaseException] | None) -> None:
    set_async = ctypes.pythonapi.PyThreadState_SetAsyncExc
    set_async.argtypes = (ctypes.c_ulong, ctypes.py_object)
    set_async(ident, cls if cls is not None else ctypes.py_object())
