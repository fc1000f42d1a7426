"""fp32 LeNet-5 and LeNet-300-100 on the search's own split, for comparison.

Trains each as a search trial would, uncompressed: ``nas.pipeline.train_compressed``
with the search's recipe (``train`` config group), exports it with ``compress.export``,
and scores the model loaded back from that file. Prints a table and writes JSON::

    python scripts/baseline_lenet.py [--dataset mnist5k] [--seeds 0 1 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from _common import train_uncompressed

import compress
from nas import compose
from nas.pipeline import Recipe, accuracy, load_artifact, load_splits
from search_spaces import LENET5, LENET_300_100, get_search_space, search_space_config


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    cfg = compose([f"dataset={args.dataset}", "search_space=tiny"])
    torch.set_num_threads(int(cfg.train.threads))
    splits = load_splits(cfg.dataset, seed=int(cfg.search.seed))
    space = get_search_space("tiny")
    space_cfg = asdict(search_space_config("tiny")())
    recipe = Recipe.from_config(cfg.train, cfg.compress, default_lr=space.default_lr)
    rows = []
    for name, arch in (("LeNet-300-100", LENET_300_100), ("LeNet-5", LENET5)):
        accs, size = [], 0
        for seed in args.seeds:
            model = train_uncompressed(space, arch, splits, recipe, seed=seed)
            meta = {"space": "tiny", "space_cfg": space_cfg, "arch": arch,
                    "spec": asdict(splits.spec)}  # fmt: skip
            with tempfile.TemporaryDirectory() as d:
                path = Path(d) / "model.dsz"
                size = compress.export(model, path, meta=meta)
                loaded = load_artifact(path)
            accs.append(accuracy(loaded, splits.x_test, splits.y_test))
        params = sum(p.numel() for p in model.parameters())
        rows.append({
            "model": name, "params": params, "size_bytes": size,
            "test_accuracy": statistics.mean(accs),
            "test_accuracy_std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
            "seeds": args.seeds, "epochs": recipe.epochs, "dataset": args.dataset,
        })  # fmt: skip
    print(f"{'model':<14} {'params':>8} {'size_bytes':>11} {'test_acc':>9}")
    for r in rows:
        print(f"{r['model']:<14} {r['params']:>8,} {r['size_bytes']:>11,} "
              f"{r['test_accuracy']:>9.4f}")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps({"rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
