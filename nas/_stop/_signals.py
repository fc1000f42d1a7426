"""The stop signals made one stop of the command, and its children kept out of it."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = [
    "DEFAULT_GRACE_S",
    "STOP_SIGNALS",
    "children_shielded",
    "moot_while_stopping",
    "preempted",
    "raise_if_preempted",
    "raise_if_stop_lost",
    "reclaim_stop_signals",
    "set_grace",
    "shield_child",
    "stop_cause",
    "stop_signals_as_interrupt",
    "stopping",
]


STOP_SIGNALS: tuple[signal.Signals, ...] = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGUSR1,
)
"""The signals a scheduler or a terminal stops a job with; children ignore them all."""

DEFAULT_GRACE_S = 60.0
"""Seconds a pre-emption notice leaves the work in flight (``search.grace_s``)."""


# -- the command's side: signals into one stop --------------------------------------------


@contextlib.contextmanager
def stop_signals_as_interrupt(grace_s: float = DEFAULT_GRACE_S) -> Iterator[None]:
    """Within the block, the stop signals stop the command as Ctrl-C does (see the
    module docstring); ``grace_s`` is a pre-emption notice's grace (:func:`set_grace`
    changes it). The previous handlers are restored afterwards. Off the main thread,
    where Python cannot install handlers, the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _ACTIVE
    stop = _Stop(grace_s)
    outer, _ACTIVE = _ACTIVE, stop
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    background = previous[signal.SIGINT] is signal.SIG_IGN
    # A handler rather than SIG_IGN, so that a SIGTERM can interrupt through it.
    stop.handlers[signal.SIGINT] = stop.background_sigint if background else stop.sigint
    stop.handlers[signal.SIGTERM] = stop.stop
    for s, handler in ((signal.SIGHUP, stop.stop), (signal.SIGUSR1, stop.preempt)):
        if previous[s] is not signal.SIG_IGN:  # nohup: keep ignoring it
            stop.handlers[s] = handler
    stop.install()
    try:
        yield
    finally:
        stop.cancel_timer()
        for s, before in previous.items():
            signal.signal(s, before if before is not None else signal.SIG_DFL)
        _ACTIVE = outer


def reclaim_stop_signals() -> None:
    """Install the stop signals' handlers again, after a library replaced them: once
    ``ray.init`` has run, Ray's core catches SIGTERM in C and aborts (exit -6), and its
    Python side turns SIGTERM into ``sys.exit`` (exit 1, the parent run FAILED)."""
    if _ACTIVE is not None and threading.current_thread() is threading.main_thread():
        _ACTIVE.install()


def set_grace(seconds: float) -> None:
    """Seconds a pre-emption notice leaves the work in flight (``search.grace_s``), for
    a notice that comes from now on."""
    if _ACTIVE is not None:
        _ACTIVE.grace_s = float(seconds)


def preempted() -> bool:
    """Whether a pre-emption notice came: start no new work."""
    return _ACTIVE is not None and _ACTIVE.preempt_at is not None


def stopping() -> bool:
    """Whether the command is stopping: a stop signal came, or a pre-emption notice's
    grace ended."""
    return _ACTIVE is not None and _ACTIVE.stopping


def moot_while_stopping(
    handler: Callable[[int, FrameType | None], Any],
) -> Callable[[int, FrameType | None], Any]:
    """``handler`` (a signal handler), but an error it raises while the command is
    stopping is dropped: torch's SIGCHLD handler raises "DataLoader worker ... killed"
    in the main thread, and a scheduler that signals every process of a job (Slurm's
    cgroup) kills the loader workers as it stops the search; raised in the middle of
    the stop's bookkeeping, that error would leave runs RUNNING."""

    def guarded(signum: int, frame: FrameType | None) -> Any:
        try:
            return handler(signum, frame)
        except Exception:
            if stopping():
                return None
            raise

    guarded.moot_while_stopping = True  # type: ignore[attr-defined]
    return guarded


def raise_if_preempted() -> None:
    """Where a phase of work has ended: stop (``KeyboardInterrupt``) if a pre-emption
    notice came while it ran."""
    if preempted():
        raise KeyboardInterrupt


def stop_cause() -> str:
    """What stopped the command, for its one line: ``"SIGTERM"``, ``"SIGUSR1
    (pre-emption; ...)"``, or ``""`` when no stop signal came (a plain Ctrl-C with no
    block, a KeyboardInterrupt of the caller's own)."""
    stop = _ACTIVE
    if stop is None or stop.cause is None:
        return ""
    if stop.preempt_at is None:
        return stop.cause
    if stop.grace_over:
        return f"SIGUSR1 (pre-emption; the work in flight did not end within {stop.grace_s:g} s)"
    return f"SIGUSR1 (pre-emption; the work in flight ended within {stop.grace_s:g} s)"


