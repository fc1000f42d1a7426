"""docs/results.md is generated from docs/bench/*.json and kept in step with them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = _ROOT / "scripts" / "make_results.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(_SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


def test_results_md_matches_the_bench_json() -> None:
    proc = _run("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_json_value_change_changes_the_page(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    shutil.copytree(_ROOT / "docs" / "bench", bench)
    out = tmp_path / "results.md"
    assert _run("--bench-dir", str(bench), "--out", str(out)).returncode == 0
    before = out.read_text()
    assert _run("--check", "--bench-dir", str(bench), "--out", str(out)).returncode == 0

    path = bench / "runner.json"
    runner = json.loads(path.read_text())
    old = f"**{runner['parallel_speedup']:.2f}x**"
    runner["parallel_speedup"] = 1.234
    path.write_text(json.dumps(runner))

    proc = _run("--check", "--bench-dir", str(bench), "--out", str(out))
    assert proc.returncode == 1
    assert "out of date" in proc.stderr
    assert out.read_text() == before  # --check writes nothing
    assert _run("--bench-dir", str(bench), "--out", str(out)).returncode == 0
    after = out.read_text()
    assert old in before and old not in after
    assert "**1.23x**" in after


def test_default_run_commit_and_date_flags(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    shutil.copytree(_ROOT / "docs" / "bench", bench)
    path = bench / "default_run.json"
    run = json.loads(path.read_text())
    del run["commit"], run["date"]
    path.write_text(json.dumps(run))
    out = tmp_path / "results.md"

    assert _run("--bench-dir", str(bench), "--out", str(out)).returncode == 0
    section = out.read_text().split("## Default search")[1].split("\n## ")[0]
    assert "commit not recorded, date not recorded" in section

    args = ("--bench-dir", str(bench), "--out", str(out), "--commit", "abc1234")
    assert _run(*args, "--date", "2027-01-02").returncode == 0
    section = out.read_text().split("## Default search")[1].split("\n## ")[0]
    assert "commit abc1234, date 2027-01-02" in section


def test_readme_links_only_to_sections_that_exist() -> None:
    readme = (_ROOT / "README.md").read_text()
    results = (_ROOT / "docs" / "results.md").read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", results, flags=re.M)
    }
    links = re.findall(r"docs/results\.md#([\w\-]+)", readme)
    assert links, "the README links to no section of docs/results.md"
    assert sorted(set(links) - anchors) == []
