"""The search driver: ask Optuna for a candidate, run it, record it, keep the front.

Heavy imports (torch, timm, mlflow) live here, behind :mod:`nas.search`, which
validates the config first.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from nas._budgets import check_budgets_reachable, nearest_candidates
from nas._config import ConfigError, search_hash
from nas._context import make_context
from nas._front import FrontState, front_rows
from nas._pareto import write_csv, write_html, write_png
from nas._report import EXIT_INTERRUPTED, EXIT_NO_FEASIBLE, SearchOutcome
from nas._study import (
    INTERRUPTED,
    counted_trials,
    end_interrupted_trials,
    make_sampler,
    make_storage,
    open_study,
)
from nas._tracking import Tracker, flatten, redact_secrets, sigint_deferred
from nas._trial import TrialContext, TrialResult, TrialStopped, run_trial

__all__ = ["Runner", "SearchLoop", "get_runner", "register_runner", "run_search", "study_name_of"]


def study_name_of(cfg: DictConfig) -> str:
    if cfg.search.study_name:
        return str(cfg.search.study_name)
    hw = cfg.hw.name if cfg.hw is not None else "nohw"
    return f"{cfg.search_space.name}-{cfg.dataset.name}-{hw}-{search_hash(cfg)}"


def run_search(cfg: DictConfig, *, plugins: Sequence[str] = ()) -> SearchOutcome:
    """Run (or resume) the search ``cfg`` describes; returns what it found.

    Args:
        plugins: modules that register user extensions; the evaluator process imports
            them too, so it can rebuild models of a user's search space.
    """
    start = time.monotonic()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out_dir = Path(cfg.search.output_dir or os.getcwd()).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    name = study_name_of(cfg)
    tracking_uri = cfg.mlflow.tracking_uri or f"sqlite:///{out_dir / 'mlflow.db'}"
    runner = get_runner(cfg.runner.name)

    # Everything a user's input can break (data, budgets, the tracking server, the
    # cluster) is checked before any study or run is written, so a refused start
    # leaves nothing. The local runner's context starts its evaluator process now, so
    # its start-up overlaps these checks instead of delaying the first trial.
    ctx = make_context(
        cfg, out_dir=out_dir, study_name=name, plugins=plugins, evaluator=runner.trains_here
    )
    status = "FAILED"  # unless the loop ends normally or by Ctrl-C
    tracker: Tracker | None = None
    try:
        if ctx.hw is not None:
            check_budgets_reachable(cfg, ctx.splits.spec, ctx.hw)
        runner.check(cfg)
        tracker = _open_tracker(cfg, tracking_uri, out_dir)
        study, resumed = open_study(
            study_name=name,
            storage=make_storage(cfg.search.storage, name, out_dir),
            sampler=make_sampler(cfg.sampler, int(cfg.search.seed)),
            config_hash=search_hash(cfg),
        )
        ref_acc = float(cfg.dataset.hv_ref_accuracy)
        ref_size = float(cfg.dataset.hv_ref_size_bytes)
        resolved = redact_secrets(OmegaConf.to_container(cfg, resolve=True))
        params = flatten(resolved)
        params.update(
            {"hv.ref_accuracy": ref_acc, "hv.ref_size_bytes": ref_size, "study_name": name}
        )
        tracker.open_parent(
            study_name=name, params=params, tags={"nas.config_hash": search_hash(cfg)}
        )
        # The resolved config, whole: what `nas.export` rebuilds the data and training from.
        tracker.log_text(tracker.parent_id, OmegaConf.to_yaml(resolved), "config.yaml")
    except BaseException:
        if ctx.evaluator is not None:
            ctx.evaluator.close()
        raise
    outcome = SearchOutcome(
        study_name=name, parent_run_id=tracker.parent_id, tracking_uri=tracking_uri
    )
    front_state = FrontState(tracker, ref_acc, ref_size)
    bar: tqdm[Any] | None = None
    try:
        _mark_interrupted_runs(study, tracker)
        front_state.refresh(study, step=None)
        remaining = int(cfg.search.n_trials) - counted_trials(study)
        if resumed:
            print(
                f"Resuming study {name}: {counted_trials(study)} trials done, "
                f"{max(remaining, 0)} to go.",
                file=sys.stderr,
            )
        bar = tqdm(
            total=max(remaining, 0),
            desc="trials",
            unit="trial",
            disable=not cfg.search.progress,
            file=sys.stderr,
        )
        timeout = cfg.search.timeout_s
        loop = SearchLoop(
            cfg=cfg,
            study=study,
            ctx=ctx,
            tracker=tracker,
            study_name=name,
            front_state=front_state,
            bar=bar,
            remaining=max(remaining, 0),
            deadline=None if timeout is None else start + float(timeout),
            plugins=tuple(plugins),
            out_dir=out_dir,
        )
        if loop.remaining > 0:
            runner.run(loop)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        outcome.exit_code = EXIT_INTERRUPTED
        print("\nInterrupted: the running trial is marked FAILED (interrupted).", file=sys.stderr)
        # The runner has ended the trials it knew were running; a Ctrl-C that landed
        # between creating a trial's run and recording it (or telling the study and
        # ending the run) leaves one behind, so sweep as a resume would.
        with _sigint_ignored():
            _mark_interrupted_runs(study, tracker)
    finally:
        # A second Ctrl-C must not cut the bookkeeping short and leave runs RUNNING.
        with _sigint_ignored():
            if bar is not None:
                bar.close()
            if ctx.evaluator is not None:
                ctx.evaluator.close()
            try:
                _finish(study, tracker, front_state, out_dir / "outputs" / name, name, outcome)
            finally:
                tracker.close_parent(status)
    outcome.wall_seconds = time.monotonic() - start
    if outcome.exit_code == 0 and not outcome.front:
        outcome.exit_code = EXIT_NO_FEASIBLE
        outcome.nearest = nearest_candidates(study)
    return outcome


@dataclass
class SearchLoop:
    """What a runner needs to run the remaining trials of a search, and record them."""

    cfg: DictConfig
    study: optuna.Study
    ctx: TrialContext
    tracker: Tracker
    study_name: str
    front_state: FrontState
    bar: tqdm[Any]
    remaining: int
    deadline: float | None  # time.monotonic() past which no new trial starts
    plugins: tuple[str, ...]
    out_dir: Path

    def done(self, frozen: FrozenTrial) -> None:
        """Account for one finished trial (any state): front, progress, budget."""
        self.front_state.refresh(self.study, step=frozen.number)
        self.remaining -= 1
        self.bar.update(1)
        self.bar.set_postfix(front=len(self.front_state.front), hv=f"{self.front_state.hv:.3f}")


class Runner(Protocol):
    trains_here: bool
    """True when trials run in the driver process (it then needs an evaluator)."""

    def check(self, cfg: DictConfig) -> None:
        """Refuse bad runner settings (an unreachable cluster) with a ConfigError."""

    def run(self, loop: SearchLoop) -> None:
        """Run ``loop.remaining`` trials; KeyboardInterrupt propagates after marking."""


_RUNNERS: dict[str, Callable[[], Runner]] = {}


def register_runner(name: str) -> Callable[[Callable[[], Runner]], Callable[[], Runner]]:
    """Register a runner factory under its ``conf/runner/<name>.yaml`` name."""

    def deco(factory: Callable[[], Runner]) -> Callable[[], Runner]:
        if name in _RUNNERS:
            raise ValueError(f"runner {name!r} is already registered")
        _RUNNERS[name] = factory
        return factory

    return deco


_BUILTIN_RUNNERS = {"ray": "nas._ray_runner"}


def get_runner(name: str) -> Runner:
    if name not in _RUNNERS and name in _BUILTIN_RUNNERS:
        importlib.import_module(_BUILTIN_RUNNERS[name])  # Ray is imported only when used
    if name not in _RUNNERS:
        raise ConfigError(f"runner={name} is not known; choose one of {sorted(_RUNNERS)}")
    return _RUNNERS[name]()


@register_runner("local")
class LocalRunner:
    """Trials one after another in this process."""

    trains_here = True

    def check(self, cfg: DictConfig) -> None:
        pass

    def run(self, loop: SearchLoop) -> None:
        durations: list[float] = []
        while loop.remaining > 0:
            typical = sorted(durations)[len(durations) // 2] if durations else 0.0
            if loop.deadline is not None and time.monotonic() + typical > loop.deadline:
                print(
                    f"Stopping: search.timeout_s={loop.cfg.search.timeout_s} would be exceeded "
                    "by another trial.",
                    file=sys.stderr,
                )
                return
            t0 = time.monotonic()
            frozen = _one_trial(loop.study, loop.ctx, loop.tracker, loop.study_name)
            if frozen.state == TrialState.COMPLETE and frozen.user_attrs.get("feasible"):
                durations.append(time.monotonic() - t0)
            loop.done(frozen)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _open_tracker(cfg: DictConfig, uri: str, out_dir: Path) -> Tracker:
    if uri.startswith(("http://", "https://")):
        _check_http(uri)
    try:
        return Tracker(
            tracking_uri=uri,
            experiment=cfg.mlflow.experiment,
            artifact_root=out_dir / "mlartifacts",
        )
    except Exception as e:
        reason = " ".join(str(e).split())[:200]
        raise ConfigError(f"mlflow.tracking_uri={uri!r} cannot be used: {reason}") from None


def _check_http(uri: str) -> None:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).read()
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ConfigError(
            f"mlflow.tracking_uri={uri!r} is unreachable ({_one_line(e)}); start one with "
            f"`mlflow server --host 127.0.0.1 --port PORT` or use a sqlite:/// URI"
        ) from None


def _mark_interrupted_runs(study: optuna.Study, tracker: Tracker) -> None:
    """Trials a crash cut short end as FAILED (interrupted), in Optuna and MLflow alike.

    Called only when none of this process's trials runs (before the first one, and
    after a Ctrl-C has stopped them), so every trial still RUNNING, and every child run
    of the parent still RUNNING, was cut short.
    Each such trial gets its child run: the one it recorded, else the one tagged with
    its number (killed after creating the run, before recording its id), else a new
    one (killed between asking the study and creating the run).
    """
    by_number: dict[str, str] = {}
    stale: list[str] = []
    token = None
    while True:
        page = tracker.client.search_runs(
            [tracker.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{tracker.parent_id}'",
            max_results=1000,
            page_token=token,
        )
        for run in page:
            by_number.setdefault(run.data.tags.get("nas.trial", ""), run.info.run_id)
            if run.info.status == "RUNNING":
                stale.append(run.info.run_id)
        token = page.token
        if not token:
            break

    def run_of(t: FrozenTrial) -> str:
        run_id = t.user_attrs.get("mlflow_run_id") or by_number.get(str(t.number))
        if run_id is None:
            run_id = tracker.start_trial(t.number, study.study_name)
            stale.append(run_id)
        return str(run_id)

    end_interrupted_trials(study, run_of)
    trial_of = {t.user_attrs.get("mlflow_run_id"): t for t in study.get_trials(deepcopy=False)}
    for run_id in stale:
        t = trial_of.get(run_id)
        if t is not None and t.state == TrialState.COMPLETE:
            # Killed after telling the study, before ending the run: end it as told.
            _finish_run(tracker, run_id, t)
        else:
            tracker.finish_trial(run_id, status="FAILED", tags={"error": "interrupted"})


def _finish_run(tracker: Tracker, run_id: str, t: FrozenTrial) -> None:
    """End a finished trial's run from what the study recorded of it."""
    a = t.user_attrs
    result = TrialResult(bool(a.get("feasible")), a.get("arch") or {},
                         a.get("compression") or {}, a.get("metrics") or {})  # fmt: skip
    _end_finished_run(tracker, run_id, t.params, result)


