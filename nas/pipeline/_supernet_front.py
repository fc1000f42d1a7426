"""A supernet search's estimated front: scored candidates (val accuracy inherited,
size) that no other dominates, spread along the log-size axis. The finalists are
chosen by ``nas.pipeline._supernet_predict``; this is the raw view of the estimates.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from nas.pipeline._context import feasible_on

if TYPE_CHECKING:
    import optuna

__all__ = ["estimated_front", "spread_by_size"]

# Keys of a trial's record (nas.study.keys): pipeline sits below study, so it
# reads them by value; tests/nas/pipeline check that they agree.
_PHASE, _FEASIBLE, _METRICS = "nas.phase", "feasible", "metrics"
_DEVICE_CONSTRAINTS = "device_constraints"


def estimated_front(study: optuna.Study, k: int, device: str | None = None) -> list[int]:
    """Up to ``k`` scored trials of the estimated front (max val accuracy, min size),
    spread evenly along its log-size axis (a front crowds where small models are
    cheap to sample); one trial per distinct candidate, by size ascending. ``device``:
    that device's front, of a multi-device search."""
    return spread_by_size(_front(study, device), k)


def spread_by_size(front: list[tuple[float, float, int]], k: int) -> list[int]:
    """Up to ``k`` of ``front`` ((accuracy, size, id), by size ascending), evenly spread
    along its log-size axis; their ids, by size ascending."""
    if len(front) <= k:
        return [n for _, _, n in front]
    logs = [math.log(max(size, 1.0)) for _, size, _ in front]
    picked: set[int] = set()
    for target in np.linspace(logs[0], logs[-1], k):
        free = [i for i in range(len(front)) if i not in picked]
        picked.add(min(free, key=lambda i: (abs(logs[i] - target), i)))
    return [front[i][2] for i in sorted(picked)]


def _front(study: optuna.Study, device: str | None = None) -> list[tuple[float, float, int]]:
    """The estimated front as (val accuracy, size, trial), by size ascending."""
    from optuna.trial import TrialState

    best: dict[str, tuple[float, float, int]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get(_PHASE) == "final" or not t.user_attrs.get(_FEASIBLE):
            continue
        if device is not None:
            if device not in feasible_on(t.user_attrs.get(_DEVICE_CONSTRAINTS) or {}):
                continue
        m = t.user_attrs.get(_METRICS) or {}
        acc, size = float(m.get("val_accuracy", 0.0)), float(m.get("size_bytes", np.inf))
        key = repr(sorted(t.params.items()))
        if key not in best or acc > best[key][0]:
            best[key] = (acc, size, t.number)
    points = sorted(best.values(), key=lambda p: (p[1], -p[0]))
    front: list[tuple[float, float, int]] = []
    for acc, size, number in points:  # ascending size: on the front if more accurate
        if not front or acc > front[-1][0]:
            front.append((acc, size, number))
    return front
