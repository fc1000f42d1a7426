"""One place decides how a trial ended; one function records it, for both runners.

Modelled on Optuna's ``study/_optimize.py::_run_trial`` (how the objective ended ->
a state) and ``study/_tell.py`` (every state recorded the same way). A trial's
outcome is one of :class:`State`; :meth:`TrialRecorder.record` writes it to the
Optuna study and to the trial's MLflow child run together (a Ctrl-C waits until both
are written), then calls the callbacks (progress bar, front refresh).

Lifecycle: :meth:`TrialRecorder.begin` asks the study for a trial,
:meth:`TrialRecorder.open_run` gives it its MLflow run (when the strategy records
this phase), the trial runs (here, or on a Ray worker), and
:meth:`TrialRecorder.record` ends it. :func:`run_and_record` is that path for a
trial run in this process; the Ray runner calls the same three steps itself.
"""

from __future__ import annotations

import contextlib
import enum
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas._stop import DiskFull, is_disk_full
from nas.config import one_line
from nas.pipeline import TrainFailed, TrialResult, TrialStopped, TrialTimeout
from nas.study import keys
from nas.study._signals import sigint_deferred, sigint_ignored
from nas.study._storage import end_interrupted_trials, trial_at
from nas.study._tracking import Tracker, flatten

__all__ = [
    "Started",
    "State",
    "TrialOutcome",
    "TrialRecorder",
    "end_finished_run",
    "result_of",
    "run_and_record",
]


class State(enum.Enum):
    """How a trial ended."""

    FINISHED = "finished"  # trained (or scored) to the end
    INFEASIBLE = "infeasible"  # refused before training: it breaks a budget
    FAILED = "failed"  # an error, a diverged loss, a lost worker
    STOPPED = "stopped"  # early stopping (after a partial result), or its time limit
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM or a crash: not counted, resumed


_OPTUNA_STATE = {
    State.FINISHED: TrialState.COMPLETE,
    State.INFEASIBLE: TrialState.COMPLETE,
    State.FAILED: TrialState.FAIL,
    State.STOPPED: TrialState.PRUNED,
    State.INTERRUPTED: TrialState.FAIL,
}
_RUN_STATUS = {
    State.FINISHED: "FINISHED",
    State.INFEASIBLE: "FINISHED",
    State.FAILED: "FAILED",
    State.STOPPED: "KILLED",
    State.INTERRUPTED: "KILLED",
}


@dataclass(frozen=True)
class TrialOutcome:
    """How one trial ended: its :class:`State`, its result when it has one, and why."""

    state: State
    result: TrialResult | None = None
    reason: str = ""

    @classmethod
    def of_result(cls, result: TrialResult) -> TrialOutcome:
        return cls(State.FINISHED if result.feasible else State.INFEASIBLE, result)

    @classmethod
    def of_error(cls, error: BaseException) -> TrialOutcome:
        """The outcome of a trial that raised ``error`` (not a KeyboardInterrupt): stopped
        by early stopping or by its time limit, failed as ``diverged`` (a NaN or inf
        loss), or failed with the error's type and message."""
        said = one_line(error, 500)
        if isinstance(error, TrialTimeout):
            return cls(State.STOPPED, reason=f"{type(error).__name__}: {said}")
        if isinstance(error, TrialStopped):
            return cls(State.STOPPED, reason=str(error))
        if isinstance(error, TrainFailed):
            return cls(State.FAILED, reason=f"diverged: {said}")
        return cls(State.FAILED, reason=f"{type(error).__name__}: {said}")


@dataclass
class Started:
    """A trial asked of the study, and its MLflow run once it has one."""

    trial: optuna.Trial
    run_id: str | None = None


