"""The driver's side of ``runner=ray``: a Tune searcher around the persisted study.

:class:`StudySearcher` asks the study for each candidate and proposes it here
(``nas.pipeline.propose``: the sample, the feasibility and ``trial.set_constraint``
on the real, persisted trial, exactly as locally). An infeasible proposal is
recorded at once, never reaching Ray; a feasible one becomes a Tune trial whose
config is the proposal. When Tune completes the trial, the searcher records it
through the search's one :class:`~nas.study.TrialRecorder`, so every MLflow write
comes from the driver (no SQLite locking; workers on other nodes need no tracking
access). A trial that Tune retries after its worker or node died
(``runner.max_failures``) is recorded once, when it finally ends.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from nas._stop import DiskFull
from nas.pipeline import Proposal, TrialResult, infeasible_result, propose
from nas.runners._base import SearchLoop
from nas.runners._ray_worker import DISK_FULL
from nas.study import Started, State, TrialOutcome, keys

__all__ = ["StudySearcher", "make_searcher"]


@dataclass
class _Live:
    started: Started
    since: float
    attempts: int = 0
    nodes: list[str] = field(default_factory=list)


class StudySearcher:
    """A Tune searcher that asks, proposes and records through the persisted study.

    ``suggest`` asks the study until it gets a feasible candidate (infeasible ones are
    recorded on the spot, as locally) or until the budget or the deadline says stop;
    ``on_trial_complete`` records the trial's outcome.

    Construct it with :func:`make_searcher`, which mixes in Tune's ``Searcher`` (so
    that importing this module does not import Ray Tune).
    """

    FINISHED = "FINISHED"

    def __init__(self, loop: SearchLoop) -> None:
        super().__init__()  # Tune's Searcher, when mixed in
        self.loop = loop
        self.live: dict[str, _Live] = {}
        self._stopped = False
        # The path a worker could not write for want of space: no trial starts after it,
        # and the runner stops the search once Tune has ended the others.
        self.disk_full: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its config (tuner.pkl) for a Tune-level restore, which this
        # runner never uses (resume is the study's); the loop holds locks and a study.
        return {"_metric": None, "_mode": None, "live": {}, "_stopped": True, "disk_full": None}

    # -- Tune's hooks ---------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        loop = self.loop
        with self._stops_on_full_disk():
            while True:
                if self._stopped or loop.remaining - len(self.live) <= 0:
                    return self.FINISHED
                if loop.past_deadline():
                    self._stopped = True
                    return self.FINISHED
                proposed = self._propose()
                if proposed is None:
                    continue  # recorded already (infeasible or failed): ask again
                proposal, started = proposed
                self.live[trial_id] = _Live(started, time.monotonic())
                return {"number": proposal.number, "proposal": json.dumps(asdict(proposal))}
        return self.FINISHED

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        with self._stops_on_full_disk():
            self._started(trial_id, result)

    def _started(self, trial_id: str, result: dict[str, Any]) -> None:
        live = self.live.get(trial_id)
        if live is None or result.get("nas_phase") != "started":
            return
        live.attempts += 1
        node = str(result.get("nas_node_id", ""))
        live.nodes.append(node)
        tags = {"ray.node_id": node, "ray.attempts": str(live.attempts), "ray.trial_id": trial_id}
        if live.attempts > 1:
            tags["ray.retried_on"] = ",".join(live.nodes)
            print(
                f"trial {live.started.trial.number}: its Ray worker or node was lost; attempt "
                f"{live.attempts} of {int(self.loop.cfg.runner.max_failures) + 1} on node "
                f"{node[:8]}",
                file=sys.stderr,
            )
        if "nas_worker" in result:  # the last attempt's worker
            live.started.trial.set_user_attr(keys.WORKER, json.loads(result["nas_worker"]))
        if live.started.run_id is not None:
            self.loop.tracker.set_tags(live.started.run_id, tags)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        live = self.live.pop(trial_id, None)
        if live is None:
            return
        outcome = self._outcome(live, result, error)
        if outcome.state is State.FINISHED or outcome.state is State.INFEASIBLE:
            self.loop.durations.append(time.monotonic() - live.since)
        with self._stops_on_full_disk():
            self.loop.recorder.record(live.started, outcome)

    @contextlib.contextmanager
    def _stops_on_full_disk(self) -> Iterator[None]:
        """A full disk under the study or MLflow, met in one of Tune's hooks: no trial
        starts after it, and the runner stops the search once Tune has ended the others
        (raised into Tune, it would only be logged). What could not be recorded, the
        resume sweeps."""
        try:
            yield
        except DiskFull as e:
            self.disk_full = self.disk_full or str(e.filename)
            self._stopped = True

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the persisted study is the state (Tune calls this often)."""

    def restore(self, checkpoint_path: str) -> None:
        """Resume is the study's: a rerun asks it again (see ``open_study``)."""

    # -- the driver's part of a trial ---------------------------------------------------
    def _outcome(self, live: _Live, result: dict[str, Any] | None, error: bool) -> TrialOutcome:
        """How Tune's report of a trial translates into the trial's outcome."""
        kind = (result or {}).get("nas_outcome")
        if error or kind is None:
            attempts = max(live.attempts, 1)
            reason = (
                f"RayWorkerFailed: the Ray worker running it died or was lost ({attempts} "
                f"attempt(s); runner.max_failures={self.loop.cfg.runner.max_failures})"
                if error
                else "RayTrialStopped: Tune stopped the trial before it reported a result"
            )
            return TrialOutcome(State.FAILED, reason=reason)
        assert result is not None
        if kind == "complete":
            return TrialOutcome.of_result(TrialResult(**json.loads(result["nas_result"])))
        if kind == DISK_FULL:
            self.disk_full, self._stopped = str(result.get("nas_path", "?")), True
            return TrialOutcome(
                State.INTERRUPTED,
                reason=f"interrupted: no space left on device writing {self.disk_full}",
            )
        reason = str(result.get("nas_reason", "unknown failure"))
        if kind == State.STOPPED.value:  # early stopping or its time limit
            return TrialOutcome(State.STOPPED, reason=reason)
        return TrialOutcome(State.FAILED, reason=reason)

    def _propose(self) -> tuple[Proposal, Started] | None:
        """Ask and propose one candidate; an infeasible or failing one is recorded here."""
        loop = self.loop
        recorder = loop.recorder
        started = recorder.begin()
        try:
            recorder.open_run(started)
            started.trial.set_user_attr(keys.RUNNER, "ray")
            proposal = propose(started.trial, loop.ctx, number=started.trial.number)
            proposal.phase = loop.phase_of(started.trial)
            proposal.ends_at = loop.ends_at()
        except KeyboardInterrupt:
            recorder.record(started, TrialOutcome(State.INTERRUPTED, reason="interrupted"))
            raise
        except DiskFull as e:
            recorder.record_disk_full(started, e)
            raise
        except Exception as e:
            recorder.record(started, TrialOutcome.of_error(e))
            return None
        if not proposal.feasible:
            recorder.record(started, TrialOutcome.of_result(infeasible_result(proposal)))
            return None
        return proposal, started

    def interrupt(self) -> None:
        """Ctrl-C: the running trials end FAILED (interrupted), uncounted, as locally."""
        for live in self.live.values():
            self.loop.recorder.record(
                live.started, TrialOutcome(State.INTERRUPTED, reason="interrupted")
            )
        self.live.clear()

    def end_leftovers(self) -> None:
        """Trials Tune ended without a completion call (none expected) end FAILED."""
        for trial_id in list(self.live):
            self.on_trial_complete(trial_id, None, error=False)


_SEARCHER_CLASS: list[type] = []


def make_searcher(loop: SearchLoop) -> StudySearcher:
    if not _SEARCHER_CLASS:
        from ray.tune.search import Searcher

        _SEARCHER_CLASS.append(type("StudySearcher", (StudySearcher, Searcher), {}))
    searcher: StudySearcher = _SEARCHER_CLASS[0](loop)
    return searcher
