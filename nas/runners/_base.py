"""The runner seam: where a search's trials run (this process, or a Ray cluster).

A runner gets a :class:`SearchLoop` (the study, the trial context, the recorder and
the budget) and runs ``loop.remaining`` trials through the one recorder, so every
runner records trials the same way. Runners are registered in :data:`RUNNERS` under
their ``conf/runner/<name>.yaml`` option; Ray is imported only when chosen.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nas._stop import preempted, raise_if_stop_lost
from nas.config import Registry
from nas.study import keys

if TYPE_CHECKING:
    import optuna
    from omegaconf import DictConfig
    from optuna.trial import FrozenTrial
    from tqdm import tqdm

    from nas.pipeline import TrialContext
    from nas.study import FrontState, TrialRecorder

__all__ = ["RUNNERS", "Runner", "SearchLoop", "get_runner", "register_runner", "worker_record"]


@dataclass
class SearchLoop:
    """What a runner needs to run the remaining trials of a search, and record them.

    ``phase`` is the strategy's: ``"score"`` (proposals drawn by the sampler) or
    ``"final"`` (finalists enqueued in the study by the driver).
    """

    cfg: DictConfig
    study: optuna.Study
    ctx: TrialContext
    recorder: TrialRecorder
    front_state: FrontState
    bar: tqdm[Any]
    remaining: int
    deadline: float | None  # time.monotonic() past which no new trial starts
    plugins: tuple[str, ...]
    out_dir: Path
    phase: str = "score"
    durations: list[float] = field(default_factory=list)

    @property
    def tracker(self) -> Any:
        return self.recorder.tracker

    @property
    def study_name(self) -> str:
        return self.recorder.study_name

    def done(self, frozen: FrozenTrial) -> None:
        """Account for one recorded trial (any state): front, progress, budget."""
        self.front_state.refresh(self.study, step=frozen.number)
        self.remaining -= 1
        self.bar.update(1)
        self.bar.set_postfix(front=len(self.front_state.front), hv=f"{self.front_state.hv:.3f}")

    def phase_of(self, trial: Any) -> str:
        """A trial's phase: the one it was enqueued with, else the loop's (a finalist a
        crash left queued stays a finalist when a resumed search asks for it first)."""
        return str(trial.user_attrs.get(keys.PHASE) or self.phase)

    def ends_at(self) -> float | None:
        """``deadline`` as a wall-clock time (``time.time()``), which a trial run in
        another process can compare with its own clock; None when there is none."""
        if self.deadline is None:
            return None
        return time.time() + (self.deadline - time.monotonic())

    def past_deadline(self) -> bool:
        """Whether another trial, taking the median trial time so far, would end past
        ``search.timeout_s`` (then say so once), or a pre-emption notice came. A running
        trial is never cut here.

        Every runner asks this between trials, so it is also where a stop that Python
        swallowed (raised in a finaliser: "Exception ignored in ...") is raised after
        all, instead of the search running on and exiting 0."""
        raise_if_stop_lost()
        if preempted():
            return True  # the driver stops once the trials in flight have ended
        if self.deadline is None:
            return False
        typical = statistics.median_high(self.durations) if self.durations else 0.0
        if time.monotonic() + typical <= self.deadline:
            return False
        print(
            f"Stopping: search.timeout_s={self.cfg.search.timeout_s} would be exceeded "
            "by another trial.",
            file=sys.stderr,
        )
        return True


class Runner(Protocol):
    """Runs a search's trials. Lifecycle: :meth:`check` at start-up, :meth:`prepare` once,
    :meth:`run` per phase."""

    trains_here: bool
    """True when trials run in the driver process (it then needs an evaluator)."""

    def check(self, cfg: DictConfig) -> None:
        """Refuse bad runner settings (an unreachable cluster) with a ConfigError."""

    def prepare(self, loop: SearchLoop) -> None:
        """Run the strategy's one-off work (a supernet's training) where trials run."""

    def run(self, loop: SearchLoop) -> None:
        """Run ``loop.remaining`` trials; KeyboardInterrupt propagates after marking."""


RUNNERS: Registry[type[Runner]] = Registry(
    "runner",
    lazy={"local": "nas.runners._local:LocalRunner", "ray": "nas.runners._ray:RayRunner"},
)
"""Runner classes by ``runner=`` option; each is built with no arguments."""


def worker_record(node: str | None = None) -> dict[str, Any]:
    """Where a trial is evaluated (this process), for its ``keys.WORKER`` user attr.

    Every runner records it the same way: the host and pid of the process that
    evaluates the proposal, and the Ray node id under ``runner=ray``.
    """
    record: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    if node is not None:
        record["node"] = node
    return record


def register_runner(name: str) -> Any:
    """Register a runner class under its ``conf/runner/<name>.yaml`` name."""
    return RUNNERS.register(name)


def get_runner(name: str) -> Runner:
    """A new runner of the class registered as ``name`` (ConfigError lists the names)."""
    return RUNNERS.get(name)()
