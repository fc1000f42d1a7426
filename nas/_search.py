"""The search driver: ask Optuna for a candidate, run it, record it, keep the front.

Heavy imports (torch, timm, mlflow) live here, behind :mod:`nas.search`, which
validates the config first.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from nas._budgets import check_budgets_reachable, nearest_candidates
from nas._config import ConfigError, search_hash
from nas._data import load_splits
from nas._evaluator import ArtifactEvaluator
from nas._front import FrontState, front_rows
from nas._pareto import write_csv, write_html, write_png
from nas._report import EXIT_INTERRUPTED, EXIT_NO_FEASIBLE, SearchOutcome
from nas._study import INTERRUPTED, counted_trials, make_sampler, make_storage, open_study
from nas._tracking import Tracker, flatten
from nas._trial import TrialContext, TrialResult, run_trial, space_from_cfg
from nas.hw import HardwareModel

__all__ = ["run_search", "study_name_of"]


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
    seed = int(cfg.search.seed)
    torch.set_num_threads(int(cfg.train.threads))

    space, space_cfg = space_from_cfg(cfg.search_space)
    hw_cfg = cfg.hw
    try:
        hw = HardwareModel(hw_cfg) if hw_cfg is not None else None
    except ValueError as e:
        raise ConfigError(str(e)) from None
    bits = sorted(set(cfg.compress.bits) & set(hw_cfg.bits)) if hw_cfg else list(cfg.compress.bits)

    # Everything a user's input can break (data, budgets, the tracking server) is
    # checked before any study or run is written, so a refused start leaves nothing.
    splits = load_splits(cfg.dataset, seed=seed)
    if hw is not None and hw_cfg is not None:
        check_budgets_reachable(cfg, splits.spec, hw)
    tracker = _open_tracker(cfg, tracking_uri, out_dir)
    study, resumed = open_study(
        study_name=name,
        storage=make_storage(cfg.search.storage, name, out_dir),
        sampler=make_sampler(cfg.sampler, seed),
        config_hash=search_hash(cfg),
    )
    ref_acc, ref_size = float(cfg.dataset.hv_ref_accuracy), float(cfg.dataset.hv_ref_size_bytes)
    params = flatten(OmegaConf.to_container(cfg, resolve=True))
    params.update({"hv.ref_accuracy": ref_acc, "hv.ref_size_bytes": ref_size, "study_name": name})
    tracker.open_parent(study_name=name, params=params, tags={"nas.config_hash": search_hash(cfg)})
    outcome = SearchOutcome(
        study_name=name, parent_run_id=tracker.parent_id, tracking_uri=tracking_uri
    )
    front_state = FrontState(tracker, ref_acc, ref_size)
    evaluator: ArtifactEvaluator | None = None
    bar: tqdm[Any] | None = None
    status = "FAILED"  # unless the loop ends normally or by Ctrl-C
    try:
        _mark_interrupted_runs(study, tracker)
        evaluator = ArtifactEvaluator(
            dataset=OmegaConf.to_container(cfg.dataset, resolve=True),  # type: ignore[arg-type]
            seed=seed,
            threads=1,
            plugins=plugins,
        )
        ctx = TrialContext(
            space=space,
            space_cfg=space_cfg,
            splits=splits,
            compress_cfg=cfg.compress,
            train_cfg=cfg.train,
            bits=bits,
            hw=hw,
            hw_cfg=hw_cfg,
            evaluator=evaluator,
            artifact_dir=out_dir / "outputs" / name,
            seed=seed,
            trial_timeout_s=cfg.search.trial_timeout_s,
        )
        front_state.refresh(study, step=None)

        remaining = int(cfg.search.n_trials) - counted_trials(study)
        timeout = cfg.search.timeout_s
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
        durations: list[float] = []
        while remaining > 0:
            elapsed = time.monotonic() - start
            typical = sorted(durations)[len(durations) // 2] if durations else 0.0
            if timeout is not None and elapsed + typical > timeout:
                print(
                    f"Stopping: search.timeout_s={timeout} would be exceeded by another trial.",
                    file=sys.stderr,
                )
                break
            t0 = time.monotonic()
            frozen = _one_trial(study, ctx, tracker, name)
            if frozen.state == TrialState.COMPLETE and frozen.user_attrs.get("feasible"):
                durations.append(time.monotonic() - t0)
            front_state.refresh(study, step=frozen.number)
            remaining -= 1
            bar.update(1)
            bar.set_postfix(front=len(front_state.front), hv=f"{front_state.hv:.3f}")
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        outcome.exit_code = EXIT_INTERRUPTED
        print("\nInterrupted: the running trial is marked FAILED (interrupted).", file=sys.stderr)
    finally:
        # A second Ctrl-C must not cut the bookkeeping short and leave runs RUNNING.
        with _sigint_ignored():
            if bar is not None:
                bar.close()
            if evaluator is not None:
                evaluator.close()
            try:
                _finish(study, tracker, front_state, out_dir / "outputs" / name, name, outcome)
            finally:
                tracker.close_parent(status)
    outcome.wall_seconds = time.monotonic() - start
    if outcome.exit_code == 0 and not outcome.front:
        outcome.exit_code = EXIT_NO_FEASIBLE
        outcome.nearest = nearest_candidates(study)
    return outcome


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
    """Child runs of trials a crash cut short end as FAILED, like their Optuna trials.

    Called before this session starts any trial, so every child run of the parent
    still RUNNING is left over from a killed process (including one killed between
    creating the run and recording its id in the study).
    """
    stale = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=(
            f"tags.`mlflow.parentRunId` = '{tracker.parent_id}' and attributes.status = 'RUNNING'"
        ),
        max_results=1000,
    )
    for run in stale:
        tracker.finish_trial(run.info.run_id, status="FAILED", tags={"error": "interrupted"})


def _one_trial(study: optuna.Study, ctx: TrialContext, tracker: Tracker, name: str) -> FrozenTrial:
    trial = study.ask()
    run_id: str | None = None
    try:
        run_id = tracker.start_trial(trial.number, name)
        trial.set_user_attr("mlflow_run_id", run_id)
        result = run_trial(trial, ctx, number=trial.number)
    except KeyboardInterrupt:
        with _sigint_ignored():
            trial.set_user_attr(INTERRUPTED, True)
            trial.set_user_attr("error", "interrupted (Ctrl-C)")
            study.tell(trial, state=TrialState.FAIL)
            if run_id is not None:
                tracker.finish_trial(
                    run_id,
                    status="KILLED",
                    params=trial.params,
                    tags={"error": "interrupted", "feasible": "unknown"},
                )
        raise
    except Exception as e:  # any trial fault is recorded, and the search goes on
        reason = f"{type(e).__name__}: {' '.join(str(e).split())[:500]}"
        trial.set_user_attr("error", reason)
        study.tell(trial, state=TrialState.FAIL)
        if run_id is not None:
            tracker.finish_trial(
                run_id,
                status="FAILED",
                params=trial.params,
                tags={"error": reason, "feasible": "unknown"},
            )
        print(f"trial {trial.number} failed: {reason}", file=sys.stderr)
        return study.trials[trial.number]
    _record(trial, result)
    study.tell(trial, list(result.values))
    tracker.finish_trial(
        run_id,
        status="FINISHED",
        params=_run_params(trial.params, result),
        metrics=result.metrics,
        tags={
            "feasible": str(result.feasible).lower(),
            "pareto": "false",
            "arch": json.dumps(result.arch),
        },
    )
    return study.trials[trial.number]


def _record(trial: optuna.Trial, result: TrialResult) -> None:
    trial.set_user_attr("feasible", result.feasible)
    trial.set_user_attr("arch", result.arch)
    trial.set_user_attr("metrics", result.metrics)
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
