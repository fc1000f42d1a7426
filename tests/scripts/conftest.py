"""The scripts import their private helpers (``_bench``, ``_common``, ...) by name, as
``python scripts/x.py`` does with ``scripts/`` first on ``sys.path``: so do the tests."""

from __future__ import annotations

import sys
from pathlib import Path

_SCRIPTS = str(Path(__file__).resolve().parents[2] / "scripts")
if _SCRIPTS not in sys.path:
    sys.path.insert(0, _SCRIPTS)
