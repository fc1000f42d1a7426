"""Modelled energy per inference of a default search's front, against the fp32 LeNet-5.

A model, not a measurement (``nas.hw``'s energy model; the ``+hw=mobile`` profile's
table: Horowitz, ISSCC 2014, 45 nm). Reads the front of a finished search from
``DIR/outputs/<study>/pareto.csv`` (each member's architecture and compression), and
models each member's energy and the fp32 LeNet-5's (``search_spaces.LENET5``, the
baseline of ``scripts/baseline_lenet.py``) on the search's own input. Prints a table and
writes JSON with the commit and date::

    python -m nas.search +hw=mobile          # in DIR (the default search)
    python scripts/bench_energy.py DIR [--study NAME] [--out docs/bench/energy.json]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from _bench import Bench, git_commit

from nas import compose
from nas.hw import EnergyBreakdown, HardwareModel
from nas.pipeline import compression_configs, load_splits, space_from_cfg, structural_copy
from search_spaces import LENET5, get_search_space

PROFILE = "mobile"
PARTS = ("compute_uj", "weights_uj", "activations_uj")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="where the search ran (mlflow.db, outputs/)")
    p.add_argument("--study", help="the study's name (default: the only one in DIR/outputs)")
    p.add_argument("--command", default="python -m nas.search +hw=mobile", help="what ran there")
    p.add_argument("--note", help="what the record should say of how the search ran")
    p.add_argument("--out", type=Path, default=None, help="write the record here (JSON)")
    args = p.parse_args()
    bench = Bench(__file__)
    try:
        pareto = _pareto_csv(args.run_dir, args.study)
    except ValueError as e:
        print(f"bench_energy.py: {e}", file=sys.stderr)
        return 2
    record = measure(pareto, command=args.command)
    if args.note:
        record["note"] = args.note
    _print(record)
    if args.out is not None:
        bench.write(record, args.out, indent=1)
        print(f"wrote {args.out}")
    return 0


def measure(pareto: Path, *, command: str) -> dict[str, Any]:
    """The record: the energy of each front member of ``pareto`` and of the fp32 LeNet-5."""
    cfg = compose([f"+hw={PROFILE}"])
    hw = HardwareModel(cfg.hw)
    spec = load_splits(cfg.dataset, seed=int(cfg.search.seed)).spec
    shape = (1, spec.in_chans, spec.image_size, spec.image_size)
    space, _ = space_from_cfg(cfg.search_space)
    lenet = get_search_space("tiny").build(LENET5, spec)
    base = _parts(hw.energy(lenet, shape, bits=32))
    front = []
    with open(pareto, newline="") as f:
        for row in csv.DictReader(f):
            comp = _compression(row)
            model = structural_copy(space.build(json.loads(row["arch"]), spec),
                                    compression_configs(comp, shape))  # fmt: skip
            e = _parts(hw.energy(model, shape, bits=comp["bits"], sparsity=comp["sparsity"]))
            front.append({
                "trial": int(row["trial"]), "val_accuracy": float(row["val_accuracy"]),
                "test_accuracy": _float(row.get("test_accuracy")),
                "size_bytes": int(row["size_bytes"]), **comp, "arch": json.loads(row["arch"]),
                **e, "recorded_energy_uj": _float(row.get("energy_uj")),
                "lenet5_over_member": base["energy_uj"] / e["energy_uj"],
            })  # fmt: skip
    t = hw.energy_table
    return {
        "source": f"scripts/bench_energy.py on {pareto}",
        "command": command,
        "commit": git_commit(),
        "date": datetime.date.today().isoformat(),
        "study_name": pareto.parent.name,
        "model": {
            "table": t.name,
            "source": t.source,
            "profile": PROFILE,
            "activation_bytes": int(cfg.hw.activation_bytes),
            "sparse_speedup": bool(cfg.hw.sparse_speedup),
            "input": list(shape),
            "mac_pj": {str(b): t.mac_pj(b) for b in (2, 3, 4, 6, 8, 16, 32)},
        },  # fmt: skip
        "lenet5": {"params": sum(p.numel() for p in lenet.parameters()), "bits": 32, **base},
        "front": front,
    }


def _pareto_csv(run_dir: Path, study: str | None) -> Path:
    outputs = run_dir / "outputs"
    if study is None:
        found = sorted(p.parent.name for p in outputs.glob("*/pareto.csv"))
        if len(found) != 1:
            raise ValueError(f"{outputs} holds {len(found)} studies' fronts; pass --study NAME")
        study = found[0]
    path = outputs / study / "pareto.csv"
    if not path.is_file():
        raise ValueError(f"{path} does not exist; is {run_dir} a finished search's directory?")
    return path


def _compression(row: dict[str, str]) -> dict[str, Any]:
    """The member's compression params, as the search sampled them (absent: not drawn)."""
    return {
        "bits": int(row["bits"]),
        "sparsity": float(row.get("sparsity") or 0.0),
        "prune_kind": row.get("prune_kind") or "unstructured",
        "channel_ratio": float(row.get("channel_ratio") or 0.0),
        "rank_ratio": float(row.get("rank_ratio") or 1.0),
    }


def _parts(e: EnergyBreakdown) -> dict[str, Any]:
    return {
        "energy_uj": e.total_uj,
        **{k: getattr(e, k) for k in PARTS},
        "macs": e.macs,
        "weight_bytes": e.weight_bytes,
        "activation_traffic_bytes": e.activation_traffic_bytes,
        "weight_memory": e.weight_memory,
        "activation_memory": e.activation_memory,
    }


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _print(record: dict[str, Any]) -> None:
    base = record["lenet5"]
    print(f"{record['study_name']}: modelled energy per inference ({record['model']['table']})")
    print(f"{'':>14} {'val':>6} {'bits':>4} {'energy_uj':>10} {'compute':>8} {'weights':>8} "
          f"{'activ.':>8}  {'LeNet-5 / it':>12}")  # fmt: skip
    rows = [("fp32 LeNet-5", None, 32, base, None)]
    rows += [(f"trial {r['trial']}", r["val_accuracy"], r["bits"], r, r["lenet5_over_member"])
             for r in record["front"]]  # fmt: skip
    for name, acc, bits, e, ratio in rows:
        shown_acc = "" if acc is None else f"{acc:.3f}"
        shown_ratio = "" if ratio is None else f"{ratio:.1f}x"
        print(f"{name:>14} {shown_acc:>6} {bits:>4} {e['energy_uj']:>10.3f} "
              f"{e['compute_uj']:>8.3f} {e['weights_uj']:>8.3f} {e['activations_uj']:>8.3f}  "
              f"{shown_ratio:>12}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
