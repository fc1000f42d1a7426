"""The workers' side of ``runner=ray``: rebuild the trial context, evaluate a proposal.

Each worker process builds its :class:`~nas.pipeline.TrialContext` once (a
module-level cache keyed by a hash of the config), and Tune reuses the worker actors
(``reuse_actors=True``), so later trials pay no imports or data loading. The context
holds the search's strategy, so what it loads once per process (``strategy=supernet``:
the cached supernet, which the driver trained) serves every trial of the worker. Every
path a trial uses is absolute, since Tune changes each trial's working directory.

Early stopping (``ctx.early_stop``, an :class:`~nas.pipeline.EpochJudge`) is shared
by all workers: the judge lives in one Ray actor and workers call it through
:class:`RemoteJudge`.

Where a trial trains (``train.device``) is resolved in the worker, from what Ray gave
it: a trial asking ``runner.gpus_per_trial`` GPUs runs in an actor whose
``CUDA_VISIBLE_DEVICES`` Ray narrowed to its GPU(s), so ``auto`` (and ``cuda:0``) is
that GPU; Ray keeps an actor's GPUs for the actor's life, so the cached context's
placement stays right for every trial the actor runs (checked on each trial anyway).
Each result carries its placement (``device``, ``device_name``, ``precision``,
``ray_gpu_ids``), the worker's ``cuda_visible_devices`` and when the worker started and
ended the trial, as tags of its MLflow run.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from nas._stop import DiskFull, is_disk_full
from nas.pipeline import EpochJudge, Proposal, TrialContext, evaluate_proposal
from nas.runners._base import SearchLoop, worker_record
from nas.study import TrialOutcome

__all__ = [
    "DISK_FULL",
    "RemoteJudge",
    "WorkerSetup",
    "prepare_in_worker",
    "start_judge",
    "train_in_worker",
    "worker_context",
    "worker_setup",
]


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
    """An :class:`~nas.pipeline.EpochJudge` that asks the search's judge actor."""

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


def start_judge(ray: Any, loop: SearchLoop) -> Any:
    """The search's early-stopping judge in an actor on this node, or None."""
    judge: EpochJudge | None = loop.ctx.early_stop
    if judge is None:
        return None
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    actor = ray.remote(num_cpus=0, max_restarts=0)(_JudgeHost)
    return actor.options(scheduling_strategy=here).remote(judge, os.getcwd())


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
    if float(loop.cfg.runner.gpus_per_trial) == 0 and cfg["train"].get("device") == "auto":
        # No GPU reserved for the trial: Ray (2.60) then leaves CUDA_VISIBLE_DEVICES as
        # the node has it, and auto would train on a GPU other trials use unscheduled.
        cfg["train"]["device"] = "cpu"
    cfg["search"]["output_dir"] = str(loop.out_dir)
    cfg["mlflow"]["tracking_uri"] = None  # workers never write to MLflow
    cfg["search"]["storage"] = None  # nor to the study

    def absolute(value: str | None) -> str | None:
        if value is None or value.startswith("pkg://"):
            return value
        return str(Path(value).expanduser().resolve())

    cfg["dataset"]["root"] = absolute(cfg["dataset"].get("root"))
    cfg["compress"]["teacher_checkpoint"] = absolute(cfg["compress"].get("teacher_checkpoint"))
    if cfg.get("strategy") is not None and cfg["strategy"].get("checkpoint"):
        cfg["strategy"]["checkpoint"] = absolute(cfg["strategy"]["checkpoint"])  # supernet's
    profiles = [cfg["hw"]] if cfg.get("hw") is not None else []
    for profile in [*profiles, *(cfg.get("devices") or {}).values()]:
        for key in ("profile", "energy_table"):  # files a hw profile names
            profile[key] = absolute(profile.get(key))
    # Plugins (user search spaces) import from the driver's PYTHONPATH and working dir.
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys_path = tuple(dict.fromkeys(str(Path(p).resolve()) for p in [*paths, os.getcwd()]))
    return WorkerSetup(cfg, str(loop.out_dir), loop.study_name, loop.plugins, sys_path, threads)


DISK_FULL = "disk_full"
"""A trial's outcome when its worker's disk is full: the search stops (see nas._stop)."""

_CONTEXTS: dict[str, TrialContext] = {}
"""This worker process's trial contexts, by :attr:`WorkerSetup.key` (reused actors keep it)."""


def _build_context(setup: WorkerSetup, *, evaluator: bool, place: bool = True) -> TrialContext:
    """A trial context in this worker (the driver's paths and plugins first), placed on
    the device Ray gave this process (``place``)."""
    for path in setup.sys_path:
        if path not in sys.path:
            sys.path.append(path)
    for module in setup.plugins:
        importlib.import_module(module)
    from nas.runners._context import make_context

    return make_context(
        OmegaConf.create(setup.cfg),
        out_dir=Path(setup.out_dir),
        study_name=setup.study_name,
        plugins=setup.plugins,
        evaluator=evaluator,
        place=place,
    )