def _end_finished_run(
    tracker: Tracker, run_id: str, sampled: dict[str, Any], result: TrialResult
) -> None:
    """End the run of a trial that ran to the end: its params, metrics and tags."""
    tracker.finish_trial(
        run_id,
        status="FINISHED",
        params=_run_params(sampled, result),
        metrics=result.metrics,
        tags={"feasible": str(result.feasible).lower(), "pareto": "false",
              "arch": json.dumps(result.arch)},
    )  # fmt: skip


def _one_trial(study: optuna.Study, ctx: TrialContext, tracker: Tracker, name: str) -> FrozenTrial:
    trial = study.ask()
    run_id: str | None = None
    try:
        with sigint_deferred():  # the run and its id in the study, together
            run_id = tracker.start_trial(trial.number, name)
            trial.set_user_attr("mlflow_run_id", run_id)
        result = run_trial(trial, ctx, number=trial.number)
    except KeyboardInterrupt:
        with _sigint_ignored():
            trial.set_user_attr(INTERRUPTED, True)
            _end_unfinished(study, trial, tracker, run_id, "interrupted", TrialState.FAIL)
        raise
    except TrialStopped as e:  # early stopping: a partial result, recorded as PRUNED
        _end_unfinished(study, trial, tracker, run_id, str(e), TrialState.PRUNED)
        return study.trials[trial.number]
    except Exception as e:  # any trial fault is recorded, and the search goes on
        reason = f"{type(e).__name__}: {' '.join(str(e).split())[:500]}"
        _end_unfinished(study, trial, tracker, run_id, reason, TrialState.FAIL)
        print(f"trial {trial.number} failed: {reason}", file=sys.stderr)
        return study.trials[trial.number]
    _tell_finished(study, trial, tracker, run_id, result)
    return study.trials[trial.number]


