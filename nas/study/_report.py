"""What a search reports: its outcome and the console tables of the front."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DeviceFront",
    "runs_url",
    "EXIT_INTERRUPTED",
    "EXIT_NO_FEASIBLE",
    "SearchOutcome",
    "format_front",
    "format_nearest",
]

EXIT_NO_FEASIBLE = 3
"""Exit code when the search ends without one trained trial that meets the budgets."""
EXIT_INTERRUPTED = 130


@dataclass
class SearchOutcome:
    study_name: str
    parent_run_id: str
    tracking_uri: str
    experiment_id: str = ""
    front: list[dict[str, Any]] = field(default_factory=list)
    n_trials: int = 0
    n_infeasible: int = 0
    n_failed: int = 0
    hypervolume: float = 0.0
    wall_seconds: float = 0.0
    exit_code: int = 0
    # With exit code 3: the trials closest to the budgets (see _nearest_candidates).
    nearest: list[dict[str, Any]] = field(default_factory=list)
    # Trained, feasible trials kept off the front by search.min_accuracy.
    n_below_floor: int = 0
    # A weight-sharing strategy's scored population (nas.study.summarize_population).
    population: dict[str, float] = field(default_factory=dict)
    # A multi-device search: each device's front (then `front` is their union and
    # `hypervolume` the mean of theirs).
    devices: dict[str, DeviceFront] = field(default_factory=dict)
    # The front's cost axis (search.cost), against val accuracy.
    cost: str = "size_bytes"


@dataclass
class DeviceFront:
    """One device's part of a multi-device search's outcome."""

    front: list[dict[str, Any]] = field(default_factory=list)
    hypervolume: float = 0.0
    # Why the front is empty (a budget no candidate can meet; none met it), else "".
    why_empty: str = ""
    # With an empty front: the trials closest to this device's budgets.
    nearest: list[dict[str, Any]] = field(default_factory=list)


def format_front(outcome: SearchOutcome, front: list[dict[str, Any]] | None = None) -> str:
    """The front (``front``: default the outcome's) as a plain-text table."""
    members = outcome.front if front is None else front
    # The modelled energy when the search has a device (every trial then carries it).
    energy = any("energy_uj" in r for r in members)
    head = ["trial", "val_acc", "test_acc", "size_bytes", *(["energy_uj"] if energy else [])]
    head += ["latency_ms", "bits", "sparsity"]
    rows = []
    for r in members:
        lat = r.get("latency_ms")
        rows.append(
            [
                str(r["trial"]),
                f"{r['val_accuracy']:.4f}",
                "-" if r.get("test_accuracy") is None else f"{r['test_accuracy']:.4f}",
                f"{r['size_bytes']:,}",
                *([f"{r['energy_uj']:.3f}" if "energy_uj" in r else "-"] if energy else []),
                "-" if lat is None or not math.isfinite(lat) else f"{lat:.3f}",
                str(r.get("bits", "")),
                f"{r.get('sparsity', 0):.2f}",
            ]
        )
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def format_nearest(outcome: SearchOutcome, nearest: list[dict[str, Any]] | None = None) -> str:
    """The candidates closest to the budgets (``nearest``: default the outcome's), as a
    plain-text table."""
    lines = []
    for r in outcome.nearest if nearest is None else nearest:
        over = ", ".join(
            (f"{k.split('.', 1)[1]} {v:+.0%}" if k != "over.bits" else "bits: no kernels")
            for k, v in r.items()
            if k.startswith("over.") and (k != "over.bits" or v > 0)
        )
        figures = []
        if "size_bytes" in r:
            figures.append(f"size {r['size_bytes']:,.0f} B")
        if "latency_ms" in r and math.isfinite(r["latency_ms"]):
            figures.append(f"latency {r['latency_ms']:.3f} ms")
        if "peak_memory_bytes" in r:
            figures.append(f"peak {r['peak_memory_bytes']:,.0f} B")
        if "energy_uj" in r:
            figures.append(f"energy {r['energy_uj']:.3f} uJ")
        lines.append(
            f"  trial {r['trial']}: {', '.join(figures)} (vs budget: {over}); "
            f"bits={r.get('bits', '')}, sparsity={r.get('sparsity', 0):.2f}"
        )
    return "\n".join(lines)


def runs_url(outcome: SearchOutcome, base: str = "http://127.0.0.1:5000") -> str:
    """The MLflow UI's runs table of the search's experiment.

    ``workflowType=machine_learning``: MLflow 3.17's UI opens an experiment on its GenAI
    overview while its GenAI / Model training switch is on, whatever the experiment's
    ``mlflow.experimentKind`` tag says; this link lands on the training runs.
    """
    if not outcome.experiment_id:
        return base
    return f"{base}/#/experiments/{outcome.experiment_id}/runs?workflowType=machine_learning"
