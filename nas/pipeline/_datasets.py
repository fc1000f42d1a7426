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
        **{f"{n}": f"nas.pipeline._data:_{n}" for n in ("mnist5k", "digits", "cifar10")},
        "imagefolder": "nas.pipeline._stream:_imagefolder",
    },
)
"""Loaders by ``dataset=`` option: ``cfg -> (images, labels, fixed test part or None)``,
or, for a streamed set (attribute ``streams``), ``(cfg, *, seed) -> Splits``."""