def worker_context(setup: WorkerSetup) -> TrialContext:
    ctx = _CONTEXTS.get(setup.key)
    if ctx is not None:
        _replace_if_moved(ctx, setup)
        return ctx
    ctx = _build_context(setup, evaluator=True)
    for old in _CONTEXTS.values():  # another search's context in a reused worker
        if old.evaluator is not None:
            old.evaluator.close()
    _CONTEXTS.clear()
    _CONTEXTS[setup.key] = ctx
    return ctx


def _replace_if_moved(ctx: TrialContext, setup: WorkerSetup) -> None:
    """Re-resolve a cached context's placement if Ray's GPUs for this process changed.

    Not expected: Tune reuses an actor only for trials asking the same resources, and
    Ray keeps an actor's GPUs (and its ``CUDA_VISIBLE_DEVICES``) for the actor's life.
    Cheap to check, and a trial must never train on a GPU Ray gave another."""
    from nas.pipeline import ray_gpu_ids, select_device

    placed = ctx.placement
    if placed is None or placed.ray_gpu_ids == ray_gpu_ids():
        return
    train = setup.cfg["train"]
    ctx.placement = select_device(str(train["device"]), str(train["precision"]))


def worker_tags() -> dict[str, str]:
    """What a worker adds to its trial's tags: ``CUDA_VISIBLE_DEVICES`` as Ray set it
    for this process (absent when unset)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return {} if visible is None else {"cuda_visible_devices": visible}


def prepare_in_worker(setup: WorkerSetup) -> list[str]:
    """A Ray task: the strategy's one-off work on this worker; returns its messages
    (its progress bar stays here), each prefixed with where it ran. It trains on the
    device Ray gave the task (it asks a trial's resources), resolved as for a trial."""
    import ray

    ctx = _build_context(setup, evaluator=False, place=True)
    assert ctx.strategy is not None
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        ctx.strategy.prepare(ctx)
    node = ray.get_runtime_context().get_node_id()[:8]
    lines = [ln for ln in said.getvalue().replace("\r", "\n").splitlines() if ln.strip()]
    # Keep the messages, not the progress bar's frames.
    where = [f"[Ray node {node}] trained on {_describe(ctx)}"] if ctx.placement else []
    return where + [f"[Ray node {node}] {ln}" for ln in lines if "|" not in ln]


def _describe(ctx: TrialContext) -> str:
    placed = ctx.placement
    assert placed is not None
    gpus = f", Ray GPU ids {','.join(placed.ray_gpu_ids)}" if placed.ray_gpu_ids else ""
    return f"{placed.device} ({placed.name}, {placed.precision}{gpus})"


def train_in_worker(
    config: dict[str, Any], setup: WorkerSetup | None = None, judge: Any = None
) -> None:
    """Tune's function trainable: train one proposal and report its result.

    Reports twice: once on start (the node id and :func:`worker_record`, which the
    driver records at once, so a trial lost with its node still names it) and once
    with the outcome. A trial's own
    failure (an error, NaN loss, its time limit) is an outcome, reported like any other;
    only a lost worker is an error to Tune, which then retries the trial.
    """
    import ray
    from ray import tune

    assert setup is not None
    node = ray.get_runtime_context().get_node_id()
    where = json.dumps(worker_record(node))
    tune.report({"nas_phase": "started", "nas_node_id": node, "nas_worker": where})
    tune.report({"nas_phase": "done", "nas_node_id": node, **_run_in_worker(config, setup, judge)})


def _run_in_worker(config: dict[str, Any], setup: WorkerSetup, judge: Any) -> dict[str, Any]:
    started = _now()
    try:
        proposal = Proposal(**json.loads(config["proposal"]))
        ctx = worker_context(setup)
        ctx.early_stop = None if judge is None else RemoteJudge(judge)
        result = evaluate_proposal(proposal, ctx)
    except DiskFull as e:
        return {"nas_outcome": DISK_FULL, "nas_path": str(e.filename)}
    except Exception as e:  # decided as locally: stopped, diverged, failed
        if is_disk_full(e):
            return {"nas_outcome": DISK_FULL, "nas_path": str(getattr(e, "filename", "?"))}
        outcome = TrialOutcome.of_error(e)
        return {"nas_outcome": outcome.state.value, "nas_reason": outcome.reason}
    result.tags.update(worker_tags())
    result.tags.update({"ray.started_at": started, "ray.ended_at": _now()})
    out: dict[str, Any] = {"nas_outcome": "complete", "nas_result": json.dumps(asdict(result))}
    for key in ("val_accuracy", "size_bytes", "train_seconds", "trial_seconds"):
        if key in result.metrics:
            out[key] = float(result.metrics[key])
    return out


def _now() -> str:
    """Wall-clock time, UTC, ISO 8601 to the millisecond (when a worker ran a trial)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
