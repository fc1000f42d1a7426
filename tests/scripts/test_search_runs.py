"""bench_search's summary of a supernet search's finalists: how long they trained, and
how far the val figure they were kept by sits above their test accuracy."""

from __future__ import annotations

from typing import Any

from _search_runs import finalists


def _row(val: float, test: float, inherited: float | None, width: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "feasible": True, "val_accuracy": val, "test_accuracy": test,
        "size_bytes": 1e4, "params": {"width_mult": width}, "finetune": [4, 2],
    }  # fmt: skip
    if inherited is not None:
        row["inherited_val"] = inherited
    return row


def test_the_gaps_are_means_over_the_finalists_that_have_them() -> None:
    rows = [
        _row(0.98, 0.95, 0.99, 0.25),
        _row(0.96, 0.95, None, 0.5),  # recorded before inherited val was
        {"number": 3, "state": "COMPLETE", "feasible": True, "scored": True},
    ]
    out = finalists(rows)
    assert out is not None
    assert out["n"] == 2 and out["by_width"] == {"0.25": 1, "0.5": 1}
    assert out["val_test_gap_mean"] == 0.02  # (0.03 + 0.01) / 2
    assert (out["inherited_val_mean"], out["val_mean"]) == (0.99, 0.98)


def test_no_finalist_is_none() -> None:
    assert finalists([{"number": 0, "state": "FAIL"}]) is None


def test_finalists_the_searchs_end_stopped_are_counted_where_recorded() -> None:
    rows = [_row(0.98, 0.95, 0.99, 0.25), _row(0.97, 0.95, 0.99, 0.25)]
    out = finalists(rows)
    assert out is not None and "cut" not in out  # recorded before finalists were cut
    rows[0]["cut"], rows[1]["cut"] = True, False
    assert finalists(rows)["cut"] == 1  # type: ignore[index]
