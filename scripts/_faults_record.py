"""The record of ``scripts/bench_faults.py``: one line per row, and the JSON it keeps.

Imported as ``from _faults_record import ...`` (``scripts/`` is first on ``sys.path``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _bench import Bench, write_json

__all__ = ["line", "write_record"]


def line(row: Any) -> str:
    """One row as a line (and what it failed, and said, below it)."""
    failed = [k for k, ok in row.checks.items() if not ok]
    return (
        f"{row.fault:16} {row.runner:6} {row.variant:10} exit {str(row.exit_code):>4}  "
        f"parent {row.parent_state or '-':9} finished {row.finished_before}->{row.finished_after}"
        f"  resumed {str(row.resumed):5} clean {str(row.clean):5} {row.seconds:6.1f} s"
        + (f"\n    not: {'; '.join(failed)}" if failed else "")
        + (f"\n    said: {row.said[:200]}" if row.said else "")
    )


def write_record(path: Path, rows: list[Any], faults: tuple[str, ...], bench: Bench) -> None:
    """Rows of this run replace those of the same fault, runner and variant."""
    old = json.loads(path.read_text()) if path.exists() else {}

    def key(r: dict[str, Any]) -> tuple[int, str, str]:
        return faults.index(r["fault"]), r["runner"], r["variant"]

    # Each row keeps where it was measured: a run of some faults replaces only theirs.
    measured = bench.provenance()
    measured["commit"] += "-dirty" if measured["dirty"] else ""  # as the record always said
    new = {key(asdict(r)): {**asdict(r), "measured": measured} for r in rows}
    kept = [r for r in old.get("rows", []) if key(r) not in new]
    record = {
        "what": "faults injected through the real command line, then the same command again",
        **measured,
        "rows": sorted([*kept, *new.values()], key=key),
    }
    write_json(path, record)
