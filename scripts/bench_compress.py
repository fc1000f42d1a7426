"""Benchmark ``compress``: a Deep Compression-style table on mnist5k, and int8 latency.

Rows (``"rows"``): LeNet-300-100 and LeNet-5 on ``mnist5k`` (1,000 test / 500 val /
3,500 train), each fp32; pruned; pruned + quantized; pruned + quantized + distilled.
Every row has the same training budget: ``DENSE_EPOCHS`` of dense training, then
``FINETUNE_EPOCHS`` more, both at the search's learning rate and weight decay (the
``train`` group). The dense model and the fp32 row's fine-tuning go through the
search's recipe (``nas.pipeline.train_compressed``, uncompressed). The other rows
fine-tune with the project's one training loop and gradual magnitude pruning on Zhu &
Gupta's cubic schedule, which the recipe's one-shot compression does not do:
quantization-aware with fake quantization, and for the last row a distillation loss
(``nas.pipeline.distiller``) whose teacher is the fp32 model of the same seed. So these
rows measure ``compress``'s gradual pruning, not a search trial's figure. Sizes are the
bytes ``compress.export`` wrote; accuracies are those of the model loaded back with
``compress.load``, averaged over the seeds. The sparsity and bits of each model were
chosen on the val split.

Latency (``"latency"``): timm ``mobilenetv3_small_050`` and ``resnet18`` (random init,
224 px, batch 1, one ONNX Runtime thread), dense and structurally pruned to about half
their MACs (``ChannelPruneConfig``), each in fp32 and in int8 (static QDQ, with the
graph rewrites of ``OnnxInt8Config(rewrite=True)``). The variants of a model are timed
in interleaved rounds, so machine load hits them alike; a round's figure is the median
of its runs, and ``p10``/``p90`` are over rounds. Latency is the CPU time of the
inference thread (``clock="thread"``), which, unlike wall time, does not count the
time other processes hold the core; wall-clock medians are reported too. The int8
accuracy is reported as agreement with fp32 on held-out inputs (random weights make
top-1 accuracy meaningless): top-1 agreement, cosine, largest logit difference.

Usage::

    python scripts/bench_compress.py [--out docs/bench/compress.json] [--quick]

writes the JSON and a Markdown table next to it (same stem, ``.md``). ``--quick``
(one seed, fewer epochs, mobilenetv3 only) takes about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _bench import Bench
from _common import logit_agreement, onnx_logits
from _compress_table import markdown
from torch import nn

import compress
from compress import (
    ChannelPruneConfig,
    GradualPruner,
    PruneConfig,
    PruneSchedule,
    QuantConfig,
    export_onnx,
    int8_mac_share,
    measure_onnx_latency_ms,
    weight_macs,
)
from nas import compose
from nas.pipeline import (
    Batches,
    Recipe,
    Splits,
    accuracy,
    distiller,
    load_splits,
    train,
    train_compressed,
)
from search_spaces import LENET5, LENET_300_100, get_search_space

LENETS = {"LeNet-300-100": LENET_300_100, "LeNet-5": LENET5}


@dataclass(frozen=True)
class LeNetCompression:
    """How one LeNet is compressed (chosen on the val split of seed 0)."""

    sparsity: float
    bits: int
    scope: str = "global"
    temperature: float = 4.0
    alpha: float = 0.7


# Global magnitude ranking prunes the small first conv and the classifier least, as
# Deep Compression's per-layer rates did (their weights are larger).
RECIPES = {
    "LeNet-300-100": LeNetCompression(sparsity=0.95, bits=3),
    "LeNet-5": LeNetCompression(sparsity=0.97, bits=4),
}
SCHEDULE = PruneSchedule(initial_sparsity=0.5, begin=0.0, end=0.6, every=4)
DENSE_EPOCHS, FINETUNE_EPOCHS, SEEDS = 8, 10, (0, 1, 2)
QUICK_DENSE_EPOCHS, QUICK_FINETUNE_EPOCHS, QUICK_SEEDS = 3, 4, (0,)

LATENCY_MODELS = ("mobilenetv3_small_050", "resnet18")
SHAPE = (1, 3, 224, 224)
PRUNE_RATIO = {"mobilenetv3_small_050": 0.3, "resnet18": 0.3}  # -> about half the MACs
# Kept widths are multiples of 8: the CPU kernels work in blocks of 8 (fp32) or more
# (int8) channels, and odd widths (45 of 64) barely beat the dense model.
ROUND_TO = 8


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="write JSON here (and a .md)")
    p.add_argument("--quick", action="store_true", help="1 seed, fewer epochs, 1 model")
    p.add_argument(
        "--only",
        choices=("rows", "latency"),
        default=None,
        help="run one part; the other is kept from an existing --out file",
    )
    args = p.parse_args()
    bench = Bench(__file__)
    torch.set_num_threads(1)
    start = time.monotonic()
    kept: dict[str, Any] = {}
    if args.only:
        if args.out is None or not args.out.exists():
            p.error(
                f"--only {args.only} keeps the other part from --out, and {args.out} does not exist"
            )
        kept = json.loads(args.out.read_text())
    dense_epochs, ft_epochs, seeds = (
        (QUICK_DENSE_EPOCHS, QUICK_FINETUNE_EPOCHS, QUICK_SEEDS)
        if args.quick
        else (DENSE_EPOCHS, FINETUNE_EPOCHS, SEEDS)
    )
    rows = (
        kept["rows"]
        if args.only == "latency"
        else lenet_rows(seeds=seeds, dense_epochs=dense_epochs, ft_epochs=ft_epochs)
    )
    models = LATENCY_MODELS[:1] if args.quick else LATENCY_MODELS
    latency = (
        kept["latency"]
        if args.only == "rows"
        else [e for m in models for e in latency_entries(m, quick=args.quick)]
    )
    meta = {
        "only": args.only,
        # The top-level commit is this run's; the part kept says where it was measured.
        "kept": _kept_provenance(kept, "rows" if args.only == "latency" else "latency")
        if args.only
        else None,
        "quick": args.quick,
        "seconds": round(time.monotonic() - start, 1),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "torch_threads": 1,
        "ort_threads": 1,
        "seeds": list(seeds),
        "dense_epochs": dense_epochs,
        "finetune_epochs": ft_epochs,
        "schedule": asdict(SCHEDULE),
        "recipes": {k: asdict(v) for k, v in RECIPES.items()},
    }
    md = markdown(rows, latency, meta)
    print(md)
    if args.out:
        record = {"rows": rows, "latency": latency, "meta": meta}
        bench.write(record, args.out, markdown=md, indent=1)
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


def _kept_provenance(kept: dict[str, Any], part: str) -> dict[str, Any]:
    """Where ``part`` of the record ``kept`` was measured: its own note when that record
    kept the part too, else that record's commit and date."""
    prior = (kept.get("meta") or {}).get("kept")
    if prior and prior.get("part") == part:
        return dict(prior)
    return {"part": part, "commit": kept.get("commit"), "date": kept.get("date")}


