"""The search driver: start-up checks, then the search itself (study, parent run,
runner, front, report)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_getattr

if TYPE_CHECKING:
    from nas.driver._preflight import preflight
    from nas.driver._search import run_search, study_name_of

_NAMES = {
    "preflight": "nas.driver._preflight",
    "run_search": "nas.driver._search",
    "study_name_of": "nas.driver._search",
}

__all__ = [
    "preflight",
    "run_search",
    "study_name_of",
]

__getattr__ = lazy_getattr(__name__, _NAMES)
