"""Device profile files: one device's fitted ``LatencyPredictor`` in a JSON of its own.

Written by ``python -m nas.calibrate_hw`` (a new device from a few measured
networks) and ``python -m nas.profile_hw`` (this machine, from measured single
operators); loaded by ``+hw=custom hw.profile=<file>``. The layout is that of
``latency_models.json`` with a single device, plus ``device``, optional
advisory ``budgets`` and a ``provenance`` block, so ``LatencyPredictor.load(name,
path=file)`` reads it too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.hw._predictor import FEATURE_NAMES, LatencyPredictor

__all__ = ["read_device_profile", "write_device_profile"]

FORMAT = 1


def write_device_profile(
    predictor: LatencyPredictor,
    path: str | Path,
    *,
    provenance: Mapping[str, Any],
    budgets: Mapping[str, float | int | None] | None = None,
) -> Path:
    """Write ``predictor`` as a device profile JSON at ``path`` and return the path."""
    payload = {
        "format": FORMAT,
        "kind": "device_profile",
        "device": predictor.device,
        "feature_names": list(FEATURE_NAMES),
        "provenance": dict(provenance),
        "budgets": dict(budgets or {}),
        "devices": {predictor.device: predictor.to_dict()},
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    return out


def read_device_profile(path: str | Path) -> LatencyPredictor:
    """The predictor stored in a device profile JSON.

    Raises:
        ValueError: the file is not JSON or holds no single device's coefficients.
    """
    p = Path(path)
    try:
        payload = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"hw.profile={str(p)!r} is not a readable JSON file: {err}") from None
    devices = payload.get("devices") if isinstance(payload, dict) else None
    if not isinstance(devices, dict) or not devices:
        raise ValueError(f"hw.profile={str(p)!r} has no 'devices' entry with coefficients")
    name = payload.get("device") or next(iter(devices))
    if name not in devices:
        raise ValueError(f"hw.profile={str(p)!r}: device {name!r} is not among its 'devices'")
    try:
        return LatencyPredictor.from_dict(name, devices[name])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"hw.profile={str(p)!r}: bad entry for device {name!r}: {err}") from None
