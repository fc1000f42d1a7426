"""The sections of docs/results.md, each rendered from its records (issue 27).

One module per section of the page, in page order (``SECTIONS``): each reads its
records through a ``Bench`` and returns its lines, the prose that interprets a figure
beside the code that computes it. ``_format`` holds what several sections share,
``_targets`` the project's goals, ``_records`` the records and their provenance.
"""

from __future__ import annotations

from collections.abc import Callable

from . import (
    _adaptive,
    _baselines,
    _compression,
    _default_run,
    _devices,
    _distillation,
    _energy,
    _faults,
    _gpu,
    _latency,
    _runner,
    _search,
    _stream,
    _supernet,
)
from ._format import _wrap as wrap
from ._records import DEFAULT_RUN, Bench, missing_provenance
from ._targets import TARGETS

__all__ = ["DEFAULT_RUN", "SECTIONS", "TARGETS", "Bench", "missing_provenance", "wrap"]

# The page's sections, top to bottom: each returns its heading, then its body.
SECTIONS: list[Callable[[Bench], list[str]]] = [
    _default_run.section,
    _baselines.section,
    _compression.section,
    _latency.section,
    _search.section,
    _supernet.section,
    _adaptive.section,
    _devices.section,
    _energy.section,
    _runner.section,
    _gpu.section,
    _stream.section,
    _faults.section,
    _distillation.section,
]
