"""scripts/set_previous.py writes the previous block the results page prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _results._records import Bench
from set_previous import main, parse_figure, previous_block

_OLD = {"commit": "aaa1111", "date": "2026-12-01", "speedup": 1.8, "runs": [{"hv": 0.12}]}
_NEW = {"commit": "bbb2222", "date": "2026-12-07", "speedup": 1.57, "runs": [{"hv": 0.14}]}


def test_a_figure_is_name_path_and_format() -> None:
    assert parse_figure("speedup=speedup:.2f") == ("speedup", "speedup", ".2f")
    assert parse_figure("hv, seed 0=runs.0.hv") == ("hv, seed 0", "runs.0.hv", ".3g")
    with pytest.raises(ValueError, match="expected NAME=PATH"):
        parse_figure("speedup")


def test_the_block_keeps_the_replaced_values_and_the_page_prints_both(tmp_path: Path) -> None:
    block = previous_block(
        _NEW, _OLD, [("speedup", "speedup", ".2f"), ("hv", "runs.0.hv", ".3f")],
        why="Faster trials.", source="the record measured at aaa1111",
    )  # fmt: skip
    assert [f["before"] for f in block["figures"]] == [1.8, 0.12]
    (tmp_path / "r.json").write_text(json.dumps({**_NEW, "previous": block}))
    bench = Bench(tmp_path, tmp_path / "results.md")
    bench.load("r.json")
    line = bench.changes("r.json")
    assert line == (
        "*Re-measured; since the record measured at aaa1111: speedup 1.80 → 1.57; "
        "hv 0.120 → 0.140. Faster trials.*"
    )


def test_a_path_missing_from_either_record_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="path 'runs.1.hv' in the replaced record"):
        previous_block(_NEW, _OLD, [("hv", "runs.1.hv", ".3f")], why="", source="")


def test_the_cli_rewrites_the_record_from_an_old_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    new.write_text(json.dumps(_NEW))
    old.write_text(json.dumps(_OLD))
    argv = [str(new), "--old", str(old), "--figure", "speedup=speedup:.2f", "--why", "W."]
    assert main([*argv, "--note", "A proxy."]) == 0
    written = json.loads(new.read_text())
    assert written["previous"]["source"] == "the record measured at aaa1111"
    assert written["note"] == "A proxy." and written["speedup"] == 1.57
    assert "speedup: 1.80 -> 1.57" in capsys.readouterr().out
    assert main([str(new), "--old", str(old), "--figure", "x=nope", "--why", "W."]) == 2
    assert "figure 'x': path 'nope' in the replaced record" in capsys.readouterr().err


def test_the_replaced_record_is_read_from_git_by_default() -> None:
    from _bench import REPO
    from set_previous import _committed

    old, source = _committed(REPO / "docs" / "bench" / "runner.json", "HEAD")
    assert old["commit"] and source == f"the record measured at {old['commit']} on {old['date']}"
    with pytest.raises(SystemExit, match="no docs/bench/nope.json at HEAD"):
        _committed(REPO / "docs" / "bench" / "nope.json", "HEAD")
