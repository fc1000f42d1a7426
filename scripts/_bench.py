"""The benchmark harness every ``scripts/bench_*.py`` runs on (issue 27).

A benchmark script is its measurement and its table; this module is the rest:

- **provenance** for every record (:func:`provenance`): the commit, whether the tree
  was dirty, the date, the machine, the exact command, the config overrides and the
  load average at start and end -- what the NAS best-practice checklist (Lindauer &
  Hutter, JMLR 2020) asks to know of every number;
- **records** written atomically with that provenance merged in at top level
  (:meth:`Bench.write`): ``commit`` and ``date`` are what ``make_results.py`` cites;
- **units of work** (strategy x seed x setting) run ``--jobs`` at a time in their own
  processes, threads set per job, each result kept in ``--workdir`` so a rerun resumes
  where the last one stopped (:func:`run_units`).

Imported as ``from _bench import ...`` (``scripts/`` is first on ``sys.path``). Light at
import (no torch): a script sets thread variables and refuses bad arguments first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "REPO",
    "Bench",
    "abs_path",
    "add_unit_args",
    "git_commit",
    "git_dirty",
    "load_average",
    "machine",
    "PROVENANCE_KEYS",
    "provenance",
    "run_units",
    "set_threads",
    "threads_per_job",
    "write_json",
]

REPO = Path(__file__).resolve().parents[1]
PROVENANCE_KEYS = (
    "commit",
    "dirty",
    "date",
    "machine",
    "command",
    "overrides",
    "load_average_start",
    "load_average_end",
)


def _git(*args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )  # fmt: skip
    return out.stdout.strip()


def git_commit() -> str:
    """The checkout's short commit ("unknown" outside git)."""
    return _git("rev-parse", "--short", "HEAD") or "unknown"


def git_dirty() -> bool:
    """Whether tracked files differ from the commit (untracked ones change no figure).

    The records and the page are outputs, not code: a benchmark run after another in the
    same checkout (reproduce.sh) finds them rewritten, and its code is still the commit's.
    """
    return bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", *_OUTPUTS))


_OUTPUTS = (":(exclude)docs/bench", ":(exclude)docs/results.md")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded (zeros where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return [0.0, 0.0, 0.0]


def machine() -> str:
    """What the figures ran on: architecture, cores and OS."""
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}"


def command(script: str | os.PathLike[str], args: Sequence[str]) -> str:
    """The command line as run, the script relative to the checkout where it lies in it."""
    path = Path(script).resolve()
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return shlex.join(["python", str(shown), *args])


