"""scripts/_bench.py: every benchmark runs on it, no script is over 450 lines, and the
harness resumes, records its provenance and shares the cores between jobs."""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

_SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
MAX_LINES = 450

import _bench  # noqa: E402  (scripts/ is on sys.path: conftest.py)


def _harness_use(path: Path) -> tuple[bool, bool]:
    """Whether ``path`` imports from ``_bench``, and whether it calls what it imported."""
    tree = ast.parse(path.read_text())
    names = {
        a.asname or a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "_bench"
        for a in node.names
    }
    called = any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names
        for node in ast.walk(tree)
    )
    return bool(names), called


@pytest.mark.parametrize("path", sorted(_SCRIPTS.glob("bench_*.py")), ids=lambda p: p.name)
def test_every_benchmark_uses_the_harness(path: Path) -> None:
    assert _harness_use(path) == (True, True)


def test_the_check_sees_a_script_without_the_harness(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import json\nprint(json.dumps({}))\n")
    (tmp_path / "b.py").write_text("from _bench import Bench\n")
    assert _harness_use(tmp_path / "a.py") == (False, False)
    assert _harness_use(tmp_path / "b.py") == (True, False)


def test_benchmarks_exist() -> None:
    assert len(list(_SCRIPTS.glob("bench_*.py"))) >= 14


def _reproduce_parts() -> set[str]:
    text = (_SCRIPTS / "reproduce.sh").read_text()
    block = text.split("PARTS=(", 1)[1].split(")", 1)[0]
    return set(block.split())


def test_reproduce_regenerates_every_record() -> None:
    parts = _reproduce_parts()
    assert {"search_supernet", "supernet_shift"} <= parts  # the parse found the list
    records = {p.stem for p in (_SCRIPTS.parent / "docs" / "bench").glob("*.json")}
    assert not records - parts, f"records without a part in reproduce.sh: {records - parts}"
    defined = set(re.findall(r"^part_(\w+)\(\)", (_SCRIPTS / "reproduce.sh").read_text(), re.M))
    assert parts <= defined, f"parts without a function: {parts - defined}"


@pytest.mark.parametrize("path", sorted(_SCRIPTS.glob("*.py")), ids=lambda p: p.name)
def test_no_script_is_over_450_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def _square(x: int, *, calls: Path) -> dict[str, Any]:
    with calls.open("a") as f:
        f.write(f"{x}\n")
    return {"y": x * x, "threads": os.environ.get("OMP_NUM_THREADS")}


def test_resume_skips_finished_units(tmp_path: Path) -> None:
    import functools

    calls = tmp_path / "calls.txt"
    fn = functools.partial(_square, calls=calls)
    path = lambda u: tmp_path / f"unit{u[0]}.json"  # noqa: E731
    first = _bench.run_units(fn, [(1,), (2,)], path)
    assert {u: r["y"] for u, r in first.items()} == {(1,): 1, (2,): 4}
    assert {"commit", "wall_s", "load_average"} <= set(first[1,])
    again = _bench.run_units(fn, [(1,), (2,), (3,)], path)
    assert calls.read_text().split() == ["1", "2", "3"]  # 1 and 2 loaded, not rerun
    assert again[1,] == json.loads(path((1,)).read_text()) == first[1,]
    assert list(again) == [(1,), (2,), (3,)]


def test_jobs_share_the_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert _bench.threads_per_job(2) == 4
    assert _bench.threads_per_job(16) == 1
    assert _bench.threads_per_job(2, 3) == 3
    monkeypatch.undo()
    fn = functools.partial(_square, calls=tmp_path / "calls.txt")
    done = _bench.run_units(fn, [(1,), (2,)], lambda u: tmp_path / f"{u[0]}.json", jobs=2)
    want = str(_bench.threads_per_job(2))
    assert [r["threads"] for r in done.values()] == [want, want]  # set in each job


def test_provenance_has_every_key() -> None:
    prov = _bench.provenance(_SCRIPTS / "bench_x.py", ["--quick"], overrides=["a=1"])
    assert set(prov) == set(_bench.PROVENANCE_KEYS)
    assert prov["command"] == "python scripts/bench_x.py --quick"
    assert prov["overrides"] == ["a=1"]
    assert isinstance(prov["dirty"], bool)
    assert len(prov["date"]) == 10 and prov["commit"] != "unknown"


def test_a_record_has_commit_and_date_and_keeps_its_own_keys(tmp_path: Path) -> None:
    bench = _bench.Bench(_SCRIPTS / "bench_x.py", ["--out", "x"])
    out = tmp_path / "sub" / "rec.json"
    bench.write({"figure": 1.5, "machine": "its own"}, out, markdown="| a |\n")
    rec = json.loads(out.read_text())
    assert rec["commit"] == _bench.git_commit() and rec["date"]
    assert rec["figure"] == 1.5 and rec["machine"] == "its own"
    assert set(_bench.PROVENANCE_KEYS) <= set(rec)
    assert out.with_suffix(".md").read_text() == "| a |\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["rec.json", "rec.md"]  # no tmp


def test_a_relative_workdir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A benchmark runs its searches with another working directory, where a relative
    --workdir would name another place (bench_runner's quick form lost its database so)."""
    import argparse

    monkeypatch.chdir(tmp_path)
    p = argparse.ArgumentParser()
    _bench.add_unit_args(p)
    args = p.parse_args(["--workdir", "work/runner"])
    assert args.workdir == tmp_path.resolve() / "work" / "runner"
    assert args.workdir.is_absolute()


def test_rewritten_records_do_not_make_the_tree_dirty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A benchmark after another in one checkout finds the records rewritten; its code is
    still the commit's. A changed source file does make it dirty."""
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "docs" / "bench").mkdir(parents=True)
    (tmp_path / "docs" / "bench" / "a.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init")
    monkeypatch.setattr(_bench, "REPO", tmp_path)
    assert not _bench.git_dirty()
    (tmp_path / "docs" / "bench" / "a.json").write_text('{"x": 1}')
    assert not _bench.git_dirty()
    (tmp_path / "code.py").write_text("x = 2\n")
    assert _bench.git_dirty()
