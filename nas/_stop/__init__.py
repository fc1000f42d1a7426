"""How a command stops: the signals a scheduler sends, what its children do with them,
a trial that hangs, and a disk that fills.

Schedulers stop a job by signalling its whole process group: ``timeout`` and Slurm's
``scancel`` send SIGTERM, a terminal's Ctrl-C SIGINT, a closed terminal SIGHUP, and
Slurm's ``--signal=USR1@N`` a pre-emption notice N seconds before the end. Within
:func:`stop_signals_as_interrupt` each becomes one way of stopping, decided in the
command's main thread:

- SIGINT, SIGTERM, SIGHUP: ``KeyboardInterrupt`` at once, through the current SIGINT
  handler, so the bookkeeping that defers or ignores Ctrl-C (``nas.study``'s
  ``sigint_deferred``) defers or ignores these too. A signal the process was started
  ignoring (``nohup``'s SIGHUP, a shell's ``cmd &`` SIGINT) stays ignored.
- SIGUSR1: a pre-emption notice. Nothing is cut: no new work starts
  (:func:`preempted`), the work in flight may finish, and only if it has not finished
  :func:`set_grace` seconds later is it interrupted as by SIGTERM.

The children get the same signals and leave the stop to the command, as Lightning's
SLURM connector leaves it to its trainer: the command starts them inside
:func:`children_shielded`, so each begins with the signals blocked, and each calls
:func:`shield_child` first. Also here: :func:`raise_at`, which stops a thread that is
blocked past its deadline, and :class:`DiskFull`, a write refused for want of space
with the path that was being written. Light: no torch.
"""

from __future__ import annotations

from nas._stop._disk import EXIT_DISK_FULL, DiskFull, is_disk_full, writing
from nas._stop._limits import raise_at, unwatched
from nas._stop._signals import (
    DEFAULT_GRACE_S,
    STOP_SIGNALS,
    children_shielded,
    moot_while_stopping,
    preempted,
    raise_if_preempted,
    raise_if_stop_lost,
    reclaim_stop_signals,
    set_grace,
    shield_child,
    stop_cause,
    stop_signals_as_interrupt,
    stopping,
)

__all__ = [
    "DEFAULT_GRACE_S",
    "EXIT_DISK_FULL",
    "STOP_SIGNALS",
    "DiskFull",
    "children_shielded",
    "is_disk_full",
    "moot_while_stopping",
    "preempted",
    "raise_at",
    "raise_if_preempted",
    "raise_if_stop_lost",
    "reclaim_stop_signals",
    "set_grace",
    "shield_child",
    "stop_cause",
    "stop_signals_as_interrupt",
    "stopping",
    "unwatched",
    "writing",
]
