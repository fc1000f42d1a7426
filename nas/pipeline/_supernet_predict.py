"""Which scored candidates a supernet search finalises next, and why.

Raw inherited accuracy is a biased guide to what a candidate becomes once finalised:
it barely rewards width (a wide child inherits about what a narrow one does, and
gains more from fine-tuning), and it punishes heavy compression that fine-tuning
largely repairs (docs/bench/supernet.json: 0.63 inherited, 0.83 finalised). OFA and
APQ choose sub-networks with a predictor fitted on measured sub-networks; here the
measured ones are the search's own finalists, and the predictor is refitted each time
one lands:

- :class:`FinalPredictor`, a Bayesian linear model of the *gain* (finalised val
  accuracy less inherited) from the candidate's encoding (architecture and compression
  parameters, inherited accuracy, log size). Its prior is no gain, so with no finalist
  landed it ranks by the raw estimate, and its predictive spread says how far to trust
  it.
- :func:`next_finalists` first covers the pool's whole size range (the best predicted
  candidate of each of ``k`` log-size bins, so a wide, accurate candidate is
  finalised even when no raw estimate puts it on the front), then orders the rest by
  the hypervolume each would add to the finalised front at an optimistic prediction
  (mean plus one spread) per second it is expected to take (:class:`FinaliseCost`), a
  batch at a time with the earlier picks assumed to land at their mean (a Kriging
  believer).

Per second, because the budget ends by the clock, not by a count: a finalist 0.25 wide
took 3-25 s (median 8), one 0.75 or 1.0 wide 8-83 s (median 25) over the three seeds of
docs/bench/search_supernet.json at 13ca037, and 73% of seed 0's finalising time went to
the 9 of its 24 finalists over 30 KB. Expected
improvement per second (Snoek, Larochelle and Adams, 2012) is the usual answer when
evaluations differ in cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.pipeline._context import feasible_on

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = [
    "CandidateEncoder", "FinalPredictor", "FinaliseCost", "Pool", "landed", "next_finalists",
    "scored_pool",
]  # fmt: skip

# Keys of a trial's record (nas.study.keys), read by value as pipeline sits below study;
# tests/nas/pipeline check that they agree.
_PHASE, _FEASIBLE, _METRICS = "nas.phase", "feasible", "metrics"
_FINALIST_OF, _DEVICE_CONSTRAINTS = "nas.finalist_of", "device_constraints"

# Prior spread of the gain's weights (standardised features) and of its intercept, and
# the least noise assumed: one val image in 500 is 0.002.
_PRIOR_W, _PRIOR_B, _MIN_NOISE = 0.01, 0.03, 0.004
_OPTIMISM = 1.0  # acquisition at mean + this many predictive spreads
# The cost model's slope (log seconds on log MACs) is kept within this range, and no
# finalist is expected to take under _MIN_COST_S (its export and evaluation alone).
_SLOPE, _MIN_COST_S = (0.0, 1.5), 1.0


@dataclass
class Pool:
    """The scored candidates not yet finalised, one trial per distinct candidate."""

    numbers: list[int]
    params: list[dict[str, Any]]
    inherited: np.ndarray
    size: np.ndarray
    macs: np.ndarray
    """Multiply-accumulates of one forward pass (its size where a trial lacks them)."""

    def __len__(self) -> int:
        return len(self.numbers)


def scored_pool(study: optuna.Study, device: str | None = None) -> Pool:
    """Feasible scored candidates (``device``'s, of a multi-device search), the best
    score of each distinct candidate, leaving out any already finalised or tried."""
    from optuna.trial import TrialState

    trials = _trials(study)
    tried = {t.user_attrs.get(_FINALIST_OF) for t in trials.values()
             if t.user_attrs.get(_PHASE) == "final" and t.state.is_finished()}  # fmt: skip
    best: dict[str, tuple[float, float, int, dict[str, Any], float]] = {}
    for t in trials.values():
        if t.state != TrialState.COMPLETE:
            continue
        if t.user_attrs.get(_PHASE) == "final" or not t.user_attrs.get(_FEASIBLE):
            continue
        if device is not None and device not in feasible_on(
            t.user_attrs.get(_DEVICE_CONSTRAINTS) or {}
        ):
            continue
        m = t.user_attrs.get(_METRICS) or {}
        acc, size = float(m.get("val_accuracy", 0.0)), float(m.get("size_bytes", math.inf))
        key = repr(sorted(t.params.items()))
        if key not in best or acc > best[key][0]:
            best[key] = (acc, size, t.number, dict(t.params), float(m.get("macs", size)))
    # A candidate finalised (or failed) under any of its scored trials is done.
    done = {k for k, v in best.items() if v[2] in tried}
    done |= {repr(sorted(trials[n].params.items())) for n in tried if n is not None}
    rows = sorted((v for k, v in best.items() if k not in done), key=lambda v: (v[1], v[2]))
    return Pool(
        numbers=[r[2] for r in rows],
        params=[r[3] for r in rows],
        inherited=np.array([r[0] for r in rows], dtype=float),
        size=np.array([r[1] for r in rows], dtype=float),
        macs=np.array([r[4] for r in rows], dtype=float),
    )


def landed(study: optuna.Study) -> list[tuple[int, float, float, bool]]:
    """The finalists that finished: (scored trial, finalised val accuracy, artifact
    bytes, feasible), in the order they landed."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        source = t.user_attrs.get(_FINALIST_OF)
        if t.user_attrs.get(_PHASE) != "final" or source is None:
            continue
        m = t.user_attrs.get(_METRICS) or {}
        if "val_accuracy" not in m:
            continue
        out.append((int(source), float(m["val_accuracy"]), float(m.get("size_bytes", math.inf)),
                    bool(t.user_attrs.get(_FEASIBLE))))  # fmt: skip
    return out


def landed_costs(study: optuna.Study) -> tuple[np.ndarray, np.ndarray]:
    """The MACs and the seconds (``trial_seconds``: fine-tuning, export, evaluation) of
    every landed finalist that recorded both."""
    from optuna.trial import TrialState

    macs, seconds = [], []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        m = t.user_attrs.get(_METRICS) or {}
        if t.user_attrs.get(_PHASE) == "final" and "macs" in m and "trial_seconds" in m:
            macs.append(float(m["macs"]))
            seconds.append(float(m["trial_seconds"]))
    return np.array(macs), np.array(seconds)


class FinaliseCost:
    """Seconds a finalist is expected to take, from its MACs: a line in log-log space
    fitted on the finalists that landed (the step time grows with the MACs, the epochs
    until the plateau vary about it). With fewer than 3 landed, or all of one cost,
    every candidate costs the same, so the choice is by hypervolume alone."""

    def __init__(self) -> None:
        self.slope, self.intercept = 0.0, 0.0

    def fit(self, macs: np.ndarray, seconds: np.ndarray) -> FinaliseCost:
        x = np.log(np.maximum(macs, 1.0))
        y = np.log(np.maximum(seconds, _MIN_COST_S))
        if len(x) < 3 or np.ptp(x) <= 0.0:
            return self
        slope = float(np.clip(np.polyfit(x, y, 1)[0], *_SLOPE))
        self.slope, self.intercept = slope, float(np.mean(y - slope * x))
        return self

    def predict(self, macs: np.ndarray) -> np.ndarray:
        logs = self.intercept + self.slope * np.log(np.maximum(macs, 1.0))
        return np.maximum(np.exp(logs), _MIN_COST_S)


class CandidateEncoder:
    """Candidate encoding: numeric parameters as they are, others one-hot (one column
    per value seen in ``params``), then inherited accuracy and log size. A parameter a
    candidate lacks (a conditional one) reads 0, or its own one-hot value."""

    def __init__(self, params: Sequence[dict[str, Any]]) -> None:
        self.columns: list[tuple[str, Any]] = []
        names = sorted({k for p in params for k in p})
        for name in names:
            values = [p.get(name) for p in params]
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                self.columns.append((name, None))
            else:
                for v in sorted({repr(v) for v in values}):
                    self.columns.append((name, v))

    def raw(self, params: Sequence[dict[str, Any]], inherited: np.ndarray,
            size: np.ndarray) -> np.ndarray:  # fmt: skip
        cols = [
            [
                float(p.get(name, 0.0)) if v is None else float(repr(p.get(name)) == v)
                for p in params
            ]  # fmt: skip
            for name, v in self.columns
        ]
        cols += [list(inherited), list(np.log(np.maximum(size, 1.0)))]
        return np.array(cols, dtype=float).T.reshape(len(params), len(cols))


class FinalPredictor:
    """Bayesian linear regression of finalised val accuracy less inherited (the gain).

    Features are standardised over the whole pool; the weights' prior is N(0, _PRIOR_W²)
    and the intercept's N(0, _PRIOR_B²), so few finalists move it little and none leave
    the raw estimate. The noise is the residual spread of the fit, at least
    ``_MIN_NOISE``.
    """

    def __init__(self, pool_x: np.ndarray) -> None:
        self.mu = pool_x.mean(axis=0) if len(pool_x) else np.zeros(pool_x.shape[1])
        sd = pool_x.std(axis=0) if len(pool_x) else np.ones(pool_x.shape[1])
        self.sd = np.where(sd > 1e-12, sd, 1.0)
        d = pool_x.shape[1] + 1
        self.mean = np.zeros(d)
        self.cov = np.diag([_PRIOR_B**2] + [_PRIOR_W**2] * (d - 1))
        self.noise = _MIN_NOISE
        self.n = 0

    def _design(self, x: np.ndarray) -> np.ndarray:
        return np.hstack([np.ones((len(x), 1)), (x - self.mu) / self.sd])

    def fit(self, x: np.ndarray, gain: np.ndarray) -> FinalPredictor:
        self.n = len(x)
        if not self.n:
            return self
        phi = self._design(x)
        prior_prec = np.diag(1.0 / np.diag(self.cov))
        for _ in range(2):  # noise from the fit's residuals, then the fit with it
            prec = prior_prec + phi.T @ phi / self.noise**2
            cov = np.linalg.inv(prec)
            mean = cov @ phi.T @ gain / self.noise**2
            resid = gain - phi @ mean
            self.noise = max(_MIN_NOISE, float(np.sqrt(np.mean(resid**2))))
        self.mean, self.cov = mean, cov
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted gain and its predictive spread, per row."""
        phi = self._design(x)
        var = np.einsum("ij,jk,ik->i", phi, self.cov, phi) + (self.noise**2 if self.n else 0.0)
        return phi @ self.mean, np.sqrt(var)


def predict_final(
    study: optuna.Study, pool: Pool, done: list[tuple[int, float, float, bool]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each pool member's predicted finalised val accuracy and its spread, from the
    predictor fitted on every finalist that has landed (``done``: :func:`landed`'s, if
    the caller has read it already)."""
    done = landed(study) if done is None else done
    trials = _trials(study)
    params = [*pool.params, *(dict(trials[n].params) for n, *_ in done)]
    enc = CandidateEncoder(params)
    x_pool = enc.raw(pool.params, pool.inherited, pool.size)
    predictor = FinalPredictor(x_pool)
    if done:
        inh, size = _scored_figures(trials, [n for n, *_ in done])
        x = enc.raw([dict(trials[n].params) for n, *_ in done], inh, size)
        predictor.fit(x, np.array([v for _, v, _, _ in done]) - inh)
    gain, spread = predictor.predict(x_pool)
    return np.clip(pool.inherited + gain, 0.0, 1.0), spread


def _trials(study: optuna.Study) -> dict[int, FrozenTrial]:
    """The study's trials by number, read in place: ``study.trials`` deep-copies every
    trial of the study on each call, which cost a finalist's choice 13-39 s (growing
    with each finalist) among ~2,000 scored candidates. Read only."""
    return {t.number: t for t in study.get_trials(deepcopy=False)}


def _scored_figures(
    trials: dict[int, FrozenTrial], numbers: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    ms = [trials[n].user_attrs.get(_METRICS) or {} for n in numbers]
    return (np.array([float(m.get("val_accuracy", 0.0)) for m in ms]),
            np.array([float(m.get("size_bytes", 1.0)) for m in ms]))  # fmt: skip


def next_finalists(
    study: optuna.Study,
    *,
    cover: int,
    batch: int,
    ref: tuple[float, float],
    device: str | None = None,
) -> list[int]:
    """The next scored trials to finalise, best first.

    While fewer than ``cover`` finalists have landed, the best predicted candidate of
    each of ``cover`` log-size bins spanning the pool; after that, up to ``batch`` by
    the hypervolume each adds to the finalised front (:func:`_value`) per second it is
    expected to take (:class:`FinaliseCost`). ``ref``: the search's (accuracy, size
    bytes) reference.
    """
    pool = scored_pool(study, device)
    if not len(pool):
        return []
    done = landed(study)
    mean, spread = predict_final(study, pool, done)
    if len(done) < cover:
        return _cover(pool, mean, cover)
    front = [(acc, size) for _, acc, size, feasible in done if feasible]
    optimistic = np.clip(mean + _OPTIMISM * spread, 0.0, 1.0)
    cost = FinaliseCost().fit(*landed_costs(study)).predict(pool.macs)
    picks: list[int] = []
    free = list(range(len(pool)))
    while free and len(picks) < batch:
        value = [_per_second(_value(front, optimistic[i], pool.size[i], ref), cost[i])
                 for i in free]  # fmt: skip
        i = free.pop(int(np.argmax(value)))
        picks.append(pool.numbers[i])
        front.append((float(mean[i]), float(pool.size[i])))  # believed to land at its mean
    return picks


def _value(
    front: list[tuple[float, float]], acc: float, size: float, ref: tuple[float, float]
) -> float:
    """The hypervolume a point at (``acc``, ``size``) adds; when none, how far it falls
    short (negative: the accuracy it lacks to reach the front at its size), so that the
    budget goes on to the nearest miss rather than ending early."""
    gain = _hv_gain(front, acc, size, ref)
    if gain > 0.0:
        return gain
    reach = max([ref[0], *(a for a, s in front if s <= size)])
    return -(reach - acc) - 1e-9


def _per_second(value: float, seconds: float) -> float:
    """A gain per expected second; a shortfall (no gain) stays as it is, so that the
    nearest miss, not the cheapest, goes next when nothing is expected to gain."""
    return value / seconds if value > 0.0 else value


def _cover(pool: Pool, mean: np.ndarray, k: int) -> list[int]:
    """The best predicted of each of ``k`` equal log-size bins, largest bin first (the
    accurate end is what raw estimates miss), then the smallest, and so on inwards.
    Empty bins are skipped."""
    logs = np.log(np.maximum(pool.size, 1.0))
    edges = np.linspace(logs.min(), logs.max(), k + 1)
    bins = np.clip(np.searchsorted(edges, logs, side="right") - 1, 0, k - 1)
    picks: list[int] = []
    order = [b for pair in zip(range(k - 1, -1, -1), range(k), strict=True) for b in pair]
    for b in dict.fromkeys(order):
        members = np.flatnonzero(bins == b)
        if len(members):
            picks.append(pool.numbers[int(members[np.argmax(mean[members])])])
    return picks


def _hv_gain(
    front: list[tuple[float, float]], acc: float, size: float, ref: tuple[float, float]
) -> float:
    """Hypervolume (accuracy above ``ref``, log10 size below it) that a point adds."""
    return _hv([*front, (acc, size)], ref) - _hv(front, ref)


def _hv(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    ref_acc, ref_x = ref[0], math.log10(ref[1])
    pts = sorted((math.log10(max(s, 1.0)), a) for a, s in points if a > ref_acc and s < ref[1])
    return _area(pts, ref_acc, ref_x)


def _area(pts: list[tuple[float, float]], ref_acc: float, ref_x: float) -> float:
    """The 2-D dominated area of (log10 size ascending, accuracy) points."""
    front: list[tuple[float, float]] = []
    for x, a in pts:  # ascending size: on the front if more accurate than all smaller
        if not front or a > front[-1][1]:
            front.append((x, a))
    return sum(
        ((front[i + 1][0] if i + 1 < len(front) else ref_x) - x) * (a - ref_acc)
        for i, (x, a) in enumerate(front)
    )
