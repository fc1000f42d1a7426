"""``runner=ray``: the same search, its trials trained on Ray Tune.

The persisted Optuna study stays the single source of truth, as with the local
runner. This process (the driver) does all the bookkeeping:

- :class:`StudySearcher`, a Tune ``Searcher`` around the persisted study, asks the
  study for each candidate and proposes it here (``nas._trial.propose``: the sample,
  the feasibility and ``trial.set_constraint`` on the real, persisted trial, exactly as
  locally). An infeasible proposal is told at once, never reaching Ray; a feasible one
  becomes a Tune trial whose config is the proposal.
- Ray workers only train, compress, export and evaluate (:func:`train_in_worker`,
  ``nas._trial.train_proposal``) and report the result back.
- The searcher tells the study and finishes the MLflow child run when Tune completes
  the trial, so every MLflow write comes from the driver (no SQLite locking; workers on
  other nodes need no tracking access). A trial that Tune retries after its worker or
  node died (``runner.max_failures``) is told once, when it finally ends.

Each worker process builds its :class:`~nas._trial.TrialContext` once (a module-level
cache keyed by a hash of the config), and Tune reuses the worker actors
(``reuse_actors=True``), so later trials pay no imports or data loading. Every path a
trial uses is absolute, since Tune changes each trial's working directory.

Early stopping (``ctx.early_stop``, an :class:`~nas._trial.EpochJudge`) is shared by
all workers: the judge lives in one Ray actor and workers call it through
:class:`RemoteJudge`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from nas._config import ConfigError, probe_ray_address, resolve_ray_address
from nas._search import (
    SearchLoop,
    _end_unfinished,
    _sigint_ignored,
    _tell_finished,
    register_runner,
)
from nas._study import INTERRUPTED
from nas._tracking import sigint_deferred
from nas._trial import (
    EpochJudge,
    Proposal,
    TrialContext,
    TrialResult,
    TrialStopped,
    infeasible_result,
    propose,
)

__all__ = [
    "RayRunner",
    "RemoteJudge",
    "StudySearcher",
    "WorkerSetup",
    "make_searcher",
    "train_in_worker",
]

# Set before Ray is imported (the local Ray's processes inherit them) and while Tune runs.
_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # Ctrl-C is the search's to handle (mark running trials, end the parent run KILLED);
    # Tune's own handler would swallow it and return as if the search had ended.
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    # Results live in the study and in MLflow; Tune's JSON/CSV/TensorBoard loggers
    # would only duplicate them on disk.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",  # the legacy reporter is silent at verbose=0
}


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------- runner


@register_runner("ray")
class RayRunner:
    """Trials on Ray Tune: a local Ray, or a cluster this process joins."""

    trains_here = False

    def __init__(self) -> None:
        self._address: str | None = None

    def check(self, cfg: DictConfig) -> None:
        # Also done when the config is validated (before torch is imported); repeated
        # here for configs built another way.
        self._address = resolve_ray_address(cfg.runner.address)
        if self._address is not None:
            probe_ray_address(self._address, cfg.runner.address)

    def run(self, loop: SearchLoop) -> None:
        for k, v in _RAY_ENV.items():
            if k.startswith("RAY_"):
                os.environ.setdefault(k, v)
        import ray

        r = loop.cfg.runner
        started = self._init(ray, loop.cfg)
        searcher: StudySearcher | None = None
        judge = None
        try:
            _check_resources(ray, r)
            judge = _start_judge(ray, loop)
            searcher = make_searcher(loop)
            with _env(_RAY_ENV):
                _fit(loop, searcher, judge)
            searcher.end_leftovers()
        except KeyboardInterrupt:
            with _sigint_ignored():
                if searcher is not None:
                    searcher.interrupt()
            raise
        finally:
            with _sigint_ignored():
                # Disconnecting ends this job's actors on a cluster; a local Ray stops.
                if started:
                    ray.shutdown()
                elif judge is not None:  # a caller's session outlives the search
                    with contextlib.suppress(Exception):
                        ray.kill(judge)

    def _init(self, ray: Any, cfg: DictConfig) -> bool:
        r = cfg.runner
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        if ray.is_initialized():
            return False  # a caller's own session (tests, notebooks): used as it is
        if self._address is None:
            num_cpus = r.num_cpus or math.ceil(r.max_concurrent * r.cpus_per_trial)
            ray.init(
                address="local",
                num_cpus=int(num_cpus),
                # GPUs are detected when trials ask for them; none are claimed otherwise.
                num_gpus=None if r.gpus_per_trial > 0 else 0,
                object_store_memory=int(r.object_store_mb) * 1_000_000,
                include_dashboard=False,
                **quiet,
            )
            return True
        try:
            ray.init(address=self._address, **quiet)
        except Exception as e:  # wrong token, not a Ray head, version mismatch
            raise ConfigError(
                f"runner.address={r.address!r}: cannot join the Ray cluster at "
                f"{self._address}: {_one_line(e)}"
            ) from None
        return True


def _check_resources(ray: Any, r: Any) -> None:
    """Refuse a trial no node can hold: Tune would leave it pending forever."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = max((float(n["Resources"].get("CPU", 0)) for n in nodes), default=0.0)
    gpus = max((float(n["Resources"].get("GPU", 0)) for n in nodes), default=0.0)
    if r.cpus_per_trial > cpus:
        raise ConfigError(
            f"runner.cpus_per_trial={r.cpus_per_trial} exceeds every Ray node's CPUs "
            f"(largest: {cpus:g}); lower it or add bigger nodes"
        )
    if r.gpus_per_trial > gpus:
        raise ConfigError(
            f"runner.gpus_per_trial={r.gpus_per_trial} exceeds every Ray node's GPUs "
            f"(largest: {gpus:g}); set runner.gpus_per_trial=0 or add GPU nodes"
        )


