"""``python -m nas.export SEARCH_RUN --adaptive --out DIR``: one package, many operating
points (``search_spaces.AdaptiveModel`` runs it).

From a ``strategy=supernet`` search's parent run: its population table (every scored
candidate's estimates) and its supernet file (tag ``nas.supernet``, or ``--supernet``).

1. **Points** (``_adaptive_points``): by default the nested chain of 3-6 scored
   candidates whose estimated front has the largest hypervolume (when no 3 nest, the
   estimated front's members spread over its sizes); ``--points`` names trials instead.
   Points that do not nest are held as their union (the shared copy is the smallest
   architecture and compression containing them all), and the package says so.
2. Each point is derived as the search scored it: extracted from the supernet,
   compressed, BatchNorm re-estimated on the same training images. Its own artifact
   goes to ``points/<name>.dsz``: the bytes shipping it alone costs.
3. **The shared copy** keeps the union's compressed weights: for a nested chain, exactly
   the largest point's artifact (``keep="point"``). ``keep="fp32"`` stores the union
   uncompressed instead, so every point is derived from the very weights the search
   scored, at the cost of size: ``scripts/bench_adaptive.py`` measures both.
4. The package is written, loaded back, and every point derived from it and scored on
   val and test: those are the accuracies it records (and the one ONNX file per point,
   ``onnx/<name>.onnx``, is of the derived point).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.config import ConfigError, one_line
from nas.export._adaptive_points import (
    Candidate,
    front_spread,
    nested_chain,
    nests,
    read_population,
    union_of,
)
from nas.export._fetch import prepare_out_dir
from nas.export._resolve import (
    SearchRecord,
    check_request,
    connect,
    default_tracking_uri,
    search_record,
)
from nas.study import keys

__all__ = ["KEEPS", "export_adaptive"]

KEEPS = ("point", "fp32")
PACKAGE = "adaptive.dsza"


def export_adaptive(
    run_id: str,
    out: str | os.PathLike[str],
    *,
    tracking_uri: str | None = None,
    points: Sequence[int] | None = None,
    supernet: str | os.PathLike[str] | None = None,
    keep: str = "point",
    threads: int | None = None,
    max_points: int = 6,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write ``out/adaptive.dsza`` (and ``points/``, ``onnx/``, ``adaptive.json``) for
    the supernet search ``run_id``; returns the record (``adaptive.json``).

    Raises:
        ConfigError: one line, for anything the input got wrong.
    """
    say = log or (lambda m: print(f"export: {m}", file=sys.stderr, flush=True))
    out_dir = Path(out).expanduser().resolve()
    check_request(run_id, out_dir, retrain_epochs=0, trial=None, threads=threads)
    if keep not in KEEPS:
        raise ConfigError(f"--keep={keep!r} is not one of {list(KEEPS)}")
    if not 3 <= max_points:
        raise ConfigError(f"max_points={max_points} must be >= 3")
    uri = tracking_uri or default_tracking_uri()
    client = connect(uri)
    record = search_record(client, run_id, uri)
    weights = _weights_file(client, run_id, record, supernet)
    prepare_out_dir(out_dir)
    cands = _population(client, run_id, record)
    chosen = _choose(cands, points, record, max_points, say)
    is_nested = nests(chosen)
    how = "nested" if is_nested else "not nested: the package holds their union"
    say(f"{len(chosen)} points ({how}): trials {', '.join(str(c.trial) for c in chosen)}")
    from nas.export._adaptive_build import build_package

    return build_package(
        chosen, record, weights, out_dir / PACKAGE,
        keep=keep, nested=is_nested, threads=threads, say=say,
        provenance={"run_id": run_id, "study_name": record.study_name, "tracking_uri": uri,
                    "supernet": str(weights), "hypervolume_front": _front_hv(client, run_id),
                    "hv_ref": _hv_ref(record)},
        union=union_of(chosen),
    )  # fmt: skip


def _weights_file(
    client: Any, run_id: str, record: SearchRecord, given: str | os.PathLike[str] | None
) -> Path:
    strategy = (record.config or {}).get("strategy") or {}
    if strategy.get("name") != "supernet":
        raise ConfigError(
            f"run {run_id} is not a weight-sharing search (strategy="
            f"{strategy.get('name', '?')}); --adaptive needs a strategy=supernet search's run"
        )
    tag = client.get_run(run_id).data.tags.get(keys.TAG_SUPERNET)
    path = given or tag or strategy.get("checkpoint")
    if not path:
        raise ConfigError(
            f"run {run_id} does not say where its supernet is (tag {keys.TAG_SUPERNET}); "
            "pass --supernet PATH (the search's outputs/supernets/*.safetensors)"
        )
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"--supernet {p}: no such file (pass the search's supernet file)")
    return p


def _population(client: Any, run_id: str, record: SearchRecord) -> list[Candidate]:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "population.csv", tmp)
        except Exception as e:
            raise ConfigError(
                f"run {run_id} has no population.csv ({one_line(e, 120)}); is the search done?"
            ) from None
        device = (record.hw or {}).get("name")
        return read_population(Path(path), str(device) if device else None)


def _choose(
    cands: list[Candidate],
    points: Sequence[int] | None,
    record: SearchRecord,
    max_points: int,
    say: Callable[[str], None],
) -> list[Candidate]:
    if points is None:
        ref = _hv_ref(record)
        try:
            chosen = nested_chain(
                cands,
                ref_accuracy=ref["accuracy"],
                ref_size_bytes=ref["size_bytes"],
                max_points=max_points,
            )
        except ConfigError as e:
            if "nest" not in str(e):
                raise
            # Still one file: the union of the estimated front's spread, said so.
            chosen = front_spread(cands, max_points)
            if len(chosen) < 3:
                raise
            say(f"{e}; taking {len(chosen)} points of the estimated front instead")
    else:
        by_trial = {c.trial: c for c in cands}
        missing = [n for n in points if n not in by_trial]
        if missing:
            raise ConfigError(
                f"--points: trial(s) {missing} are not feasible scored candidates of the "
                "search (see its population.csv)"
            )
        chosen = sorted((by_trial[n] for n in dict.fromkeys(points)), key=lambda c: c.size_bytes)
    for c in chosen:
        c.check_derivable()
    return chosen


def _hv_ref(record: SearchRecord) -> dict[str, float]:
    """The search's hypervolume reference point (its dataset's)."""
    dataset = (record.config or {}).get("dataset") or {}
    return {
        "accuracy": float(dataset.get("hv_ref_accuracy", 0.0)),
        "size_bytes": float(dataset.get("hv_ref_size_bytes", float("inf"))),
    }


def _front_hv(client: Any, run_id: str) -> float | None:
    value = client.get_run(run_id).data.metrics.get("hypervolume")
    return None if value is None else float(value)
