"""Say what a re-measured record replaced: write its ``previous`` block (issue 27).

A record re-measured over a committed one keeps the figures it replaced, so the results
page can print, under the record's source line, each figure before and now and why it
moved (``scripts/_results/_records.py``, ``Bench.changes``). This writes that block:
the figures' earlier values are read from the replaced record (by default the committed
file of the same name at ``--from``), their paths are checked in both, and the new
record is rewritten in place.

    python scripts/set_previous.py docs/bench/runner.json --from HEAD \\
        --figure parallel_speedup=parallel_speedup:.2f \\
        --figure "mean trial, local=setups.local.mean_trial_seconds:.1f" \\
        --why "Trials train in half the time they took; ..."

A figure is ``NAME=PATH[:FORMAT]``: PATH is dotted into the record (a list index is a
number), FORMAT a format spec (default ``.3g``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from _bench import REPO
from _results._records import at_path

__all__ = ["Figure", "main", "parse_figure", "previous_block"]

Figure = tuple[str, str, str]  # name, dotted path, format spec


def parse_figure(text: str) -> Figure:
    """``NAME=PATH[:FORMAT]`` as (name, path, format); ValueError names what is wrong."""
    name, sep, rest = text.rpartition("=")
    if not sep or not name or not rest:
        raise ValueError(f"--figure {text!r}: expected NAME=PATH[:FORMAT]")
    path, _, spec = rest.partition(":")
    return name, path, spec or ".3g"


def previous_block(
    new: dict[str, Any], old: dict[str, Any], figures: list[Figure], *, why: str, source: str
) -> dict[str, Any]:
    """The ``previous`` block of ``new`` replacing ``old``; ValueError when a path is in
    either record not, or its value does not take its format."""
    out = []
    for name, path, spec in figures:
        values = []
        for label, record in (("replaced", old), ("new", new)):
            try:
                value = at_path(record, path)
                format(value, spec)
            except (KeyError, IndexError, TypeError, ValueError) as e:
                raise ValueError(
                    f"figure {name!r}: path {path!r} in the {label} record: {type(e).__name__}"
                    f" {e} (a dotted path to a number, formatted with {spec!r})"
                ) from None
            values.append(value)
        out.append({"name": name, "path": path, "format": spec, "before": values[0]})
    return {"source": source, "figures": out, "why": why}


def _committed(path: Path, rev: str) -> tuple[dict[str, Any], str]:
    """The record at ``path`` as committed at ``rev``, and a line saying where it was."""
    rel = Path(os.path.relpath(path.resolve(), REPO)).as_posix()
    text = subprocess.run(
        ["git", "show", f"{rev}:{rel}"], cwd=REPO, capture_output=True, text=True
    )  # fmt: skip
    if text.returncode:
        raise SystemExit(f"set_previous.py: no {rel} at {rev}: {text.stderr.strip()}")
    old = json.loads(text.stdout)
    at = old.get("commit") or "an unrecorded commit"
    return old, f"the record measured at {at} on {old.get('date', 'an unrecorded date')}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("record", type=Path, help="the re-measured record, rewritten in place")
    p.add_argument("--from", dest="rev", default="HEAD",
                   help="the commit whose file of the same path was replaced (HEAD)")  # fmt: skip
    p.add_argument("--old", type=Path, default=None,
                   help="the replaced record as a file, instead of --from")  # fmt: skip
    p.add_argument("--figure", action="append", default=[], metavar="NAME=PATH[:FORMAT]")
    p.add_argument("--why", required=True, help="why the figures moved")
    p.add_argument("--note", default=None, help="also set the record's 'note'")
    args = p.parse_args(argv)
    if not args.figure:
        p.error("give at least one --figure NAME=PATH[:FORMAT]")
    try:
        figures = [parse_figure(f) for f in args.figure]
    except ValueError as e:
        p.error(str(e))
    new = json.loads(args.record.read_text())
    if args.old is not None:
        old = json.loads(args.old.read_text())
        source = f"the record measured at {old.get('commit', 'an unrecorded commit')}"
    else:
        old, source = _committed(args.record, args.rev)
    try:
        new["previous"] = previous_block(new, old, figures, why=args.why, source=source)
    except ValueError as e:
        print(f"set_previous.py: {e}", file=sys.stderr)
        return 2
    if args.note is not None:
        new["note"] = args.note
    tmp = args.record.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(new, indent=2) + "\n")
    tmp.replace(args.record)
    for f in new["previous"]["figures"]:
        now = at_path(new, f["path"])
        print(f"{f['name']}: {f['before']:{f['format']}} -> {now:{f['format']}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