def _tell_finished(
    study: optuna.Study, trial: optuna.Trial, tracker: Tracker, run_id: str, result: TrialResult
) -> None:
    """Record a trial that ran to the end (feasible or not), in Optuna and MLflow alike.

    A Ctrl-C waits until both are written: landing between them would leave a finished
    trial with its run still RUNNING.
    """
    with sigint_deferred():
        _record(trial, result)
        study.tell(trial, list(result.values))
        _end_finished_run(tracker, run_id, trial.params, result)


_RUN_STATUS = {TrialState.FAIL: "FAILED", TrialState.PRUNED: "KILLED"}


def _end_unfinished(
    study: optuna.Study,
    trial: optuna.Trial,
    tracker: Tracker,
    run_id: str | None,
    reason: str,
    state: TrialState,
) -> None:
    """Record a trial that did not finish: why, in Optuna and MLflow alike (a Ctrl-C
    waits until both are written)."""
    with sigint_deferred():
        trial.set_user_attr("error" if state == TrialState.FAIL else "stopped", reason)
        study.tell(trial, state=state)
        if run_id is None:
            return
        status = "KILLED" if trial.user_attrs.get(INTERRUPTED) else _RUN_STATUS[state]
        tag = "error" if state == TrialState.FAIL else "stopped"
        tracker.finish_trial(
            run_id,
            status=status,
            params=trial.params,
            tags={
                tag: reason,
                "feasible": "true" if state == TrialState.PRUNED else "unknown",
                "state": state.name,
            },
        )


