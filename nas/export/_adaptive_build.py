"""Build an adaptive package from chosen points (``nas.export._adaptive`` chooses them):
derive each as the search scored it, write the package, load it back and score every
point from it. Imports torch; the module that chooses does not."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

import compress
from nas.config import ConfigError
from nas.export._adaptive_points import Candidate
from nas.export._resolve import SearchRecord
from nas.pipeline import (
    CheckpointError,
    accuracy,
    compression_configs,
    load_splits,
    load_supernet,
    recalibrate_bn,
)
from nas.study import Point, hypervolume
from search_spaces import (
    AdaptiveModel,
    OperatingPoint,
    SlicedSupernet,
    artifact_meta,
    bn_stats,
    encode_masks,
    save_adaptive,
    target_shapes,
)

__all__ = ["build_package"]


def describe(cfgs: list[Any]) -> list[dict[str, Any]]:
    """``compress`` configs as data: ``{"technique": <registry name>, **fields}``."""
    names = {compress.get_technique_config(n): n for n in compress.list_techniques()}
    return [{"technique": names[type(c)], **asdict(c)} for c in cfgs]


def build_package(
    chosen: list[Candidate],
    record: SearchRecord,
    weights: Path,
    path: Path,
    *,
    keep: str,
    nested: bool,
    threads: int | None,
    say: Callable[[str], None],
    provenance: dict[str, Any],
    union: tuple[dict[str, Any], dict[str, Any]],
) -> dict[str, Any]:
    torch.set_num_threads(int(threads or record.threads))
    splits = load_splits(record.dataset, seed=record.seed)
    try:
        supernet, have = load_supernet(weights, splits.spec)
    except CheckpointError as e:
        raise ConfigError(f"--supernet {weights}: {e}") from None
    strategy = (record.config or {}).get("strategy") or {}
    calib = splits.train.head(int(strategy.get("bn_calib_images", 500)))
    shape = (1, splits.spec.in_chans, splits.spec.image_size, splits.spec.image_size)

    def meta(arch: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        return artifact_meta(supernet.space, have["space_cfg"], arch, splits.spec, params)

    def inherited(arch: dict[str, Any], params: dict[str, Any]) -> nn.Module:
        model = supernet.extract(arch)
        model = compress.apply(model, compression_configs(params, shape)) or model
        recalibrate_bn(model, calib)
        return model

    models, points = _own_points(chosen, inherited, meta, shape, path.parent / "points")
    shared, bn = _shared(supernet, union, keep, chosen, models, inherited, points)
    masks = _masks(supernet, shared, chosen, shape, nested)
    args = dict(shared=shared, meta=meta(*union if keep == "point" else (union[0], {})),
                points=points, bn=bn, nested=nested, masks=masks)  # fmt: skip
    save_adaptive(path, **args)  # type: ignore[arg-type]
    _reestimate_bn(path, bn, calib)
    save_adaptive(path, **args)  # type: ignore[arg-type]
    scores = _score_package(path, splits)
    for p in points:
        p.val_accuracy = scores[p.name]["val_accuracy"]
        p.info["test_accuracy"] = scores[p.name]["test_accuracy"]
    size = save_adaptive(path, **args)  # type: ignore[arg-type]
    onnx = _write_onnx(path, shape)
    out = _record(points, size, keep, nested, provenance, len(splits.val), onnx)
    # What re-creates the search's splits (scripts/adaptive_demo.py serves its test part).
    out.update(dataset=asdict(record.dataset), seed=record.seed, splits=splits.sizes())
    (path.parent / "adaptive.json").write_text(json.dumps(out, indent=2) + "\n")
    say(
        f"wrote {path} ({size:,} bytes, {size / out['largest_point_bytes']:.2f}x its largest "
        f"point's own artifact; the points' own artifacts sum to {out['sum_separate_bytes']:,})"
    )
    return out


def _own_points(
    chosen: list[Candidate],
    inherited: Callable[[dict[str, Any], dict[str, Any]], nn.Module],
    meta: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    shape: tuple[int, ...],
    folder: Path,
) -> tuple[list[nn.Module], list[OperatingPoint]]:
    """Each point as the search scored it, its own artifact written to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    models, points = [], []
    for i, c in enumerate(chosen):
        model = inherited(c.arch, c.params)
        size = compress.export(model, folder / f"p{i}.dsz", meta=meta(c.arch, c.params))
        models.append(model)
        points.append(
            OperatingPoint(
                name=f"p{i}", arch=c.arch,
                compression=describe(compression_configs(c.params, shape)),
                size_bytes=size, val_accuracy=c.val_accuracy,
                latency_ms=dict(c.latency_ms), peak_memory_bytes=dict(c.peak_memory_bytes),
                info={"trial": c.trial, "val_accuracy_estimate": c.val_accuracy},
            )
        )  # fmt: skip
    return models, points