# --- Deep Compression-style table ----------------------------------------------------


def lenet_rows(
    *,
    seeds: tuple[int, ...],
    dense_epochs: int,
    ft_epochs: int,
    models: tuple[str, ...] = tuple(LENETS),
) -> list[dict[str, Any]]:
    cfg = compose(["dataset=mnist5k", "search_space=tiny"])
    splits = load_splits(cfg.dataset, seed=int(cfg.search.seed))
    space = get_search_space("tiny")
    recipe = Recipe.from_config(
        cfg.train, cfg.compress, default_lr=space.default_lr, epochs=dense_epochs
    )
    rows = []
    for name in models:
        arch = LENETS[name]
        results: dict[str, list[dict[str, Any]]] = {}
        for seed in seeds:
            for method, res in run_lenet(
                space,
                arch,
                splits,
                recipe,
                RECIPES[name],
                seed=seed,
                ft_epochs=ft_epochs,
            ).items():
                results.setdefault(method, []).append(res)
        fp32_bytes = results["fp32"][0]["size_bytes"]
        for method, runs in results.items():
            test = [r["test_accuracy"] for r in runs]
            size = max(r["size_bytes"] for r in runs)  # the largest of the seeds' artifacts
            rows.append(
                {
                    "model": name,
                    "method": method,
                    "size_bytes": size,
                    "ratio": fp32_bytes / size,
                    "test_accuracy": statistics.mean(test),
                    "test_accuracy_std": statistics.pstdev(test),
                    "val_accuracy": statistics.mean(r["val_accuracy"] for r in runs),
                    "sparsity": statistics.mean(r["sparsity"] for r in runs),
                    "bits": runs[0]["bits"],
                    "params": runs[0]["params"],
                    "nonzero_params": max(r["nonzero_params"] for r in runs),
                    "seeds": len(runs),
                    "epochs": dense_epochs + ft_epochs,
                }
            )
    return rows


