"""## Faults injected into a real search: what each leaves, and the resume (faults.json)."""

from __future__ import annotations

from typing import Any

from ._format import _n, _table
from ._records import Bench


def section(b: Bench) -> list[str]:
    """Issue 'faults': each fault injected through the real command line, then a resume."""
    d = b.load("faults.json")
    rows = d["rows"]
    failed = [r for r in rows if not _passed(r)]
    faults = sorted({r["fault"] for r in rows}, key=[r["fault"] for r in rows].index)
    runners = sorted({r["runner"] for r in rows})
    verdict = (
        f"**Every row held all its checks** ({len(rows)} of {len(rows)})."
        if not failed
        else f"**{_n(len(failed), 'row')} of {len(rows)} failed a check**: "
        + "; ".join(f"{_label(r)} (not: {', '.join(_failed(r))})" for r in failed)
        + "."
    )
    return [
        "## Faults injected into a real search",
        "",
        "    .venv/bin/python scripts/bench_faults.py --out docs/bench/faults.json"
        " [--faults NAME,... --runner local|ray|all]",
        "",
        f"{d['what'].capitalize()}: {_n(len(faults), 'fault')} ({', '.join(faults)}) on"
        f" {' and '.join(runners)}, {d['machine']}. A row passes when each of its checks"
        " holds (no process outlives the search, no traceback, the exit code, the parent"
        " and trial runs' states, and that the same command resumes and finishes keeping"
        " every finished trial). A run of some faults replaces only their rows, so each row"
        " says where it was measured. The README says what each fault leaves"
        " ([Reliability](../README.md#reliability-and-browsing)).",
        "",
        *_table(
            [
                "fault",
                "runner",
                "variant",
                "exit",
                "parent run",
                "trials finished, then resumed",
                "checks held",
                "s",
                "measured at",
            ],  # fmt: skip
            (
                [
                    r["fault"],
                    r["runner"],
                    r["variant"] or "-",
                    _opt(r["exit_code"]),
                    r["parent_state"] or "-",
                    f"{r['finished_before']}, then {r['finished_after']}",
                    f"{sum(r['checks'].values())} of {len(r['checks'])}",
                    f"{r['seconds']:.0f}",
                    _measured(r),
                ]
                for r in rows
            ),  # fmt: skip
        ),
        "",
        verdict,
    ]


def _passed(row: dict[str, Any]) -> bool:
    return bool(row["clean"]) and all(row["checks"].values())


def _failed(row: dict[str, Any]) -> list[str]:
    return [k for k, ok in row["checks"].items() if not ok] or ["clean"]


def _label(row: dict[str, Any]) -> str:
    return " ".join(x for x in (row["fault"], row["runner"], row["variant"]) if x)


def _opt(x: Any) -> str:
    return "-" if x is None or x == "" else str(x)


def _measured(row: dict[str, Any]) -> str:
    m = row.get("measured")
    return f"{m['commit']}, {m['date'][:10]}" if m else "not recorded"
