"""scripts/bench_compress.py: a run of one part says where the part it kept was measured
(the measurement itself is docs/bench/compress.json's, minutes long)."""

from __future__ import annotations

import bench_compress


def test_a_kept_part_names_the_record_that_measured_it() -> None:
    measured_both = {"commit": "aaa", "date": "d1", "meta": {"only": None}}
    assert bench_compress._kept_provenance(measured_both, "rows") == {
        "part": "rows", "commit": "aaa", "date": "d1",
    }  # fmt: skip


def test_a_part_kept_twice_keeps_its_first_provenance() -> None:
    # Latency timed at bbb kept the rows of aaa; timing it again at ccc keeps them still.
    kept_rows = {"part": "rows", "commit": "aaa", "date": "d1"}
    latency_only = {"commit": "bbb", "date": "d2", "meta": {"only": "latency", "kept": kept_rows}}
    assert bench_compress._kept_provenance(latency_only, "rows") == kept_rows
    # The other part of that record was measured by it.
    assert bench_compress._kept_provenance(latency_only, "latency")["commit"] == "bbb"
