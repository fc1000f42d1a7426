"""The search driver: ask Optuna for a candidate, run it, record it, keep the front.

Heavy imports (torch, timm, mlflow) live here, behind :mod:`nas.search`, which
validates the config first.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from nas._config import ConfigError, search_hash
from nas._data import load_splits
from nas._evaluator import ArtifactEvaluator
from nas._pareto import Point, hypervolume, pareto_front, write_csv, write_html, write_png
from nas._study import INTERRUPTED, counted_trials, make_sampler, make_storage, open_study
from nas._tracking import Tracker, flatten
from nas._trial import TrialContext, TrialResult, run_trial
from nas.hw import HardwareModel
from search_spaces import get_search_space, search_space_config

__all__ = ["EXIT_INTERRUPTED", "EXIT_NO_FEASIBLE", "SearchOutcome", "run_search", "study_name_of"]

EXIT_NO_FEASIBLE = 3
"""Exit code when the search ends without one trained trial that meets the budgets."""
EXIT_INTERRUPTED = 130


@dataclass
class SearchOutcome:
    study_name: str
    parent_run_id: str
    tracking_uri: str
    front: list[dict[str, Any]] = field(default_factory=list)
    n_trials: int = 0
    n_infeasible: int = 0
    n_failed: int = 0
    hypervolume: float = 0.0
    wall_seconds: float = 0.0
    exit_code: int = 0


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

    space_cfg: dict[str, Any] = dict(OmegaConf.to_container(cfg.search_space, resolve=True))  # type: ignore[arg-type]
    space_name = str(space_cfg.pop("name"))
    space = get_search_space(space_name, search_space_config(space_name)(**space_cfg))
    hw_cfg = cfg.hw
    hw = HardwareModel(hw_cfg) if hw_cfg is not None else None
    bits = sorted(set(cfg.compress.bits) & set(hw_cfg.bits)) if hw_cfg else list(cfg.compress.bits)

    study, resumed = open_study(
        study_name=name,
        storage=make_storage(cfg.search.storage, name, out_dir),
        sampler=make_sampler(cfg.sampler, seed),
        config_hash=search_hash(cfg),
    )
    tracker = _open_tracker(cfg, tracking_uri, out_dir)
    ref_acc, ref_size = float(cfg.dataset.hv_ref_accuracy), float(cfg.dataset.hv_ref_size_bytes)
    params = flatten(OmegaConf.to_container(cfg, resolve=True))
    params.update({"hv.ref_accuracy": ref_acc, "hv.ref_size_bytes": ref_size, "study_name": name})
    tracker.open_parent(study_name=name, params=params, tags={"nas.config_hash": search_hash(cfg)})
    _mark_interrupted_runs(study, tracker)
    outcome = SearchOutcome(
        study_name=name, parent_run_id=tracker.parent_id, tracking_uri=tracking_uri
    )

    splits = load_splits(cfg.dataset, seed=seed)
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
    front_state = _FrontState(tracker, ref_acc, ref_size)
    front_state.refresh(study, step=None)

    remaining = int(cfg.search.n_trials) - counted_trials(study)
    timeout = cfg.search.timeout_s
    if resumed:
        print(
            f"Resuming study {name}: {counted_trials(study)} trials done, {max(remaining, 0)} "
            f"to go.",
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
    status = "FINISHED"
    try:
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
    except KeyboardInterrupt:
        status = "KILLED"
        outcome.exit_code = EXIT_INTERRUPTED
    finally:
        bar.close()
        evaluator.close()
        _finish(study, tracker, front_state, out_dir / "outputs" / name, name, outcome)
        tracker.close_parent(status)
    outcome.wall_seconds = time.monotonic() - start
    if outcome.exit_code == 0 and not outcome.front:
        outcome.exit_code = EXIT_NO_FEASIBLE
    return outcome


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
    except (urllib.error.URLError, OSError) as e:
        raise ConfigError(
            f"mlflow.tracking_uri={uri!r} is unreachable ({e}); start a server with "
            f"scripts/mlflow_server.sh or use a sqlite:/// URI"
        ) from None


def _mark_interrupted_runs(study: optuna.Study, tracker: Tracker) -> None:
    """Child runs of trials a crash cut short end as FAILED, like their Optuna trials."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        run_id = t.user_attrs.get("mlflow_run_id")
        if t.user_attrs.get(INTERRUPTED) and run_id and tracker.run_status(run_id) == "RUNNING":
            tracker.finish_trial(run_id, status="FAILED", tags={"error": "interrupted"})


def _one_trial(study: optuna.Study, ctx: TrialContext, tracker: Tracker, name: str) -> FrozenTrial:
    trial = study.ask()
    run_id = tracker.start_trial(trial.number, name)
    trial.set_user_attr("mlflow_run_id", run_id)
    try:
        result = run_trial(trial, ctx, number=trial.number)
    except KeyboardInterrupt:
        trial.set_user_attr(INTERRUPTED, True)
        trial.set_user_attr("error", "interrupted (Ctrl-C)")
        study.tell(trial, state=TrialState.FAIL)
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


