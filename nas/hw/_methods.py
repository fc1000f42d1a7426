"""The registry of latency methods (a profile's ``latency:`` value), light to import.

The methods themselves live in :mod:`nas.hw._profile` (they need torch); listing and
checking names here does not import them, so a config is validated before torch is.
"""

from __future__ import annotations

from typing import Any

from nas.config import Registry

__all__ = ["LATENCY_METHODS"]

LATENCY_METHODS: Registry[Any] = Registry(
    "hw.latency",
    lazy={
        "measure": "nas.hw._profile:_measure",
        "predict": "nas.hw._profile:_predict",
        "none": "nas.hw._profile:_none",
    },
)
"""``(hw, model, input_shape, *, bits, sparsity) -> ms`` by name."""
