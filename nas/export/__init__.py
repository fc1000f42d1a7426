"""Getting a model out of a search: a trial's MLflow run -> a deployable folder.

``python -m nas.export RUN_ID --out DIR`` (this package's ``__main__``), or
:func:`export_run` from Python. The steps live in modules named by role: resolve
(``_resolve``), fetch (``_fetch``), retrain (``_retrain``), ONNX (``_onnx``) and
write (``_readme``); ``_run`` strings them together. ``--adaptive`` (one package of
nested operating points of a supernet search) is ``_adaptive`` (choose the points),
``_adaptive_points`` (the nested chain) and ``_adaptive_build`` (derive and write).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_getattr

if TYPE_CHECKING:
    from nas.export._adaptive import export_adaptive
    from nas.export._resolve import default_tracking_uri
    from nas.export._retrain import configs_from_params
    from nas.export._run import ExportResult, export_run

_NAMES = {
    "export_adaptive": "nas.export._adaptive",
    "ExportResult": "nas.export._run",
    "configs_from_params": "nas.export._retrain",
    "default_tracking_uri": "nas.export._resolve",
    "export_run": "nas.export._run",
}

__all__ = [
    "ExportResult",
    "configs_from_params",
    "default_tracking_uri",
    "export_adaptive",
    "export_run",
]

__getattr__ = lazy_getattr(__name__, _NAMES)