class _FrontState:
    """The current front; keeps MLflow's `pareto` tags and the hypervolume in step."""

    def __init__(self, tracker: Tracker, ref_acc: float, ref_size: float) -> None:
        self.tracker, self.ref_acc, self.ref_size = tracker, ref_acc, ref_size
        self.front: list[Point] = []
        self.points: list[Point] = []
        self.hv = 0.0
        self._tagged: dict[int, bool] = {}
        self._runs: dict[int, str] = {}
        self._artifact_logged: set[int] = set()

    def refresh(self, study: optuna.Study, *, step: int | None) -> None:
        self.points = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            run_id = t.user_attrs.get("mlflow_run_id")
            if run_id:
                self._runs[t.number] = run_id
            if t.user_attrs.get("feasible") and t.values is not None:
                self.points.append(_point(t))
        self.front = pareto_front(self.points)
        self.hv = hypervolume(self.points, ref_accuracy=self.ref_acc, ref_size_bytes=self.ref_size)
        on_front = {p.number for p in self.front}
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        for number, run_id in self._runs.items():
            want = number in on_front
            if self._tagged.get(number) == want and step is not None:
                continue
            self.tracker.set_tags(run_id, {"pareto": str(want).lower()})
            self._tagged[number] = want
            t = by_number[number]
            if want and number not in self._artifact_logged:
                test_acc = t.user_attrs.get("test_accuracy")
                if test_acc is not None:
                    self.tracker.log_metrics(run_id, {"test_accuracy": float(test_acc)})
                artifact = t.user_attrs.get("artifact")
                if artifact and Path(artifact).exists():
                    self.tracker.log_artifact(run_id, Path(artifact))
                self._artifact_logged.add(number)
        if step is not None:
            self.tracker.log_parent(
                metrics={"hypervolume": self.hv, "front_size": len(self.front)}, step=step
            )


def _point(t: FrozenTrial) -> Point:
    m = t.user_attrs.get("metrics", {})
    extra: dict[str, Any] = {
        k: t.params[k] for k in ("bits", "sparsity", "width_mult") if k in t.params
    }
    if "latency_ms" in m:
        extra["latency_ms"] = round(m["latency_ms"], 4)
    return Point(t.number, float(t.values[0]), float(t.values[1]), extra)


def _front_rows(study: optuna.Study, front: list[Point]) -> list[dict[str, Any]]:
    rows = []
    for p in front:
        t = study.trials[p.number]
        m = t.user_attrs.get("metrics", {})
        row: dict[str, Any] = {
            "trial": p.number,
            "run_id": t.user_attrs.get("mlflow_run_id", ""),
            "val_accuracy": p.accuracy,
            "test_accuracy": t.user_attrs.get("test_accuracy"),
            "size_bytes": int(p.size_bytes),
        }
        for k in (
            "latency_ms",
            "peak_memory_bytes",
            "params",
            "nonzero_params",
            "macs",
            "train_seconds",
        ):
            if k in m:
                row[k] = m[k]
        row.update(t.params)
        row["arch"] = json.dumps(t.user_attrs.get("arch", {}))
        rows.append(row)
    return rows


def _finish(
    study: optuna.Study,
    tracker: Tracker,
    front_state: _FrontState,
    out_dir: Path,
    name: str,
    outcome: SearchOutcome,
) -> None:
    front_state.refresh(study, step=None)
    trials = study.get_trials(deepcopy=False)
    outcome.n_trials = len([t for t in trials if not t.user_attrs.get(INTERRUPTED)])
    outcome.n_failed = len([t for t in trials if t.state == TrialState.FAIL])
    outcome.n_infeasible = len(
        [t for t in trials if t.state == TrialState.COMPLETE and not t.user_attrs.get("feasible")]
    )
    outcome.hypervolume = front_state.hv
    outcome.front = _front_rows(study, front_state.front)
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


def format_front(outcome: SearchOutcome) -> str:
    """The front as a plain-text table."""
    head = ["trial", "val_acc", "test_acc", "size_bytes", "latency_ms", "bits", "sparsity"]
    rows = []
    for r in outcome.front:
        lat = r.get("latency_ms")
        rows.append(
            [
                str(r["trial"]),
                f"{r['val_accuracy']:.4f}",
                "-" if r.get("test_accuracy") is None else f"{r['test_accuracy']:.4f}",
                f"{r['size_bytes']:,}",
                "-" if lat is None or not math.isfinite(lat) else f"{lat:.3f}",
                str(r.get("bits", "")),
                f"{r.get('sparsity', 0):.2f}",
            ]
        )
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)