def raise_if_stop_lost() -> None:
    """At a safe point (between trials), raise the ``KeyboardInterrupt`` of a stop that
    was asked for and not raised yet, once.

    A handler's exception that lands in a finaliser or a weakref callback (SQLAlchemy
    has some) is printed as "Exception ignored in ..." and dropped, and one asked for
    while Ctrl-C was ignored (bookkeeping that must not be cut short) never raised, so
    the command would run on and exit 0. Code that reaches a safe point in its normal
    flow after a stop can only have lost it: this raises it there. A pre-emption
    notice is no stop yet (see :func:`preempted`).
    """
    stop = _ACTIVE
    if threading.current_thread() is not threading.main_thread():
        return  # a runner's helper thread: the main thread gets the interrupt itself
    if stop is not None and stop.requested:
        stop.requested = False
        raise KeyboardInterrupt


_ACTIVE: _Stop | None = None  # the innermost stop_signals_as_interrupt block's


class _Stop:
    """The handlers of one :func:`stop_signals_as_interrupt` block, and what came."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.cause: str | None = None  # the first stop signal's name
        self.requested = False  # a stop not yet seen raised (see raise_if_stop_lost)
        self.stopping = False  # a stop came (a notice's grace ended, or a stop signal)
        self.preempt_at: float | None = None
        self.grace_over = False
        self._timer: threading.Timer | None = None
        self.handlers: dict[signal.Signals, Callable[[int, FrameType | None], None]] = {}

    def install(self) -> None:
        for s, handler in self.handlers.items():
            signal.signal(s, handler)

    def sigint(self, signum: int, frame: FrameType | None) -> None:
        self.cause = self.cause or "SIGINT"
        self.requested = self.stopping = True
        raise KeyboardInterrupt

    def stop(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM, SIGHUP: routed through the current SIGINT handler."""
        self.cause = self.cause or signal.Signals(signum).name
        self._interrupt(frame)

    def _interrupt(self, frame: FrameType | None) -> None:
        self.requested = self.stopping = True
        handler = signal.getsignal(signal.SIGINT)
        if handler is signal.SIG_IGN:
            return  # bookkeeping that must not be cut short: raised at the next safe point
        if callable(handler):
            handler(signal.SIGINT, frame)  # raises, or defers until the block ends
            return
        raise KeyboardInterrupt

    def background_sigint(self, signum: int, frame: FrameType | None) -> None:
        # Ctrl-C stays ignored, as the shell asked; a stop routed here interrupts.
        if self.requested:
            raise KeyboardInterrupt

    def preempt(self, signum: int, frame: FrameType | None) -> None:
        if self.preempt_at is not None:
            return  # a second notice changes nothing
        self.cause = self.cause or "SIGUSR1"
        self.preempt_at = time.monotonic()
        # os.write, not print: a handler that interrupts a print to stderr (the progress
        # bar's) would make a reentrant call into the same buffered stream.
        _say(
            f"pre-emption notice (SIGUSR1): nothing new starts; the work in flight has "
            f"{self.grace_s:g} s (search.grace_s) to finish before it is interrupted\n"
        )
        self._timer = threading.Timer(self.grace_s, self._grace_ended)
        self._timer.daemon = True
        self._timer.start()

    def _grace_ended(self) -> None:
        """In the timer's thread: interrupt the main thread as SIGTERM would."""
        self.grace_over = True
        self.requested = self.stopping = True
        # A signal to the main thread itself, so that a blocking wait there wakes up.
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _say(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(sys.stderr.fileno(), text.encode())


# -- the children's side -------------------------------------------------------------------


@contextlib.contextmanager
def children_shielded() -> Iterator[None]:
    """Start child processes inside this block: each begins with the stop signals
    blocked (a child inherits its parent thread's signal mask), so none can stop it
    before it calls :func:`shield_child`. The calling thread's own stop signals wait
    until the block ends, then arrive as usual."""
    # multiprocessing starts its resource tracker with the first spawned child and then
    # *unblocks* SIGINT and SIGTERM, whatever the mask was: start it first.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def shield_child(*, own_group: bool = False) -> None:
    """First thing in a child process: ignore the stop signals and unblock them (any
    that came since the parent started it are dropped). The parent, which gets the
    same signals, stops the child itself.

    Args:
        own_group: also leave the parent's process group (``setpgid``), so that signals
            sent to the group never reach this process at all (a DataLoader worker,
            whose SIGTERM handler torch sets for its parent's use).
    """
    if own_group:
        with contextlib.suppress(OSError):  # already a group or session leader
            os.setpgid(0, 0)
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