def provenance(
    script: str | os.PathLike[str],
    args: Sequence[str],
    *,
    overrides: Sequence[str] = (),
    load_start: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Where a record came from: every key of ``PROVENANCE_KEYS``."""
    return {
        "commit": git_commit(),
        "dirty": git_dirty(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine(),
        "command": command(script, args),
        "overrides": list(overrides),
        "load_average_start": list(load_start) if load_start is not None else load_average(),
        "load_average_end": load_average(),
    }


def write_json(
    path: Path,
    obj: Any,
    *,
    indent: int = 2,
    default: Any = None,
    dumps: Callable[[Any], str] | None = None,
) -> None:
    """``obj`` as JSON at ``path`` (``dumps(obj)`` where a script lays it out itself),
    whole or not at all: written beside it, then renamed, so a Ctrl-C leaves no torn file."""
    text = dumps(obj) if dumps else json.dumps(obj, indent=indent, default=default) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Bench:
    """One benchmark run: its start (for the load average) and its record.

    Args:
        script: the benchmark's ``__file__``.
        args: its arguments as run (default ``sys.argv[1:]``).
        overrides: the config overrides its runs used (set later as ``bench.overrides``
            where they are known only after parsing).
    """

    def __init__(
        self,
        script: str | os.PathLike[str],
        args: Sequence[str] | None = None,
        *,
        overrides: Sequence[str] = (),
    ) -> None:
        self.script = script
        self.args = list(sys.argv[1:] if args is None else args)
        self.overrides = list(overrides)
        self.load_start = load_average()
        self.t0 = time.monotonic()

    def provenance(self) -> dict[str, Any]:
        return provenance(
            self.script, self.args, overrides=self.overrides, load_start=self.load_start
        )

    def seconds(self) -> float:
        return round(time.monotonic() - self.t0, 1)

    def write(
        self,
        record: dict[str, Any],
        out: Path | None,
        *,
        markdown: str | None = None,
        indent: int = 2,
        default: Any = None,
        dumps: Callable[[Any], str] | None = None,
    ) -> dict[str, Any]:
        """``record`` with the provenance merged in at top level, written to ``out``
        (and ``markdown`` beside it as ``.md``) when ``out`` is given.

        A key the record sets itself wins (e.g. a resumed benchmark's ``commit`` is its
        runs' commits), so every existing record key keeps its meaning.
        """
        merged = {**self.provenance(), **record}
        if out is not None:
            write_json(out, merged, indent=indent, default=default, dumps=dumps)
            if markdown is not None:
                out.with_suffix(".md").write_text(markdown)
        return merged


def abs_path(value: str) -> Path:
    """A path argument made absolute at once: a benchmark runs searches in other working
    directories, where a relative path would name another place."""
    return Path(value).expanduser().resolve()


def add_unit_args(
    p: argparse.ArgumentParser, *, workdir_help: str = "keep (and resume) runs here"
) -> None:
    """``--workdir`` and ``--jobs``, the same for every benchmark with units of work."""
    p.add_argument("--workdir", type=abs_path, default=None, help=workdir_help)
    p.add_argument(
        "--jobs", type=int, default=1,
        help="units side by side, each in its own process with cores // jobs threads",
    )  # fmt: skip


def threads_per_job(jobs: int, threads: int | None = None) -> int:
    """``threads`` if given, else the cores shared out evenly between ``jobs``."""
    if threads is not None:
        return max(1, threads)
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def set_threads(n: int) -> None:
    """This process's threads: the env (read when torch loads) and torch, if loaded."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:  # loaded already: the env is read too late
        sys.modules["torch"].set_num_threads(n)


def _run_one(
    fn: Callable[..., dict[str, Any]], unit: tuple[Any, ...], path: Path, threads: int | None
) -> dict[str, Any]:
    if threads is not None:
        set_threads(threads)
    t0 = time.monotonic()
    result = dict(fn(*unit))
    # Per unit: a resumed benchmark's units may predate its commit, or ran on a busier machine.
    result.setdefault("commit", git_commit())
    result.setdefault("wall_s", round(time.monotonic() - t0, 1))
    result.setdefault("load_average", load_average()[0])
    write_json(path, result, default=float)
    return result


def run_units(
    fn: Callable[..., dict[str, Any]],
    units: Sequence[tuple[Any, ...]],
    result_path: Callable[[tuple[Any, ...]], Path],
    *,
    jobs: int = 1,
    threads: int | None = None,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """``fn(*unit)`` for every unit not finished yet; every unit's result.

    A unit whose ``result_path(unit)`` exists is loaded, not rerun (a rerun with the same
    workdir resumes). Otherwise its result, with ``commit``, ``wall_s`` and
    ``load_average`` added, is written there atomically. With ``jobs > 1`` units run
    side by side in spawned processes (``fn`` must be importable), each with
    :func:`threads_per_job` threads; with one job they run here, threads as they are
    unless ``threads`` is given.
    """
    results: dict[tuple[Any, ...], dict[str, Any]] = {}
    todo = []
    for unit in units:
        path = result_path(unit)
        if path.exists():
            results[unit] = json.loads(path.read_text())
        else:
            todo.append(unit)
    if jobs <= 1:
        for unit in todo:
            results[unit] = _run_one(fn, unit, result_path(unit), threads)
        return {u: results[u] for u in units}
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    n = threads_per_job(jobs, threads)
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {u: pool.submit(_run_one, fn, u, result_path(u), n) for u in todo}
        for u, f in futures.items():
            results[u] = f.result()
    return {u: results[u] for u in units}
