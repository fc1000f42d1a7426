"""The end of a search: its counts and front (csv, png, html; one per device of a
multi-device search) on disk and on the parent run, and the parent run closed, as far
as a full disk lets them be written."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas._stop import EXIT_DISK_FULL, DiskFull, writing
from nas.study import (
    DeviceFront,
    FrontState,
    SearchOutcome,
    Tracker,
    front_rows,
    keys,
    nearest_candidates,
    summarize_population,
    write_csv,
    write_devices_png,
    write_html,
    write_png,
)

__all__ = ["end_records", "say_disk_full"]


def end_records(
    study: optuna.Study,
    tracker: Tracker,
    front_state: FrontState,
    outcome: SearchOutcome,
    *,
    folder: Path,
    impossible: dict[str, str],
    records_scores: bool,
    status: str,
) -> None:
    """The front files in ``folder`` and the parent run, the population (a strategy
    whose scores are not runs), and the parent run's end with ``status``: each as far
    as a full disk lets it be written (a search stopped for want of space ends on
    resume). Fills in ``outcome``'s counts and front."""
    try:
        with writing(folder):
            _finish(study, tracker, front_state, folder, outcome, impossible)
            if not records_scores:
                _log_population(study, tracker, folder, outcome)
    except DiskFull as e:
        if outcome.exit_code != EXIT_DISK_FULL:
            outcome.exit_code, status = EXIT_DISK_FULL, "FAILED"
            say_disk_full(e)
    finally:
        with contextlib.suppress(DiskFull):
            if outcome.exit_code == EXIT_DISK_FULL:
                tracker.set_tags(tracker.parent_id, {keys.TAG_ERROR: "no space left on device"})
            tracker.close_parent(status)


def say_disk_full(e: DiskFull) -> None:
    print(
        f"\nerror: no space left on device writing {e.filename}; free space, then run the "
        "same command to resume (finished trials are kept)",
        file=sys.stderr,
    )


def _log_population(
    study: optuna.Study, tracker: Tracker, out_dir: Path, outcome: SearchOutcome
) -> None:
    """A strategy's scored candidates (not runs of their own) go to the parent run."""
    summary = summarize_population(study, out_dir, title=f"{outcome.study_name}: population")
    tracker.log_parent(metrics=summary.metrics, artifacts=summary.files)
    outcome.population = summary.metrics


def _finish(
    study: optuna.Study,
    tracker: Tracker,
    front_state: FrontState,
    out_dir: Path,
    outcome: SearchOutcome,
    impossible: dict[str, str],
) -> None:
    """Count the trials, and write the front (csv, png, html) to disk and the parent run;
    with several devices, each device's (``impossible``: those no candidate can serve)."""
    front_state.refresh(study, step=None)
    trials = study.get_trials(deepcopy=False)
    counted = [t for t in trials if not t.user_attrs.get(keys.INTERRUPTED)]
    outcome.n_trials = len(counted)
    outcome.n_failed = len([t for t in counted if t.state == TrialState.FAIL])
    outcome.n_infeasible = len(
        [
            t
            for t in trials
            if t.state == TrialState.COMPLETE and not t.user_attrs.get(keys.FEASIBLE)
        ]
    )
    outcome.hypervolume = front_state.hv
    outcome.front = front_rows(study, front_state.front)
    outcome.n_below_floor = len(
        [p for p in front_state.points if p.accuracy < front_state.min_accuracy]
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path, html_path = (out_dir / f"pareto.{ext}" for ext in ("csv", "png", "html"))
    metrics = {
        "n_trials": outcome.n_trials,
        "n_infeasible": outcome.n_infeasible,
        "n_failed": outcome.n_failed,
        "infeasible_fraction": outcome.n_infeasible / max(outcome.n_trials, 1),
    }
    if front_state.devices:
        # The union of the devices' fronts (each row says whose); then each device's.
        for row in outcome.front:
            row["fronts"] = " ".join(
                d for d, f in front_state.by_device.items()
                if any(p.number == row["trial"] for p in f.front)
            )  # fmt: skip
        write_csv(csv_path, outcome.front)
        tracker.log_parent(metrics=metrics, artifacts=[csv_path])
        _finish_devices(study, tracker, front_state, out_dir, outcome, impossible)
        return
    write_csv(csv_path, outcome.front)
    title = (
        f"{outcome.study_name}: {len(front_state.front)} on the front of "
        f"{len(front_state.points)} trained"
    )
    cost = front_state.cost
    write_png(png_path, front_state.points, front_state.front, title=title, cost=cost)
    write_html(html_path, front_state.points, front_state.front, title=title, cost=cost)
    tracker.log_parent(
        metrics={"final_hypervolume": front_state.hv, **metrics},
        artifacts=[csv_path, png_path, html_path],
    )


def _finish_devices(
    study: optuna.Study,
    tracker: Tracker,
    front_state: FrontState,
    out_dir: Path,
    outcome: SearchOutcome,
    impossible: dict[str, str],
) -> None:
    """A multi-device search: each device's front (csv, png, html) and hypervolume, and
    one plot of them all, to disk and the parent run."""
    files: list[Path] = []
    metrics: dict[str, float] = {}
    fronts = {}
    for device, f in front_state.by_device.items():
        rows = front_rows(study, f.front, device)
        why = impossible.get(device, "")
        if not f.front and not why:
            why = (
                f"every trained candidate feasible here is below search.min_accuracy="
                f"{front_state.min_accuracy:.4f}"
                if f.points
                else "no trained candidate met its budgets"
            )
        outcome.devices[device] = DeviceFront(front=rows, hypervolume=f.hv, why_empty=why)
        if not f.points and device not in impossible:
            outcome.devices[device].nearest = nearest_candidates(study, device=device)
        paths = [out_dir / f"pareto_{device}.{ext}" for ext in ("csv", "png", "html")]
        write_csv(paths[0], rows)
        title = f"{outcome.study_name} on {device}: {len(f.front)} on the front of {len(f.points)}"
        write_png(paths[1], f.points, f.front, title=title)
        write_html(paths[2], f.points, f.front, title=title)
        files += paths
        metrics[keys.device_tag("final_hypervolume", device)] = f.hv
        metrics[keys.device_tag("front_size", device)] = len(f.front)
        fronts[device] = f.front
        if why:
            tag = keys.device_tag(keys.TAG_FRONT_EMPTY, device)
            tracker.set_tags(tracker.parent_id, {tag: why})
    combined = out_dir / "pareto_devices.png"
    write_devices_png(
        combined, front_state.points, fronts,
        title=f"{outcome.study_name}: one front per device",
        notes={d: p.why_empty for d, p in outcome.devices.items()},
    )  # fmt: skip
    tracker.log_parent(metrics=metrics, artifacts=[*files, combined])
