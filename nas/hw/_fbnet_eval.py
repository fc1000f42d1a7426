"""Held-out-device evaluation of few-shot calibration on the 13 FBNet-space devices.

Protocol (HELP's few-shot setting): hold one device out; its column and lookup
table are used nowhere, and the known devices' predictors are those of the other
12 only. Calibrate on ``n`` of its networks drawn at random (seeded), predict all
the others, and report Spearman's rho and the share within +-10 %, averaged over
seeds. The baseline is the Pixel 3 table's own ranking (Raspberry Pi 4's when the
Pixel 3 is held out): scaling a table never changes its ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from nas.hw._calibrate import calibrate_predictor, known_predictors
from nas.hw._fbnet_data import fbnet_network_features, load_fbnet_latencies
from nas.hw._predictor import FEATURE_NAMES, _matrix

__all__ = ["calibration_holdout", "fbnet_feature_matrix"]


@cache
def fbnet_feature_matrix() -> np.ndarray:
    """Network features of the 5,000 FBNet networks, rows in CSV order."""
    return _matrix([fbnet_network_features(ops) for ops in load_fbnet_latencies().ops])


def calibration_holdout(
    device: str,
    *,
    n_samples: int,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    models_path: str | Path | None = None,
) -> dict[str, float]:
    """Calibrate ``device`` from ``n_samples`` of its networks; score on all the others.

    Returns:
        ``{"spearman", "within_10pct", "baseline_spearman"}``, means over ``seeds``.
    """
    data = load_fbnet_latencies()
    x = fbnet_feature_matrix()
    y = data.latency_ms[device]
    known = known_predictors(exclude=[device], path=models_path)
    reference = data.latency_ms["pixel3" if device != "pixel3" else "raspi4"]
    rho, within, base = [], [], []
    for seed in seeds:
        picked = np.random.default_rng(seed).choice(len(y), size=n_samples, replace=False)
        rest = np.setdiff1d(np.arange(len(y)), picked)
        feats = [dict(zip(FEATURE_NAMES, row.tolist(), strict=True)) for row in x[picked]]
        predictor = calibrate_predictor(feats, y[picked], device=device, known=known)
        coef = np.array([predictor.coefficients[n] for n in FEATURE_NAMES])
        predicted = x[rest] @ coef + predictor.intercept_ms
        rho.append(spearmanr(predicted, y[rest])[0])
        within.append(np.mean(np.abs(predicted / y[rest] - 1.0) <= 0.10))
        base.append(spearmanr(reference[rest], y[rest])[0])
    return {
        "spearman": float(np.mean(rho)),
        "within_10pct": float(np.mean(within)),
        "baseline_spearman": float(np.mean(base)),
    }