def _record(trial: optuna.Trial, result: TrialResult) -> None:
    trial.set_user_attr("feasible", result.feasible)
    trial.set_user_attr("arch", result.arch)
    trial.set_user_attr("metrics", result.metrics)
    # Derived compression params, so a run ended on resume logs what a normal end does.
    trial.set_user_attr("compression", result.compression)
    if result.artifact:
        trial.set_user_attr("artifact", result.artifact)
    if result.test_accuracy is not None:
        # Measured for every trained trial but reported only for front members; the
        # search never selects on it.
        trial.set_user_attr("test_accuracy", result.test_accuracy)


def _run_params(sampled: dict[str, Any], result: TrialResult) -> dict[str, Any]:
    params = dict(sampled)
    arch = result.arch
    if isinstance(arch.get("depths"), list):
        params["depth"] = sum(arch["depths"])
    params.update({f"arch.{k}": v for k, v in flatten(arch).items() if k not in params})
    params.update({k: v for k, v in result.compression.items() if k not in params})
    return params


def _finish(
    study: optuna.Study,
    tracker: Tracker,
    front_state: FrontState,
    out_dir: Path,
    name: str,
    outcome: SearchOutcome,
) -> None:
    front_state.refresh(study, step=None)
    trials = study.get_trials(deepcopy=False)
    outcome.n_trials = len([t for t in trials if not t.user_attrs.get(INTERRUPTED)])
    outcome.n_failed = len(
        [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED)]
    )
    outcome.n_infeasible = len(
        [t for t in trials if t.state == TrialState.COMPLETE and not t.user_attrs.get("feasible")]
    )
    outcome.hypervolume = front_state.hv
    outcome.front = front_rows(study, front_state.front)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path, html_path = (out_dir / f"pareto.{ext}" for ext in ("csv", "png", "html"))
    write_csv(csv_path, outcome.front)
    title = f"{name}: {len(front_state.front)} on the front of {len(front_state.points)} trained"
    write_png(png_path, front_state.points, front_state.front, title=title)
    write_html(html_path, front_state.points, front_state.front, title=title)
    tracker.log_parent(
        metrics={
            "final_hypervolume": front_state.hv,
            "n_trials": outcome.n_trials,
            "n_infeasible": outcome.n_infeasible,
            "n_failed": outcome.n_failed,
            "infeasible_fraction": outcome.n_infeasible / max(outcome.n_trials, 1),
        },
        artifacts=[csv_path, png_path, html_path],
    )


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]
