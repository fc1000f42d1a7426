"""The registry of data-set loaders (``dataset=`` option), light to import.

The loaders live in :mod:`nas.pipeline._data` (they need torch and scikit-learn);
listing and checking names here imports neither, so a config naming an unknown
data set is refused before torch is imported.
"""

from __future__ import annotations

from typing import Any

from nas.config import Registry

__all__ = ["DATASETS"]

DATASETS: Registry[Any] = Registry(
    "dataset",
    lazy={
        name: f"nas.pipeline._data:_{name}"
        for name in ("mnist5k", "digits", "cifar10", "imagefolder")
    },
)
"""Loaders ``cfg -> (images, labels, fixed test part or None)`` by ``dataset=`` option."""