def run_lenet(
    space: Any,
    arch: dict[str, Any],
    splits: Splits,
    recipe: Recipe,
    comp: LeNetCompression,
    *,
    seed: int,
    ft_epochs: int,
) -> dict[str, dict[str, Any]]:
    """Train one seed's dense model (``recipe.epochs``), then each row's fine-tuning from it."""
    # Seeds of the batch order: the dense training's, then every row's fine-tuning.
    dense_seed, ft_seed = seed * 100, seed * 100 + 1
    torch.manual_seed(seed)
    dense = space.build(arch, splits.spec)
    train_compressed(dense, splits, recipe, compression=[], seed=dense_seed)
    out: dict[str, dict[str, Any]] = {}
    teacher = copy.deepcopy(dense)
    ft_recipe = replace(recipe, epochs=ft_epochs)
    train_compressed(teacher, splits, ft_recipe, compression=[], seed=ft_seed)
    out["fp32"] = score(teacher, space, arch, splits, bits=32)
    teacher.eval()
    prune_cfg = PruneConfig(sparsity=comp.sparsity, scope=comp.scope)
    for method in ("pruned", "pruned+quantized", "pruned+quantized+distilled"):
        model = copy.deepcopy(dense)
        pruner = GradualPruner(model, prune_cfg, SCHEDULE)
        bits = 32
        if "quantized" in method:
            bits = comp.bits
            compress.apply(model, [QuantConfig(bits=bits)])
        loss_fn = None
        if "distilled" in method:
            loss_fn = distiller(teacher, temperature=comp.temperature, alpha=comp.alpha)
        torch.manual_seed(seed)
        # train_compressed compresses once, then fine-tunes; gradual pruning tightens the
        # masks after every optimizer step, so these rows call the training loop itself.
        batches = Batches(
            splits.x_train, splits.y_train, batch_size=recipe.batch_size, shuffle=True, seed=ft_seed
        )
        train(
            model,
            batches,
            epochs=ft_epochs,
            lr=recipe.lr,
            weight_decay=recipe.weight_decay,
            label_smoothing=recipe.label_smoothing,
            on_step=pruner,
            loss_fn=loss_fn,
        )
        out[method] = score(model, space, arch, splits, bits=bits)
    return out