@dataclass
class TrialRecorder:
    """Records every trial of one search, in the Optuna study and in MLflow alike.

    Args:
        records_runs: whether trials get an MLflow child run (a strategy's scoring
            phase may keep its many cheap trials in the study only).
        callbacks: called with each recorded trial but an interrupted one.
        cost: the metric minimized against val accuracy (``search.cost``).
    """

    study: optuna.Study
    tracker: Tracker
    study_name: str
    records_runs: bool = True
    callbacks: list[Callable[[FrozenTrial], None]] = field(default_factory=list)
    cost: str = "size_bytes"
    """The second objective told to the study (``search.cost``), against val accuracy."""

    def begin(self, *, user_attrs: dict[str, Any] | None = None) -> Started:
        trial = self.study.ask()
        for k, v in (user_attrs or {}).items():
            trial.set_user_attr(k, v)
        return Started(trial)

    def open_run(self, started: Started) -> None:
        """Create the trial's MLflow run, and its id in the study, together."""
        if not self.records_runs:
            return
        with sigint_deferred():
            started.run_id = self.tracker.start_trial(started.trial.number, self.study_name)
            started.trial.set_user_attr(keys.RUN_ID, started.run_id)

    def record(self, started: Started, outcome: TrialOutcome) -> FrozenTrial:
        """Write ``outcome`` to the study and to the run; the one place that does."""
        trial = started.trial
        if outcome.state is State.INTERRUPTED:
            with sigint_ignored():
                trial.set_user_attr(keys.INTERRUPTED, True)
                self._end_unfinished(started, outcome)
            return trial_at(self.study, trial.number)
        if outcome.result is not None:
            with sigint_deferred():
                _record_result(trial, outcome.result)
                self.study.tell(trial, list(outcome.result.objectives(self.cost)))
                if started.run_id is not None:
                    end_finished_run(self.tracker, started.run_id, trial.params, outcome.result)
        else:
            self._end_unfinished(started, outcome)
            if outcome.state is State.FAILED:
                print(f"trial {trial.number} failed: {outcome.reason}", file=sys.stderr)
        frozen = trial_at(self.study, trial.number)
        for callback in self.callbacks:
            callback(frozen)
        return frozen

    def record_disk_full(self, started: Started, full: DiskFull) -> None:
        """A trial cut short by a full disk: interrupted (it runs again on resume), as
        far as the disk lets that be written; the resume sweeps what it could not."""
        reason = f"interrupted: no space left on device writing {full.filename}"
        with contextlib.suppress(DiskFull):
            self.record(started, TrialOutcome(State.INTERRUPTED, reason=reason))

    def _end_unfinished(self, started: Started, outcome: TrialOutcome) -> None:
        """A trial that did not finish: why, in Optuna and MLflow alike."""
        trial, state = started.trial, _OPTUNA_STATE[outcome.state]
        tag = keys.STOPPED if outcome.state is State.STOPPED else keys.ERROR
        with sigint_deferred():
            trial.set_user_attr(tag, outcome.reason or outcome.state.value)
            self.study.tell(trial, state=state)
            if started.run_id is None:
                return
            self.tracker.finish_trial(
                started.run_id,
                status=_RUN_STATUS[outcome.state],
                params=trial.params,
                tags={
                    tag: outcome.reason or outcome.state.value,
                    keys.TAG_FEASIBLE: "true" if outcome.state is State.STOPPED else "unknown",
                    keys.TAG_STATE: state.name,
                },
            )

    def sweep_interrupted(self) -> None:
        """Trials a crash cut short end as FAILED (interrupted), in Optuna and MLflow alike.

        Called only when none of this process's trials runs (before the first one, and
        after a Ctrl-C has stopped them), so every trial still RUNNING, and every child
        run of the parent still RUNNING, was cut short. Each such trial gets its child
        run: the one it recorded, else the one tagged with its number (killed after
        creating the run, before recording its id), else a new one (killed between
        asking the study and creating the run).
        """
        by_number, stale = _child_runs(self.tracker)

        def run_of(t: FrozenTrial) -> str:
            run_id = t.user_attrs.get(keys.RUN_ID) or by_number.get(str(t.number))
            if run_id is None:
                run_id = self.tracker.start_trial(t.number, self.study.study_name)
                stale.append(run_id)
            return str(run_id)

        end_interrupted_trials(self.study, run_of)
        trials = self.study.get_trials(deepcopy=False)
        trial_of = {t.user_attrs.get(keys.RUN_ID): t for t in trials}
        for run_id in stale:
            t = trial_of.get(run_id)
            if t is not None and t.state == TrialState.COMPLETE:
                # Killed after telling the study, before ending the run: end it as told.
                end_finished_run(self.tracker, run_id, t.params, result_of(t))
            else:
                self.tracker.finish_trial(
                    run_id, status="FAILED", tags={keys.TAG_ERROR: "interrupted"}
                )


