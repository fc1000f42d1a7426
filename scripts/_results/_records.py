"""The JSON records of a bench directory, their links from the page, and their provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_RUN = "default_run.json"  # the one record --commit and --date apply to


class Bench:
    """The JSON records of one bench directory, and links to them from the page."""

    def __init__(self, bench_dir: Path, out: Path) -> None:
        self.dir = bench_dir
        self.out = out
        self._cache: dict[str, Any] = {}
        self.used: list[str] = []  # the records the current section read, in order

    def load(self, name: str) -> Any:
        if name not in self.used:
            self.used.append(name)
        if name not in self._cache:
            path = self.dir / name
            try:
                self._cache[name] = json.loads(path.read_text())
            except FileNotFoundError:
                raise SystemExit(f"make_results.py: {path} is missing") from None
            except json.JSONDecodeError as e:
                raise SystemExit(f"make_results.py: {path} is not JSON ({e})") from None
        return self._cache[name]

    def load_optional(self, name: str) -> Any | None:
        """The record, or None when its file does not exist (not yet benchmarked)."""
        if name not in self._cache and not (self.dir / name).exists():
            return None
        return self.load(name)

    def link(self, name: str) -> str:
        rel = Path(os.path.relpath(self.dir / name, self.out.parent)).as_posix()
        return f"[`{name}`]({rel})"

    def source(self, name: str, *, commit: str | None = None, date: str | None = None) -> str:
        data = self._cache[name]
        commit = commit or data.get("commit")
        date = date or data.get("date")
        c = f"commit {commit}" if commit else "commit not recorded"
        d = f"date {date}" if date else "date not recorded"
        return f"*Source: {self.link(name)}; {c}, {d}.*"

    def changes(self, name: str) -> str | None:
        """The record's ``previous`` block as one line: what changed beyond its spread
        since the record it replaced, figure by figure, and why (issue 27).

        ``previous`` is ``{"source": what was replaced, "figures": [{"name", "path"
        (dotted, into this record), "before", "format" (a format spec, default
        ".3g")}], "why": the reason}``; each figure's value now is read from the record
        itself, so the note cannot drift from it.
        """
        data = self._cache[name]
        prev = data.get("previous")
        if not prev:
            return None
        items = []
        for f in prev["figures"]:
            spec = f.get("format", ".3g")
            items.append(f"{f['name']} {f['before']:{spec}} → {at_path(data, f['path']):{spec}}")
        return f"*Re-measured; since {prev['source']}: {'; '.join(items)}. {prev['why']}*"


def at_path(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in a record (a list index is a number); a
    ``previous`` block's figures are read with it (here and by set_previous.py)."""
    for key in path.split("."):
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data


PROVENANCE = ("commit", "date")  # what every record must carry at its top level


def missing_provenance(bench_dir: Path) -> list[str]:
    """One line per record in ``bench_dir`` that lacks a top-level commit or date.

    Every figure on the page must be traceable to the code and the day that measured
    it (issue 27). The benchmark harness writes both at the top level of a record, so
    that is the one place looked at: a record that keeps them elsewhere is re-measured,
    not read specially.
    """
    problems = []
    for path in sorted(bench_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            problems.append(f"{path}: not JSON ({e})")
            continue
        # An empty value counts as missing: the page would print "not recorded" for it.
        missing = [k for k in PROVENANCE if not (isinstance(data, dict) and data.get(k))]
        if missing:
            problems.append(f"{path}: no top-level {' and no '.join(missing)}")
    return problems