def _fit(loop: SearchLoop, searcher: StudySearcher, judge: Any) -> None:
    from ray import tune

    r = loop.cfg.runner
    trainable = tune.with_resources(
        tune.with_parameters(train_in_worker, setup=worker_setup(loop), judge=judge),
        {"cpu": float(r.cpus_per_trial), "gpu": float(r.gpus_per_trial)},
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=cast(Any, searcher),
            num_samples=-1,  # the searcher says when the search is done
            max_concurrent_trials=int(r.max_concurrent),
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=f"{loop.study_name}-{stamp}",
            storage_path=str(loop.out_dir / "ray_results"),
            failure_config=tune.FailureConfig(max_failures=int(r.max_failures)),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=0,
            log_to_file=False,
        ),
    )
    tuner.fit()


def _trial_name(trial: Any) -> str:
    return f"trial_{int(trial.config.get('number', -1)):05d}_{trial.trial_id}"


# --------------------------------------------------------------------------- searcher


@dataclass
class _Live:
    trial: optuna.Trial
    run_id: str
    started: float
    attempts: int = 0
    nodes: list[str] = field(default_factory=list)


class StudySearcher:
    """A Tune searcher that asks, proposes and tells the persisted Optuna study.

    ``suggest`` asks the study until it gets a feasible candidate (infeasible ones are
    told and recorded on the spot, as locally) or until the budget or the deadline
    says stop; ``on_trial_complete`` tells the study and finishes the MLflow run.

    Construct it with :func:`make_searcher`, which mixes in Tune's ``Searcher`` (so
    that importing this module does not import Ray Tune).
    """

    FINISHED = "FINISHED"

    def __init__(self, loop: SearchLoop) -> None:
        super().__init__()  # Tune's Searcher, when mixed in
        self.loop = loop
        self.live: dict[str, _Live] = {}
        self._durations: list[float] = []
        self._stopped = False

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its config (tuner.pkl) for a Tune-level restore, which this
        # runner never uses (resume is the study's); the loop holds locks and a study.
        return {"_metric": None, "_mode": None, "live": {}, "_durations": [], "_stopped": True}

    # -- Tune's hooks ---------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        loop = self.loop
        while True:
            if self._stopped or loop.remaining - len(self.live) <= 0:
                return self.FINISHED
            if self._past_deadline():
                self._stopped = True
                return self.FINISHED
            proposal, trial, run_id = self._propose()
            if proposal is None:
                continue  # told already (infeasible or failed): ask again
            assert trial is not None and run_id is not None
            self.live[trial_id] = _Live(trial, run_id, time.monotonic())
            return {"number": proposal.number, "proposal": json.dumps(asdict(proposal))}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        live = self.live.get(trial_id)
        if live is None or result.get("nas_phase") != "started":
            return
        live.attempts += 1
        node = str(result.get("nas_node_id", ""))
        live.nodes.append(node)
        tags = {"ray.node_id": node, "ray.attempts": str(live.attempts), "ray.trial_id": trial_id}
        if live.attempts > 1:
            tags["ray.retried_on"] = ",".join(live.nodes)
        self.loop.tracker.set_tags(live.run_id, tags)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        live = self.live.pop(trial_id, None)
        if live is None:
            return
        loop, trial = self.loop, live.trial
        outcome = (result or {}).get("nas_outcome")
        if error or outcome is None:
            attempts = max(live.attempts, 1)
            reason = (
                f"RayWorkerFailed: the Ray worker running it died or was lost "
                f"({attempts} attempt(s); runner.max_failures={loop.cfg.runner.max_failures})"
                if error
                else "RayTrialStopped: Tune stopped the trial before it reported a result"
            )
            self._fail(live, reason)
        elif outcome == "complete":
            assert result is not None
            self._tell(trial, live.run_id, TrialResult(**json.loads(result["nas_result"])))
            self._durations.append(time.monotonic() - live.started)
        elif outcome == "pruned":
            assert result is not None
            reason = str(result.get("nas_reason", "stopped early"))
            _end_unfinished(loop.study, trial, loop.tracker, live.run_id, reason, TrialState.PRUNED)
        else:
            assert result is not None
            self._fail(live, str(result.get("nas_reason", "unknown failure")))
        loop.done(loop.study.trials[trial.number])

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the persisted study is the state (Tune calls this often)."""

    def restore(self, checkpoint_path: str) -> None:
        """Resume is the study's: a rerun asks it again (see ``open_study``)."""

    # -- the driver's part of a trial ---------------------------------------------------
    def _propose(self) -> tuple[Proposal | None, optuna.Trial | None, str | None]:
        """Ask and propose one candidate; an infeasible or failing one is told here."""
        loop = self.loop
        trial = loop.study.ask()
        run_id: str | None = None
        try:
            with sigint_deferred():  # the run and its id in the study, together
                run_id = loop.tracker.start_trial(trial.number, loop.study_name)
                trial.set_user_attr("mlflow_run_id", run_id)
            trial.set_user_attr("runner", "ray")
            proposal = propose(trial, loop.ctx, number=trial.number)
        except KeyboardInterrupt:
            with _sigint_ignored():
                trial.set_user_attr(INTERRUPTED, True)
                _end_unfinished(
                    loop.study, trial, loop.tracker, run_id, "interrupted", TrialState.FAIL
                )
            raise
        except Exception as e:
            reason = f"{type(e).__name__}: {_one_line(e, 500)}"
            _end_unfinished(loop.study, trial, loop.tracker, run_id, reason, TrialState.FAIL)
            print(f"trial {trial.number} failed: {reason}", file=sys.stderr)
            loop.done(loop.study.trials[trial.number])
            return None, None, None
        if not proposal.feasible:
            self._tell(trial, run_id, infeasible_result(proposal))
            loop.done(loop.study.trials[trial.number])
            return None, None, None
        return proposal, trial, run_id

    def _tell(self, trial: optuna.Trial, run_id: str, result: TrialResult) -> None:
        """Record a finished trial exactly as ``nas._search._one_trial`` does."""
        _tell_finished(self.loop.study, trial, self.loop.tracker, run_id, result)

    def _fail(self, live: _Live, reason: str) -> None:
        loop = self.loop
        _end_unfinished(loop.study, live.trial, loop.tracker, live.run_id, reason, TrialState.FAIL)
        print(f"trial {live.trial.number} failed: {reason}", file=sys.stderr)

    def _past_deadline(self) -> bool:
        loop = self.loop
        if loop.deadline is None:
            return False
        d = sorted(self._durations)
        typical = d[len(d) // 2] if d else 0.0
        if time.monotonic() + typical <= loop.deadline:
            return False
        print(
            f"Stopping: search.timeout_s={loop.cfg.search.timeout_s} would be exceeded by "
            "another trial.",
            file=sys.stderr,
        )
        return True

    def interrupt(self) -> None:
        """Ctrl-C: the running trials end FAILED (interrupted), uncounted, as locally."""
        for live in self.live.values():
            live.trial.set_user_attr(INTERRUPTED, True)
            _end_unfinished(
                self.loop.study, live.trial, self.loop.tracker, live.run_id, "interrupted",
                TrialState.FAIL,
            )  # fmt: skip
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


# ---------------------------------------------------------------------- early stopping


class _JudgeHost:
    """The one judge of a search, in a Ray actor (every worker asks the same one)."""

    def __init__(self, judge: EpochJudge, cwd: str) -> None:
        # The judge may persist to a study storage given as a relative path (the
        # driver's); the actor, pinned to the driver's node, resolves it the same way.
        with contextlib.suppress(OSError):
            os.chdir(cwd)
        self.judge = judge

    def should_stop(self, number: int, epoch: int, val_accuracy: float, size_bytes: float) -> bool:
        return bool(self.judge.should_stop(number, epoch, val_accuracy, size_bytes))


class RemoteJudge:
    """An :class:`~nas._trial.EpochJudge` that asks the search's judge actor."""

    def __init__(self, handle: Any, timeout_s: float = 60.0) -> None:
        self.handle = handle
        self.timeout_s = timeout_s

    def should_stop(self, number: int, epoch: int, val_accuracy: float, size_bytes: float) -> bool:
        import ray

        try:
            ref = self.handle.should_stop.remote(number, epoch, val_accuracy, size_bytes)
            return bool(ray.get(ref, timeout=self.timeout_s))
        except Exception as e:  # a lost judge never fails a trial: it trains to the end
            print(f"trial {number}: early-stopping judge unavailable ({e})", file=sys.stderr)
            return False


def _make_judge(loop: SearchLoop) -> EpochJudge | None:
    if loop.ctx.early_stop is not None:
        return loop.ctx.early_stop
    try:
        module = importlib.import_module("nas._early_stop")
    except ModuleNotFoundError as e:
        if e.name != "nas._early_stop":
            raise
        return None
    make = getattr(module, "make_early_stop", None)
    if make is None:
        return None
    # Where the study lives, when the judge can persist to it (and rebuild from it).
    known = inspect.signature(make).parameters
    where = {"out_dir": loop.out_dir, "study_name": loop.study_name}
    judge: EpochJudge | None = make(loop.cfg, **{k: v for k, v in where.items() if k in known})
    return judge


def _start_judge(ray: Any, loop: SearchLoop) -> Any:
    judge = _make_judge(loop)
    if judge is None:
        return None
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    actor = ray.remote(num_cpus=0, max_restarts=0)(_JudgeHost)
    return actor.options(scheduling_strategy=here).remote(judge, os.getcwd())


# ----------------------------------------------------------------------------- worker


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker needs to rebuild the search's trial context (small, picklable)."""

    cfg: dict[str, Any]  # the resolved config, every path in it absolute
    out_dir: str
    study_name: str
    plugins: tuple[str, ...]
    sys_path: tuple[str, ...]
    threads: int

    @property
    def key(self) -> str:
        blob = json.dumps(
            [self.cfg, self.out_dir, self.study_name, self.plugins, self.threads],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def worker_setup(loop: SearchLoop) -> WorkerSetup:
    cfg: dict[str, Any] = OmegaConf.to_container(loop.cfg, resolve=True)  # type: ignore[assignment]
    threads = max(1, math.ceil(float(loop.cfg.runner.cpus_per_trial)))
    cfg["train"]["threads"] = threads
    cfg["search"]["output_dir"] = str(loop.out_dir)
    cfg["mlflow"]["tracking_uri"] = None  # workers never write to MLflow
    cfg["search"]["storage"] = None  # nor to the study

    def absolute(value: str | None) -> str | None:
        if value is None or value.startswith("pkg://"):
            return value
        return str(Path(value).expanduser().resolve())

    cfg["dataset"]["root"] = absolute(cfg["dataset"].get("root"))
    cfg["compress"]["teacher_checkpoint"] = absolute(cfg["compress"].get("teacher_checkpoint"))
    if cfg.get("hw") is not None:
        cfg["hw"]["profile"] = absolute(cfg["hw"].get("profile"))
    # Plugins (user search spaces) import from the driver's PYTHONPATH and working dir.
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys_path = tuple(dict.fromkeys(str(Path(p).resolve()) for p in [*paths, os.getcwd()]))
    return WorkerSetup(cfg, str(loop.out_dir), loop.study_name, loop.plugins, sys_path, threads)


_CONTEXTS: dict[str, TrialContext] = {}
"""This worker process's trial contexts, by :attr:`WorkerSetup.key` (reused actors keep it)."""


def worker_context(setup: WorkerSetup) -> TrialContext:
    ctx = _CONTEXTS.get(setup.key)
    if ctx is not None:
        return ctx
    for path in setup.sys_path:
        if path not in sys.path:
            sys.path.append(path)
    for module in setup.plugins:
        importlib.import_module(module)
    from nas._context import make_context

    ctx = make_context(
        OmegaConf.create(setup.cfg),
        out_dir=Path(setup.out_dir),
        study_name=setup.study_name,
        plugins=setup.plugins,
    )
    for old in _CONTEXTS.values():  # another search's context in a reused worker
        if old.evaluator is not None:
            old.evaluator.close()
    _CONTEXTS.clear()
    _CONTEXTS[setup.key] = ctx
    return ctx


def train_in_worker(
    config: dict[str, Any], setup: WorkerSetup | None = None, judge: Any = None
) -> None:
    """Tune's function trainable: train one proposal and report its result.

    Reports twice: once on start (the node id, which the driver tags at once, so a
    trial lost with its node still names it) and once with the outcome. A trial's own
    failure (an error, NaN loss, its time limit) is an outcome, reported like any other;
    only a lost worker is an error to Tune, which then retries the trial.
    """
    import ray
    from ray import tune

    assert setup is not None
    node = ray.get_runtime_context().get_node_id()
    tune.report({"nas_phase": "started", "nas_node_id": node, "nas_pid": os.getpid()})
    tune.report({"nas_phase": "done", "nas_node_id": node, **_run_in_worker(config, setup, judge)})


def _run_in_worker(config: dict[str, Any], setup: WorkerSetup, judge: Any) -> dict[str, Any]:
    from nas._trial import train_proposal

    try:
        proposal = Proposal(**json.loads(config["proposal"]))
        ctx = worker_context(setup)
        ctx.early_stop = None if judge is None else RemoteJudge(judge)
        result = train_proposal(proposal, ctx)
    except TrialStopped as e:
        return {"nas_outcome": "pruned", "nas_reason": str(e)}
    except Exception as e:
        return {"nas_outcome": "failed", "nas_reason": f"{type(e).__name__}: {_one_line(e, 500)}"}
    out: dict[str, Any] = {"nas_outcome": "complete", "nas_result": json.dumps(asdict(result))}
    for key in ("val_accuracy", "size_bytes", "train_seconds", "trial_seconds"):
        if key in result.metrics:
            out[key] = float(result.metrics[key])
    return out


def _one_line(e: BaseException, n: int = 300) -> str:
    return " ".join(str(e).split())[:n] or type(e).__name__
