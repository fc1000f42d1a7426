"""``runner=ray``: the same search, its trials trained on Ray Tune.

The persisted Optuna study stays the single source of truth, as with the local
runner. This process (the driver) does all the bookkeeping through the search's one
trial recorder (:mod:`nas.runners._ray_searcher`); Ray workers only train, compress,
export and evaluate (:mod:`nas.runners._ray_worker`) and report the result back.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, cast

from omegaconf import DictConfig

from nas._stop import DiskFull, children_shielded, reclaim_stop_signals
from nas.config import ConfigError, one_line
from nas.runners._address import probe_ray_address, resolve_ray_address
from nas.runners._base import SearchLoop, register_runner
from nas.runners._ray_searcher import StudySearcher, make_searcher
from nas.runners._ray_worker import prepare_in_worker, start_judge, train_in_worker, worker_setup
from nas.study import sigint_ignored

__all__ = ["RayRunner"]

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
        _check_device(cfg)

    def prepare(self, loop: SearchLoop) -> None:
        """The strategy's one-off work (a supernet's training) as one Ray task with a
        trial's resources, on whichever worker Ray picks; the driver waits, prints what
        the task said, and later loads what it cached (shared storage, as for trials)."""
        if not getattr(loop.ctx.strategy, "trains_once", False):
            return  # nothing shared to train: no Ray session for it
        for k, v in _RAY_ENV.items():
            if k.startswith("RAY_"):
                os.environ.setdefault(k, v)
        import ray

        r = loop.cfg.runner
        started = self._init(ray, loop.cfg)
        try:
            _check_resources(ray, r)
            task = ray.remote(num_cpus=float(r.cpus_per_trial), num_gpus=float(r.gpus_per_trial))(
                prepare_in_worker
            )
            try:
                said = ray.get(task.remote(worker_setup(loop)))
            except ray.exceptions.RayTaskError as e:
                if isinstance(e.cause, ConfigError):  # train.device the worker lacks
                    raise ConfigError(f"on the Ray worker: {e.cause}") from None
                raise
            for line in said:
                print(line, file=sys.stderr)
        finally:
            with sigint_ignored():
                if started:
                    ray.shutdown()

    def run(self, loop: SearchLoop) -> None:
        for k, v in _RAY_ENV.items():
            if k.startswith("RAY_"):
                os.environ.setdefault(k, v)
        # Tune saves its experiment state under search.output_dir; resume is the study's,
        # so a save that fails (a full disk) is nothing to print a traceback about. And a
        # trial's own errors never reach Tune (the worker reports them as outcomes): what
        # Tune logs with a traceback is a lost worker or node, which the searcher reports
        # in one line, retried or failed.
        for name in ("ray.tune.execution.experiment_state", "ray.tune.execution.tune_controller"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        import ray

        r = loop.cfg.runner
        started = self._init(ray, loop.cfg)
        searcher: StudySearcher | None = None
        judge = None
        try:
            _check_resources(ray, r)
            judge = start_judge(ray, loop)
            searcher = make_searcher(loop)
            with _env(_RAY_ENV):
                _fit(loop, searcher, judge)
            searcher.end_leftovers()
            if searcher.disk_full is not None:
                raise DiskFull(searcher.disk_full)
        except KeyboardInterrupt:
            with sigint_ignored():
                if searcher is not None:
                    searcher.interrupt()
            raise
        finally:
            with sigint_ignored():
                # Disconnecting ends this job's actors on a cluster; a local Ray stops.
                if started:
                    ray.shutdown()
                elif judge is not None:  # a caller's session outlives the search
                    with contextlib.suppress(Exception):
                        ray.kill(judge)

    def _init(self, ray: Any, cfg: DictConfig) -> bool:
        if ray.is_initialized():
            return False  # a caller's own session (tests, notebooks): used as it is
        self._start(ray, cfg)
        reclaim_stop_signals()  # Ray's core takes SIGTERM for itself
        return True

    def _start(self, ray: Any, cfg: DictConfig) -> None:
        r = cfg.runner
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        if self._address is None:
            num_cpus = r.num_cpus or math.ceil(r.max_concurrent * r.cpus_per_trial)
            # The local Ray's processes (its GCS, raylet and the workers it forks) share
            # this process group: started with the stop signals blocked, they leave a
            # `timeout` or a pre-emption notice to this driver, which stops them itself.
            with children_shielded():
                ray.init(
                    address="local",
                    num_cpus=int(num_cpus),
                    num_gpus=_local_gpus(r),
                    object_store_memory=int(r.object_store_mb) * 1_000_000,
                    include_dashboard=False,
                    **quiet,
                )
            return
        try:
            ray.init(address=self._address, **quiet)
        except Exception as e:  # wrong token, not a Ray head, version mismatch
            raise ConfigError(
                f"runner.address={r.address!r}: cannot join the Ray cluster at "
                f"{self._address}: {one_line(e)}"
            ) from None


def _local_gpus(r: Any) -> float | None:
    """A local Ray's GPUs: ``runner.num_gpus`` when set (it may declare GPUs torch does
    not see: Ray then assigns their ids all the same, which the tests use); else Ray
    detects them when trials ask for GPUs, and none are claimed otherwise."""
    if r.get("num_gpus") is not None:
        return float(r.num_gpus)
    return None if r.gpus_per_trial > 0 else 0


def _check_device(cfg: DictConfig) -> None:
    """Refuse ``train.device=cuda`` with no GPU reserved per trial: every trial would
    train on a GPU Ray schedules nothing on, shared with whatever else runs there.
    (Whether a worker's torch sees the GPUs Ray gave it is known on the worker only: a
    trial whose worker lacks them fails with one line, and the search goes on.)"""
    device = str(cfg.train.get("device", "auto"))
    if device.startswith("cuda") and float(cfg.runner.gpus_per_trial) == 0:
        raise ConfigError(
            f"train.device={device} under runner=ray needs runner.gpus_per_trial > 0 "
            "(1, 0.5, 0.25: a trial's share of a GPU), so that Ray gives each trial its GPU"
        )


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

    class KeepStopSignals(tune.Callback):
        """Tune takes SIGUSR1 for its own stop (it ends the experiment at once): a
        pre-emption notice is the search's (nas._stop), so its handlers come back once
        Tune has set its own, before the first trial starts."""

        def setup(self, *args: Any, **info: Any) -> None:
            reclaim_stop_signals()

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
            # One experiment per phase (scoring, finalists), however soon they follow.
            name=f"{loop.study_name}-{loop.phase}-{stamp}",
            storage_path=str(loop.out_dir / "ray_results"),
            failure_config=tune.FailureConfig(max_failures=int(r.max_failures)),
            callbacks=[KeepStopSignals()],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=0,
            log_to_file=False,
        ),
    )
    tuner.fit()


def _trial_name(trial: Any) -> str:
    return f"trial_{int(trial.config.get('number', -1)):05d}_{trial.trial_id}"
