"""Few-shot calibration of a latency model to a new device from 10-50 measured networks.

The setting is HELP's (Lee et al., "HELP: Hardware-Adaptive Efficient Latency
Prediction for NAS via Meta-Learning", NeurIPS 2021): a new device, a handful of
networks measured on it, and many measurements on other ("known") devices.
Instead of meta-learning, the new device's latency is modelled as an intercept
plus a non-negative combination of the known devices' fitted predictors::

    t_new(x) ~= a + sum_k w_k * t_k(x),   a >= 0, w_k >= 0

fitted by non-negative least squares on *relative* error, like
``LatencyPredictor.fit``. Each ``t_k`` is itself linear in the network's
per-operator-kind features, so the result is again a ``LatencyPredictor``
(coefficients ``sum_k w_k c_k``): it applies to any network built from the same
operator kinds, keeps the monotonicity of the known models, and has only 13
unknowns, few enough for 10 measurements. The non-negative solution is sparse
(at most as many non-zero weights as measurements), which is what regularizes it.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls
from scipy.stats import spearmanr

from nas.config import one_line
from nas.hw._features import layer_features
from nas.hw._predictor import FEATURE_NAMES, LatencyPredictor, _matrix, list_latency_devices

__all__ = [
    "Measurements",
    "arch_features",
    "calibrate_predictor",
    "known_predictors",
    "read_measurements",
]

MIN_MEASUREMENTS = 3


class Measurements:
    """Measured networks of one device: their features and latencies in ms."""

    def __init__(self, features: list[dict[str, float]], latency_ms: np.ndarray) -> None:
        self.features = features
        self.latency_ms = latency_ms

    def __len__(self) -> int:
        return len(self.features)


def known_predictors(
    *, exclude: Iterable[str] = (), path: str | Path | None = None
) -> dict[str, LatencyPredictor]:
    """The shipped per-device predictors (``latency_models.json``), minus ``exclude``."""
    skip = set(exclude)
    return {
        d: LatencyPredictor.load(d, path=path)
        for d in list_latency_devices(path=path)
        if d not in skip
    }


def calibrate_predictor(
    features: Sequence[Mapping[str, float]],
    latencies_ms: Sequence[float] | np.ndarray,
    *,
    device: str,
    known: Mapping[str, LatencyPredictor],
) -> LatencyPredictor:
    """Fit ``device``'s predictor as a non-negative combination of ``known`` ones.

    Args:
        features: ``network_features`` of each measured network.
        latencies_ms: its measured latency on the new device.
        device: the new device's name.
        known: the other devices' predictors; the new device must not be among them.

    Returns:
        A ``LatencyPredictor`` whose ``metrics`` hold the weights per known device,
        the number of measurements and the leave-one-out Spearman's rho and MAPE on
        them (an honest estimate of its accuracy, from the measurements alone).
    """
    y = np.asarray(latencies_ms, dtype=np.float64)
    if len(features) != len(y) or len(y) < MIN_MEASUREMENTS or np.any(~(y > 0)):
        raise ValueError(
            f"calibration needs >= {MIN_MEASUREMENTS} networks with one positive latency each; "
            f"got {len(features)} networks and {len(y)} latencies"
        )
    if device in known:
        raise ValueError(f"device {device!r} is among the known devices; exclude it first")
    if not known:
        raise ValueError("calibration needs at least one known device's predictor")
    names = sorted(known)
    basis = _basis(_matrix(features), [known[k] for k in names])
    weights = _fit(basis, y)
    loo = np.array([_loo_prediction(basis, y, i) for i in range(len(y))])
    coef = sum(
        (w * np.array([known[k].coefficients[n] for n in FEATURE_NAMES]))
        for w, k in zip(weights[:-1], names, strict=True)
    )
    intercept = weights[-1] + sum(
        w * known[k].intercept_ms for w, k in zip(weights[:-1], names, strict=True)
    )
    metrics: dict[str, Any] = {
        "method": "nnls on relative error over known-device predictors (HELP few-shot setting)",
        "n_measurements": int(len(y)),
        "weights": {k: float(w) for k, w in zip(names, weights[:-1], strict=True) if w > 0},
        "extra_intercept_ms": float(weights[-1]),
        "loo_mape": float(np.mean(np.abs(loo / y - 1.0))),
        "loo_spearman": float(spearmanr(loo, y)[0]) if len(y) > 2 else float("nan"),
    }
    return LatencyPredictor(
        device=device,
        intercept_ms=float(intercept),
        coefficients=dict(zip(FEATURE_NAMES, np.asarray(coef, dtype=float).tolist(), strict=True)),
        metrics=metrics,
    )


def arch_features(
    arch: Mapping[str, Any],
    *,
    space: str,
    image_size: int,
    in_chans: int = 3,
    num_classes: int = 10,
) -> dict[str, float]:
    """``network_features`` of architecture ``arch`` of search space ``space``."""
    from nas.hw._fbnet_data import IMAGE_SIZE, NUM_CLASSES, fbnet_network_features
    from nas.hw._predictor import network_features
    from search_spaces import InputSpec, get_search_space

    if (space, image_size, in_chans, num_classes) == ("fbnet", IMAGE_SIZE, 3, NUM_CLASSES):
        _check_fbnet_ops(arch)  # the cached path builds no model, so it checks the ops here
        return fbnet_network_features(list(arch["ops"]))  # cached per layer: 5,000 nets in ~5 s
    model = get_search_space(space).build(dict(arch), InputSpec(in_chans, image_size, num_classes))
    return network_features(layer_features(model, (1, in_chans, image_size, image_size)))


def read_measurements(
    path: str | Path,
    *,
    space: str = "fbnet",
    image_size: int = 32,
    in_chans: int = 3,
    num_classes: int = 100,
) -> Measurements:
    """Read a measurements CSV: columns ``arch`` (JSON), ``ms``, optional ``space``.

    ``arch`` is an architecture of the search space as JSON, e.g. ``{"ops": [...]}``
    for ``fbnet`` (22 op names); a ``space`` column overrides ``space`` per row.
    Every row is checked before any network's features are computed.

    Raises:
        ValueError: a file that is not a UTF-8 CSV, a missing column, a row whose arch
            is not a JSON object, whose ``ms`` is not a finite positive number, whose
            space is unknown or whose arch that space cannot build; the message names
            the row.
    """
    p = Path(path)
    rows = [_parse_row(p, line, row, space) for line, row in _read_rows(p)]
    features = []
    for line, arch, _, row_space in rows:
        try:
            features.append(
                arch_features(
                    arch,
                    space=row_space,
                    image_size=image_size,
                    in_chans=in_chans,
                    num_classes=num_classes,
                )
            )
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as err:
            raise ValueError(
                f"{p} line {line}: not a {row_space} architecture at "
                f"{in_chans}x{image_size}x{image_size}: {one_line(err)}"
            ) from None
    return Measurements(features, np.array([ms for _, _, ms, _ in rows]))


def _read_rows(p: Path) -> list[tuple[int, dict[str, str | None]]]:
    """The CSV's rows with their line numbers; ValueError if it is not a CSV with arch, ms."""
    try:
        with p.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            missing = {"arch", "ms"} - set(fields)
            if missing:
                raise ValueError(
                    f"{p}: missing column(s) {sorted(missing)}; need 'arch' and 'ms' "
                    f"(its header has {fields})"
                )
            return [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError:
        raise ValueError(
            f"{p} is not a UTF-8 text file; give a CSV with columns arch, ms"
        ) from None
    except csv.Error as err:
        raise ValueError(f"{p} is not a readable CSV: {err}") from None


def _parse_row(
    p: Path, line: int, row: dict[str, str | None], space: str
) -> tuple[int, dict[str, Any], float, str]:
    """``(line, arch, ms, space)`` of one CSV row, or ValueError naming the row."""
    from search_spaces import list_search_spaces

    where = f"{p} line {line}"
    if None in row:  # more cells than the header: an unquoted JSON's commas split it
        raise ValueError(
            f"{where}: more cells than the header's {len(row) - 1}; quote the arch JSON "
            '(write it as "{""ops"": [...]}")'
        )
    arch_text, ms_text = row.get("arch"), row.get("ms")
    if not arch_text or not ms_text:
        raise ValueError(f"{where}: empty arch or ms; every row needs both")
    try:
        arch = json.loads(arch_text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: arch is not JSON ({err})") from None
    if not isinstance(arch, dict):
        raise ValueError(f'{where}: arch must be a JSON object like {{"ops": [...]}}')
    try:
        ms = float(ms_text)
    except ValueError:
        raise ValueError(f"{where}: ms={ms_text!r} is not a number") from None
    if not (math.isfinite(ms) and ms > 0):
        raise ValueError(f"{where}: ms={ms_text} must be a finite number > 0")
    row_space = row.get("space") or space
    if row_space not in list_search_spaces():
        raise ValueError(
            f"{where}: space={row_space!r} is unknown; known: {', '.join(list_search_spaces())}"
        )
    return line, arch, ms, row_space


def _check_fbnet_ops(arch: Mapping[str, Any]) -> None:
    from search_spaces import FBNET_NUM_LAYERS, FBNET_OPS

    ops = arch.get("ops")
    if not isinstance(ops, list) or len(ops) != FBNET_NUM_LAYERS:
        got = f"{len(ops)} ops" if isinstance(ops, list) else f"ops={ops!r}"
        raise ValueError(
            f"fbnet arch needs 'ops': a list of {FBNET_NUM_LAYERS} op names, got {got}"
        )
    bad = sorted({str(op) for op in ops if op not in FBNET_OPS})
    if bad:
        raise ValueError(f"fbnet arch has unknown ops {bad}; known: {', '.join(FBNET_OPS)}")


def _basis(x: np.ndarray, predictors: Sequence[LatencyPredictor]) -> np.ndarray:
    cols = [
        x @ np.array([p.coefficients[n] for n in FEATURE_NAMES]) + p.intercept_ms
        for p in predictors
    ]
    return np.column_stack([*cols, np.ones(len(x))])


def _fit(basis: np.ndarray, y: np.ndarray) -> np.ndarray:
    design = basis / y[:, None]
    scale = np.abs(design).max(axis=0)
    scale[scale == 0] = 1.0
    w, _ = nnls(design / scale, np.ones_like(y), maxiter=50 * design.shape[1])
    return w / scale


def _loo_prediction(basis: np.ndarray, y: np.ndarray, i: int) -> float:
    keep = np.arange(len(y)) != i
    return float(basis[i] @ _fit(basis[keep], y[keep]))
