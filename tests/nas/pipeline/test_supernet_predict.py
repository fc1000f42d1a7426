"""Choosing a supernet search's finalists: the predictor of finalised accuracy, refitted
as finalists land; covering the size range; the hypervolume each next one adds."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from nas.pipeline import _supernet_predict as predict
from nas.pipeline._supernet_predict import (
    FinaliseCost,
    FinalPredictor,
    landed,
    landed_costs,
    next_finalists,
    predict_final,
    scored_pool,
)
from nas.study import Point, hypervolume, keys

REF = (0.5, 10_000.0)
DISTS = {
    "width": FloatDistribution(0.25, 1.0),
    "bits": CategoricalDistribution([4, 8, 32]),
    "scope": CategoricalDistribution(["layer", "global"]),
    "channels": FloatDistribution(1.0, 1e6),  # a parameter that sets the size
}


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(directions=["maximize", "minimize"])


def _scored(
    study: optuna.Study,
    width: float,
    acc: float,
    size: float,
    *,
    bits: int = 8,
    ok: bool = True,
    macs: float | None = None,
) -> int:
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            params={"width": width, "bits": bits, "scope": "layer", "channels": size},
            distributions=DISTS,
            values=[acc, size],
            user_attrs={
                keys.PHASE: "score",
                keys.FEASIBLE: ok,
                keys.METRICS: {
                    "val_accuracy": acc,
                    "size_bytes": size,
                    **({} if macs is None else {"macs": macs}),
                },
            },
        )
    )
    return len(study.trials) - 1


def _final(
    study: optuna.Study,
    of: int,
    acc: float,
    size: float | None = None,
    seconds: float | None = None,
) -> int:
    scored = study.trials[of]
    size = size if size is not None else scored.user_attrs[keys.METRICS]["size_bytes"]
    metrics = {"val_accuracy": acc, "size_bytes": size}
    if seconds is not None:
        metrics.update(macs=scored.user_attrs[keys.METRICS]["macs"], trial_seconds=seconds)
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            params=scored.params,
            distributions=scored.distributions,
            values=[acc, size],
            user_attrs={
                keys.PHASE: "final",
                keys.FINALIST_OF: of,
                keys.FEASIBLE: True,
                keys.METRICS: metrics,
            },
        )
    )
    return len(study.trials) - 1


def test_record_keys_agree_with_nas_study_keys() -> None:
    assert predict._PHASE == keys.PHASE
    assert predict._FEASIBLE == keys.FEASIBLE
    assert predict._METRICS == keys.METRICS
    assert predict._FINALIST_OF == keys.FINALIST_OF
    assert predict._DEVICE_CONSTRAINTS == keys.DEVICE_CONSTRAINTS


def test_the_pool_is_each_feasible_candidate_once_and_never_a_finalised_one() -> None:
    study = _study()
    a = _scored(study, 0.25, 0.90, 1000)
    _scored(study, 0.25, 0.80, 1000)  # a again (the same parameters), scored lower
    b = _scored(study, 0.5, 0.92, 2000)
    _scored(study, 1.0, 0.99, 3000, ok=False)
    c = _scored(study, 1.0, 0.95, 4000)
    assert scored_pool(study).numbers == [a, b, c]
    _final(study, b, 0.93)
    pool = scored_pool(study)
    assert pool.numbers == [a, c] and list(pool.inherited) == [0.90, 0.95]
    assert landed(study) == [(b, 0.93, 2000.0, True)]


def test_with_no_finalist_landed_the_prediction_is_the_inherited_estimate() -> None:
    study = _study()
    for i, w in enumerate([0.25, 0.5, 0.75, 1.0]):
        _scored(study, w, 0.9 + 0.01 * i, 1000 * (i + 1))
    pool = scored_pool(study)
    mean, spread = predict_final(study, pool)
    np.testing.assert_allclose(mean, pool.inherited)
    assert np.all(spread > 0)  # the prior's: no finalist says how far to trust it


def test_the_predictor_learns_a_gain_that_grows_with_width() -> None:
    """Wide candidates inherit what narrow ones do, and gain more once finalised (the
    flat estimate issue 24 measured): six finalists teach the predictor so."""
    rng = np.random.default_rng(0)
    study = _study()
    numbers = [_scored(study, w, 0.95, 1000 * w) for w in rng.uniform(0.25, 1.0, 40)]
    for n in numbers[:6]:
        _final(study, n, 0.95 + 0.04 * study.trials[n].params["width"])
    pool = scored_pool(study)
    mean, _ = predict_final(study, pool)
    widths = np.array([p["width"] for p in pool.params])
    assert np.corrcoef(widths, mean)[0, 1] > 0.95
    wide, narrow = np.argmax(widths), np.argmin(widths)
    assert mean[wide] - mean[narrow] > 0.015


def test_fit_shrinks_to_no_gain_and_measures_its_noise() -> None:
    x = np.linspace(0, 1, 8)[:, None]
    fitted = FinalPredictor(x).fit(x, np.full(8, 0.02))
    gain, spread = fitted.predict(x)
    assert np.all((gain > 0.0) & (gain < 0.021))  # pulled towards the prior's zero
    assert fitted.noise >= predict._MIN_NOISE
    assert np.all(spread >= predict._MIN_NOISE)


def test_coverage_finalises_the_accurate_end_that_raw_estimates_rank_low() -> None:
    """The raw estimate favours the narrow candidates; covering the size range still
    finalises the best of the largest bin, and first."""
    study = _study()
    small = [_scored(study, 0.25, 0.97, s) for s in (100, 120, 140)]
    big = _scored(study, 1.0, 0.93, 5000)
    _scored(study, 1.0, 0.90, 6000)
    # Three bins over 100-6,000 bytes: the middle one is empty.
    assert next_finalists(study, cover=3, batch=1, ref=REF) == [big, small[0]]
    _final(study, big, 0.96)
    # Until `cover` have landed, the bins' next best (as now predicted).
    following = next_finalists(study, cover=3, batch=1, ref=REF)
    assert following[0] == big + 1 and following[1] in small and len(following) == 2


def test_after_coverage_each_next_finalist_adds_the_most_hypervolume() -> None:
    study = _study()
    a = _scored(study, 0.25, 0.90, 100)
    b = _scored(study, 0.5, 0.92, 1000)
    c = _scored(study, 1.0, 0.95, 5000)
    gap = _scored(study, 0.35, 0.93, 300)  # would fill the front's gap
    dominated = _scored(study, 0.5, 0.89, 2000)
    for n, acc in ((a, 0.90), (b, 0.92), (c, 0.95)):
        _final(study, n, acc)
    assert next_finalists(study, cover=3, batch=1, ref=REF) == [gap]
    batch = next_finalists(study, cover=3, batch=3, ref=REF)
    assert batch[0] == gap and dominated not in batch[:1]


def test_the_cost_model_fits_seconds_to_macs_in_log_log() -> None:
    macs = np.array([1e5, 1e6, 1e7, 1e8])
    fitted = FinaliseCost().fit(macs, 2.0 * macs**0.5 / 1e2)
    assert math.isclose(fitted.slope, 0.5, rel_tol=1e-9)
    np.testing.assert_allclose(fitted.predict(np.array([1e6, 4e6])), [20.0, 40.0], rtol=1e-9)
    # Too few, or all of one cost: every candidate costs the same (the floor).
    np.testing.assert_array_equal(FinaliseCost().fit(macs[:2], macs[:2]).predict(macs), 1.0)
    same = FinaliseCost().fit(np.full(4, 1e6), np.array([5.0, 6.0, 7.0, 8.0]))
    assert np.ptp(same.predict(macs)) == 0.0
    # A slope out of range is clipped: seconds do not fall as MACs grow.
    assert FinaliseCost().fit(macs, 1e9 / macs).slope == 0.0


def test_after_coverage_a_cheaper_finalist_goes_first_for_a_like_gain() -> None:
    """Two gaps in the front, the wide one adding somewhat more hypervolume but costing
    ten times the seconds: per second, the narrow one goes first. Without costs
    recorded (an older study), the wide one does."""

    def build(with_costs: bool) -> tuple[optuna.Study, int, int]:
        study = _study()
        ends = [(0.25, 0.90, 100, 1e5), (0.5, 0.92, 1000, 1e6), (1.0, 0.95, 5000, 1e7)]
        for width, acc, size, macs in ends:
            n = _scored(study, width, acc, size, macs=macs)
            _final(study, n, acc, seconds=3.0 * (macs / 1e5) if with_costs else None)
        cheap = _scored(study, 0.3, 0.915, 300, macs=2e5)
        dear = _scored(study, 0.75, 0.948, 1500, macs=2e6)
        return study, cheap, dear

    study, cheap, dear = build(with_costs=True)
    assert len(landed_costs(study)[0]) == 3
    assert next_finalists(study, cover=3, batch=1, ref=REF) == [cheap]
    study, cheap, dear = build(with_costs=False)
    assert next_finalists(study, cover=3, batch=1, ref=REF) == [dear]


def test_nothing_left_to_finalise_gives_none() -> None:
    study = _study()
    a = _scored(study, 0.25, 0.90, 100)
    _final(study, a, 0.91)
    assert next_finalists(study, cover=2, batch=2, ref=REF) == []


@pytest.mark.parametrize("seed", range(5))
def test_the_hypervolume_is_the_studys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    accs, sizes = rng.uniform(0.4, 1.0, 12), 10 ** rng.uniform(1, 4.5, 12)
    pts = [(float(a), float(s)) for a, s in zip(accs, sizes, strict=True)]
    want = hypervolume(
        [Point(i, a, s) for i, (a, s) in enumerate(pts)],
        ref_accuracy=REF[0],
        ref_size_bytes=REF[1],
    )
    assert math.isclose(predict._hv(pts, REF), want, rel_tol=1e-12, abs_tol=1e-12)