def _reestimate_bn(path: Path, bn: dict[str, torch.Tensor], calib: torch.Tensor) -> None:
    """Each stored point's BatchNorm statistics re-estimated on the point as the package
    at ``path`` derives it (its weights are the shared copy's, not the supernet's):
    measured to take the worst point from 35 val images off its estimate to 9."""
    package = AdaptiveModel.load(path)
    for name in bn:
        net = package.derive(name)
        recalibrate_bn(net, calib)
        bn[name] = bn_stats(net)


def _shared(
    supernet: SlicedSupernet,
    union: tuple[dict[str, Any], dict[str, Any]],
    keep: str,
    chosen: list[Candidate],
    models: list[nn.Module],
    inherited: Callable[[dict[str, Any], dict[str, Any]], nn.Module],
    points: list[OperatingPoint],
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The shared copy, and the BatchNorm statistics each point needs stored: for a
    nested chain kept as ``point``, the largest point's own model (whose statistics the
    shared copy then holds)."""
    arch, params = union
    same = [i for i, c in enumerate(chosen) if c.arch == arch and c.params == params]
    if keep == "point" and same:
        shared, owner = models[same[0]], points[same[0]].name
    elif keep == "point":
        shared, owner = inherited(arch, params), None
    else:
        shared, owner = supernet.extract(arch), None
    bn = {p.name: bn_stats(m) for p, m in zip(points, models, strict=True) if p.name != owner}
    return shared, bn


@torch.no_grad()
def _masks(
    supernet: SlicedSupernet,
    shared: nn.Module,
    chosen: list[Candidate],
    shape: tuple[int, ...],
    nested: bool,
) -> bytes:
    """The points' own pruning masks (the search's: magnitude masks of the fp32 weights),
    nested and packed (``search_spaces._adaptive_masks``)."""
    own = []
    for c in chosen:
        cfgs = [
            x for x in compression_configs(c.params, shape) if isinstance(x, compress.PruneConfig)
        ]
        model = compress.bake(supernet.extract(c.arch), cfgs)
        own.append({n: t != 0 for n, t in model.state_dict().items() if n in target_shapes(model)})
    base = {n: t.detach() != 0 for n, t in _evaluated(shared).items()}
    shapes = [{n: tuple(m.shape) for n, m in o.items()} for o in own]
    data, _ = encode_masks(base, own, shapes, nested=nested)
    return data


def _evaluated(model: nn.Module) -> dict[str, torch.Tensor]:
    """Each pruned/quantized weight as the forward pass sees it."""
    return {
        f"{name}.weight": m.weight.detach()
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    }


def _score_package(path: Path, splits: Any) -> dict[str, dict[str, float]]:
    model = AdaptiveModel.load(path)
    out = {}
    for p in model.points:
        net = model.derive(p)
        out[p.name] = {
            "val_accuracy": accuracy(net, splits.val),
            "test_accuracy": accuracy(net, splits.test),
        }
    return out


def _write_onnx(path: Path, shape: tuple[int, ...]) -> dict[str, int]:
    """One ONNX file per point, of the point as derived from the package (fp32)."""
    model = AdaptiveModel.load(path)
    folder = path.parent / "onnx"
    folder.mkdir(exist_ok=True)
    return {
        p.name: compress.export_onnx(model.derive(p), folder / f"{p.name}.onnx", input_shape=shape)
        for p in model.points
    }


def _record(
    points: list[OperatingPoint],
    size: int,
    keep: str,
    nested: bool,
    provenance: dict[str, Any],
    n_val: int,
    onnx: dict[str, int],
) -> dict[str, Any]:
    largest = max(points, key=lambda p: p.size_bytes)
    ref = provenance.get("hv_ref") or {}
    diffs = [round(abs(p.val_accuracy - p.info["val_accuracy_estimate"]) * n_val) for p in points]
    record: dict[str, Any] = {
        **provenance,
        "package_file": "adaptive.dsza",
        "package_bytes": size,
        "keep": keep,
        "nested": nested,
        "largest_point_bytes": largest.size_bytes,
        "package_bytes_ratio": size / largest.size_bytes,
        "sum_separate_bytes": sum(p.size_bytes for p in points),
        "val_images": n_val,
        "max_diff_val_images": max(diffs),
        "points_accuracy_match": max(diffs) <= 1,
        "points": [
            {**asdict(p), "onnx_bytes": onnx[p.name], "diff_val_images": d}
            for p, d in zip(points, diffs, strict=True)
        ],
    }
    if ref:
        hv = hypervolume(
            [Point(i, p.val_accuracy, p.size_bytes) for i, p in enumerate(points)],
            ref_accuracy=float(ref["accuracy"]), ref_size_bytes=float(ref["size_bytes"]),
        )  # fmt: skip
        front = provenance.get("hypervolume_front")
        record["hypervolume_points"] = hv
        record["hv_ratio"] = hv / front if front else None
    return record
