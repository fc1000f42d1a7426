"""Pareto front of (accuracy up, cost down), its hypervolume, and its plots; the cost is
the artifact's size, or the modelled energy per inference (``search.cost``)."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "COST_AXES",
    "Point",
    "hypervolume",
    "pareto_front",
    "write_csv",
    "write_devices_png",
    "write_html",
    "write_png",
]

# One colour per device, in the order given (Okabe-Ito: distinct for colour-blind eyes).
_DEVICE_COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"]


COST_AXES: dict[str, tuple[str, str]] = {
    "size_bytes": ("size_bytes (artifact written, log scale)", "size {:,.0f} B"),
    "energy_uj": ("energy_uj (modelled per inference, log scale)", "energy {:.3f} uJ"),
}
"""Each ``search.cost``: the plots' axis label and how a point's cost reads."""


@dataclass(frozen=True)
class Point:
    """One trained, feasible trial as the front sees it.

    ``size_bytes`` is the front's cost axis: the artifact's bytes by default, the
    modelled energy in uJ under ``search.cost=energy_uj`` (the name predates the choice).
    """

    number: int
    accuracy: float
    size_bytes: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """Non-dominated points, sorted by size ascending.

    A point is dominated when another is at least as accurate and at most as large,
    and strictly better in one. Of exact duplicates, the earliest trial is kept.
    """
    ordered = sorted(points, key=lambda p: (p.size_bytes, -p.accuracy, p.number))
    front: list[Point] = []
    best = -math.inf
    for p in ordered:
        if p.accuracy > best:
            front.append(p)
            best = p.accuracy
    return front


def hypervolume(points: Sequence[Point], *, ref_accuracy: float, ref_size_bytes: float) -> float:
    """Area dominated by the front in (accuracy, log10 size) above the reference point.

    Sizes are on a log scale because compression works in ratios: going from 1 MB to
    100 KB is worth as much as 100 KB to 10 KB. Only points more accurate than
    ``ref_accuracy`` and smaller than ``ref_size_bytes`` add area.
    """
    ref_x = math.log10(ref_size_bytes)
    pts = [
        (math.log10(p.size_bytes), p.accuracy)
        for p in pareto_front(points)
        if p.accuracy > ref_accuracy and 0 < p.size_bytes < ref_size_bytes
    ]
    area = 0.0
    for i, (x, y) in enumerate(pts):
        x_next = pts[i + 1][0] if i + 1 < len(pts) else ref_x
        area += (x_next - x) * (y - ref_accuracy)
    return area


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def write_png(
    path: Path,
    all_points: Sequence[Point],
    front: Sequence[Point],
    *,
    title: str,
    cost: str = "size_bytes",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter(
        [p.size_bytes for p in all_points],
        [p.accuracy for p in all_points],
        s=18,
        c="#9aa5b1",
        label=f"trials ({len(all_points)})",
    )
    ax.step(
        [p.size_bytes for p in front],
        [p.accuracy for p in front],
        where="post",
        c="#d1495b",
        lw=1.5,
    )
    ax.scatter(
        [p.size_bytes for p in front],
        [p.accuracy for p in front],
        s=40,
        c="#d1495b",
        label=f"Pareto front ({len(front)})",
        zorder=3,
    )
    for p in front:
        ax.annotate(
            f"#{p.number}",
            (p.size_bytes, p.accuracy),
            fontsize=7,
            xytext=(3, -9),
            textcoords="offset points",
        )
    save_plot(fig, ax, path, title=title, empty=not all_points, xlabel=COST_AXES[cost][0])


def save_plot(
    fig: Any,
    ax: Any,
    path: Path,
    *,
    title: str,
    empty: bool,
    legend_size: float | None = None,
    xlabel: str = "size_bytes (artifact written, log scale)",
) -> None:
    """The axes every plot of a search shares (log size against val accuracy); saved
    to ``path`` and closed."""
    import matplotlib.pyplot as plt

    if not empty:
        ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "no feasible trained trial yet", ha="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("val_accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_devices_png(
    path: Path,
    all_points: Sequence[Point],
    fronts: Mapping[str, Sequence[Point]],
    *,
    title: str,
    notes: dict[str, str] | None = None,
) -> None:
    """Every device's front on one plot, one colour per device (a multi-device search).

    ``notes``: why a device's front is empty, shown in its legend entry.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    ax.scatter(
        [p.size_bytes for p in all_points],
        [p.accuracy for p in all_points],
        s=14,
        c="#c8ced6",
        label=f"trained ({len(all_points)})",
    )
    for i, (device, front) in enumerate(fronts.items()):
        colour = _DEVICE_COLOURS[i % len(_DEVICE_COLOURS)]
        label = f"{device} ({len(front)})"
        if not front and notes and notes.get(device):
            label = f"{device}: empty, {notes[device][:60]}"
        ax.step(
            [p.size_bytes for p in front],
            [p.accuracy for p in front],
            where="post",
            c=colour,
            lw=1.4,
            alpha=0.8,
        )
        # Offset markers a little per device, so members shared by fronts stay visible.
        ax.scatter(
            [p.size_bytes for p in front],
            [p.accuracy for p in front],
            s=44 - 10 * i,
            c=colour,
            label=label,
            zorder=3 + i,
        )
    save_plot(fig, ax, path, title=title, empty=not all_points, legend_size=8)


def write_html(
    path: Path,
    all_points: Sequence[Point],
    front: Sequence[Point],
    *,
    title: str,
    cost: str = "size_bytes",
) -> None:
    """An interactive plot with plotly.js inlined, so it works offline."""
    import plotly.graph_objects as go

    label, reads = COST_AXES[cost]

    def hover(p: Point) -> str:
        items = [f"trial {p.number}", f"val_accuracy {p.accuracy:.4f}"]
        items.append(reads.format(p.size_bytes))
        items += [f"{k} {v}" for k, v in p.extra.items() if k != cost]
        return "<br>".join(items)

    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[p.size_bytes for p in all_points],
            y=[p.accuracy for p in all_points],
            mode="markers",
            name="trials",
            marker={"color": "#9aa5b1"},
            text=[hover(p) for p in all_points],
            hoverinfo="text",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[p.size_bytes for p in front],
            y=[p.accuracy for p in front],
            mode="lines+markers",
            name="Pareto front",
            line={"shape": "hv", "color": "#d1495b"},
            text=[hover(p) for p in front],
            hoverinfo="text",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title=label,
        yaxis_title="val_accuracy",
        xaxis_type="log",
        template="plotly_white",
    )
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
