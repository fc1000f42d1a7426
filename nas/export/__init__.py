"""Getting a model out of a search: a trial's MLflow run -> a deployable folder.

``python -m nas.export RUN_ID --out DIR`` (this package's ``__main__``), or
:func:`export_run` from Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_getattr

if TYPE_CHECKING:
    from nas.export._run import ExportResult, configs_from_params, default_tracking_uri, export_run

_NAMES = {
    "ExportResult": "nas.export._run",
    "configs_from_params": "nas.export._run",
    "default_tracking_uri": "nas.export._run",
    "export_run": "nas.export._run",
}

__all__ = [
    "ExportResult",
    "configs_from_params",
    "default_tracking_uri",
    "export_run",
]

__getattr__ = lazy_getattr(__name__, _NAMES)