def run_and_record(
    recorder: TrialRecorder,
    body: Callable[[optuna.Trial], TrialResult],
    *,
    user_attrs: dict[str, Any] | None = None,
) -> FrozenTrial:
    """Ask, run ``body`` on the trial in this process, and record how it ended.

    A KeyboardInterrupt is recorded as interrupted, then raised again; so is a full
    disk (:class:`~nas._stop.DiskFull`), which stops the search as no trial can go on.
    """
    started = recorder.begin(user_attrs=user_attrs)
    try:
        recorder.open_run(started)
        outcome = TrialOutcome.of_result(body(started.trial))
    except KeyboardInterrupt:
        recorder.record(started, TrialOutcome(State.INTERRUPTED, reason="interrupted"))
        raise
    except Exception as e:  # any trial fault is recorded, and the search goes on
        if is_disk_full(e):
            full = e if isinstance(e, DiskFull) else DiskFull(getattr(e, "filename", None) or "?")
            recorder.record_disk_full(started, full)
            if full is e:
                raise
            raise full from e
        outcome = TrialOutcome.of_error(e)
    return recorder.record(started, outcome)


def result_of(t: FrozenTrial) -> TrialResult:
    """A finished trial's result, from what the study recorded of it."""
    a = t.user_attrs
    return TrialResult(
        bool(a.get(keys.FEASIBLE)),
        a.get(keys.ARCH) or {},
        a.get(keys.COMPRESSION) or {},
        a.get(keys.METRICS) or {},
        device_constraints=a.get(keys.DEVICE_CONSTRAINTS) or {},
    )


def end_finished_run(
    tracker: Tracker, run_id: str, sampled: dict[str, Any], result: TrialResult
) -> None:
    """End the run of a trial that ran to the end: its params, metrics and tags (the
    result's own first: where it trained, under Ray also the worker's GPUs; the
    recorder's tags win a clash)."""
    tracker.finish_trial(
        run_id,
        status="FINISHED",
        params=_run_params(sampled, result),
        metrics=result.metrics,
        tags={
            **result.tags,
            keys.TAG_FEASIBLE: str(result.feasible).lower(),
            keys.TAG_PARETO: "false",
            keys.TAG_ARCH: json.dumps(result.arch),
            **_device_tags(result),
        },
    )


def _device_tags(result: TrialResult) -> dict[str, str]:
    """A multi-device trial's ``feasible.<device>`` (and ``pareto.<device>``, until the
    front says otherwise)."""
    on = set(result.feasible_on)
    tags: dict[str, str] = {}
    for device in result.device_constraints:
        tags[keys.device_tag(keys.TAG_FEASIBLE, device)] = str(device in on).lower()
        tags[keys.device_tag(keys.TAG_PARETO, device)] = "false"
    return tags


def _record_result(trial: optuna.Trial, result: TrialResult) -> None:
    trial.set_user_attr(keys.FEASIBLE, result.feasible)
    trial.set_user_attr(keys.ARCH, result.arch)
    trial.set_user_attr(keys.METRICS, result.metrics)
    trial.set_user_attr(keys.COMPRESSION, result.compression)
    if result.artifact:
        trial.set_user_attr(keys.ARTIFACT, result.artifact)
    if result.test_accuracy is not None:
        trial.set_user_attr(keys.TEST_ACCURACY, result.test_accuracy)
    if result.device_constraints:
        trial.set_user_attr(keys.DEVICE_CONSTRAINTS, result.device_constraints)


def _run_params(sampled: dict[str, Any], result: TrialResult) -> dict[str, Any]:
    params = dict(sampled)
    arch = result.arch
    if isinstance(arch.get("depths"), list):
        params["depth"] = sum(arch["depths"])
    params.update({f"arch.{k}": v for k, v in flatten(arch).items() if k not in params})
    params.update({k: v for k, v in result.compression.items() if k not in params})
    return params


def _child_runs(tracker: Tracker) -> tuple[dict[str, str], list[str]]:
    """The parent's child runs by trial number, and those still RUNNING."""
    by_number: dict[str, str] = {}
    stale: list[str] = []
    token = None
    while True:
        page = tracker.client.search_runs(
            [tracker.experiment_id],
            filter_string=f"tags.`{keys.TAG_PARENT}` = '{tracker.parent_id}'",
            max_results=1000,
            page_token=token,
        )
        for run in page:
            by_number.setdefault(run.data.tags.get(keys.TAG_TRIAL, ""), run.info.run_id)
            if run.info.status == "RUNNING":
                stale.append(run.info.run_id)
        token = page.token
        if not token:
            break
    return by_number, stale
