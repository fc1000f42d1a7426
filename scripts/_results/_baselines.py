"""## fp32 baselines: the LeNets trained with the search's loop (baseline_lenet.json)."""

from __future__ import annotations

from ._format import (
    _int,
    _pm,
    _span,
    _table,
)
from ._records import Bench


def section(b: Bench) -> list[str]:
    d = b.load("baseline_lenet.json")
    rows = d["rows"]
    seeds = rows[0]["seeds"]
    per_param = [r["size_bytes"] / r["params"] for r in rows]
    return [
        "## fp32 baselines",
        "",
        "    .venv/bin/python scripts/baseline_lenet.py --seeds "
        + " ".join(str(s) for s in seeds)
        + " --out docs/bench/baseline_lenet.json",
        "",
        f"Each LeNet is trained with the search's training loop for {rows[0]['epochs']} epochs"
        f" on `{rows[0]['dataset']}`'s split, exported uncompressed and scored after loading"
        " the artifact back. The artifact is the plain fp32 export; deflate brings it to"
        f" {_span(per_param, '{:.2f}'.format)} bytes per parameter:",
        "",
        *_table(
            [
                "model",
                "params",
                "size_bytes (fp32 artifact)",
                f"test accuracy (mean ± std of {len(seeds)} seeds)",
            ],
            [
                [
                    r["model"],
                    _int(r["params"]),
                    _int(r["size_bytes"]),
                    _pm(r["test_accuracy"], r["test_accuracy_std"], 4),
                ]
                for r in rows
            ],
        ),
    ]