def score(
    model: nn.Module, space: Any, arch: dict[str, Any], splits: Splits, *, bits: int
) -> dict[str, Any]:
    """Export, load back (a plain model), and measure the loaded model."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.dsz"
        size = compress.export(model, path, meta={"arch": arch})
        loaded = compress.load(path, lambda meta: space.build(meta["arch"], splits.spec))
    s = compress.stats(loaded)
    weights = [m.weight for m in loaded.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return {
        "size_bytes": size,
        "bits": bits,
        "params": s["params"],
        "nonzero_params": s["nonzero_params"],
        "sparsity": zeros / sum(w.numel() for w in weights),
        "test_accuracy": accuracy(loaded, splits.x_test, splits.y_test),
        "val_accuracy": accuracy(loaded, splits.x_val, splits.y_val),
    }


# --- int8 and structured-pruning latency --------------------------------------------


def latency_entries(name: str, *, quick: bool) -> list[dict[str, Any]]:
    import timm

    rounds, repeats, n_calib = (5, 10, 32) if quick else (15, 25, 128)
    torch.manual_seed(0)
    dense = timm.create_model(name, pretrained=False).eval()
    pruned = compress.apply(
        copy.deepcopy(dense), [ChannelPruneConfig(ratio=PRUNE_RATIO[name], round_to=ROUND_TO)]
    )
    gen = torch.Generator().manual_seed(1)
    calib = torch.randn(n_calib, *SHAPE[1:], generator=gen)
    held_out = torch.randn(16, *SHAPE[1:], generator=gen)
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        paths, sizes, macs = {}, {}, {}
        for variant, model in (("dense", dense), ("pruned", pruned)):
            for kind in ("fp32", "int8"):
                path = Path(tmp) / f"{variant}_{kind}.onnx"
                sizes[variant, kind] = export_onnx(
                    model, path, input_shape=SHAPE, int8=kind == "int8", calibration=calib
                )
                paths[variant, kind] = path
            macs[variant] = _macs(paths[variant, "fp32"])
        times = _interleaved(paths, rounds=rounds, repeats=repeats)
        agree = {
            v: _agreement(paths[v, "fp32"], paths[v, "int8"], held_out) for v in ("dense", "pruned")
        }
        base = float(np.median(times["dense", "fp32"]["thread"]))
        for (variant, kind), t in times.items():
            ms = float(np.median(t["thread"]))
            p10, p90 = np.percentile(t["thread"], [10, 50, 90])[[0, 2]]
            ref = float(np.median(times[variant, "fp32"]["thread"]))
            entries.append(
                {
                    "model": name,
                    "variant": f"{variant}-{kind}",
                    "fp32_ms": base,
                    "ms": ms,
                    "speedup": base / ms,
                    "p10_ms": float(p10),
                    "p90_ms": float(p90),
                    "speedup_p10_p90": _ratio_spread(times["dense", "fp32"]["thread"], t["thread"]),
                    "speedup_vs_same_fp32": ref / ms,
                    "wall_ms": float(np.median(t["wall"])),
                    "int8_mac_share": int8_mac_share(paths[variant, kind]),
                    "macs": macs[variant],
                    "mac_ratio": macs[variant] / macs["dense"],
                    "size_bytes": sizes[variant, kind],
                    **(agree[variant] if kind == "int8" else {}),
                }
            )
    return entries


def _interleaved(
    paths: dict[tuple[str, str], Path], *, rounds: int, repeats: int
) -> dict[tuple[str, str], dict[str, list[float]]]:
    times: dict[tuple[str, str], dict[str, list[float]]] = {
        k: {"thread": [], "wall": []} for k in paths
    }
    for _ in range(rounds):
        for k, path in paths.items():
            times[k]["thread"].append(
                measure_onnx_latency_ms(path, SHAPE, warmup=3, repeats=repeats, clock="thread")[0]
            )
            times[k]["wall"].append(
                measure_onnx_latency_ms(path, SHAPE, warmup=1, repeats=max(3, repeats // 5))[0]
            )
    return times


def _ratio_spread(base: list[float], other: list[float]) -> list[float]:
    """p10 and p90 of the per-round speedups (rounds pair the two variants in time)."""
    r = np.asarray(base) / np.asarray(other)
    return [float(v) for v in np.percentile(r, [10, 90])]


def _agreement(fp32: Path, int8: Path, x: torch.Tensor) -> dict[str, float]:
    a = logit_agreement(onnx_logits(fp32, x.numpy()), onnx_logits(int8, x.numpy()))
    return {
        "top1_agreement": a["top1_agreement"],
        "cosine_min": a["cosine_min"],
        "max_abs_logit_diff": a["max_abs_diff"],
        "max_abs_logit": a["max_abs_logit"],
    }


def _macs(path: Path) -> int:
    import onnx

    return sum(weight_macs(onnx.load(os.fspath(path))).values())


if __name__ == "__main__":
    sys.exit(main())
