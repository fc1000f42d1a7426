"""One trial, as one straight path: sample -> feasibility -> train -> compress ->
fine-tune -> export -> evaluate the artifact in a fresh process.

See ``STYLE.md`` ("The shape of the system"). Nothing here knows about MLflow or
the runner; :func:`run_trial` returns a :class:`TrialResult` the caller records.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import compress
from nas._config import CompressSearchConfig, HwConfig
from nas._data import Batches, Splits
from nas._evaluator import ArtifactEvaluator
from nas._train import train
from nas.hw import HardwareModel, count_macs
from search_spaces import Arch, InputSpec, SearchSpace, Suggest

__all__ = [
    "TrialContext",
    "TrialResult",
    "build_from_meta",
    "hw_constraints",
    "run_trial",
    "space_from_cfg",
    "sample_compression",
]


@dataclass
class TrialContext:
    """Everything a trial needs; built once per search."""

    space: SearchSpace
    space_cfg: dict[str, Any]
    splits: Splits
    compress_cfg: CompressSearchConfig
    train_cfg: Any
    bits: list[int]
    hw: HardwareModel | None
    hw_cfg: HwConfig | None
    evaluator: ArtifactEvaluator
    artifact_dir: Path
    seed: int = 0
    trial_timeout_s: float | None = None


@dataclass
class TrialResult:
    feasible: bool
    arch: Arch
    compression: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)
    artifact: str | None = None
    test_accuracy: float | None = None

    @property
    def values(self) -> tuple[float, float]:
        """The objectives: (val_accuracy to maximize, size_bytes to minimize)."""
        return self.metrics["val_accuracy"], self.metrics["size_bytes"]


def sample_compression(
    suggest: Suggest, cfg: CompressSearchConfig, bits: list[int]
) -> tuple[dict[str, Any], list[Any]]:
    """Draw the compression part of a candidate: (scalar params, compress configs)."""
    sparsity = 0.0
    if cfg.sparsity_max > 0:
        sparsity = suggest.suggest_float("sparsity", cfg.sparsity_min, cfg.sparsity_max)
    scopes = list(cfg.prune_scopes)
    scope = suggest.suggest_categorical("prune_scope", scopes) if len(scopes) > 1 else scopes[0]
    b = int(suggest.suggest_categorical("bits", sorted(bits)))
    params: dict[str, Any] = {"sparsity": round(sparsity, 4), "prune_scope": scope, "bits": b}
    cfgs: list[Any] = []
    if sparsity > 0:
        cfgs.append(compress.PruneConfig(sparsity=sparsity, scope=scope))
    if b != 32:
        cfgs.append(compress.QuantConfig(bits=b))
    return params, cfgs


def hw_constraints(
    hw: HwConfig, *, size_bytes: float, latency_ms: float, peak_memory_bytes: float
) -> dict[str, float]:
    """Optuna-style constraint values (feasible when <= 0), relative to each budget.

    Relative values keep the three constraints on one scale for the samplers.
    """
    out: dict[str, float] = {}
    for key, value, budget in (
        ("size_bytes", size_bytes, hw.size_budget_bytes),
        ("latency_ms", latency_ms, hw.latency_budget_ms),
        ("peak_memory_bytes", peak_memory_bytes, hw.peak_memory_budget_bytes),
    ):
        if budget is not None:
            out[key] = float(value) / float(budget) - 1.0
    return out


def space_from_cfg(node: Any) -> tuple[SearchSpace, dict[str, Any]]:
    """The search space a ``search_space`` config node describes, and its plain ranges."""
    from omegaconf import OmegaConf

    from search_spaces import get_search_space, search_space_config

    ranges: dict[str, Any] = dict(OmegaConf.to_container(node, resolve=True))  # type: ignore[arg-type]
    name = str(ranges.pop("name"))
    return get_search_space(name, search_space_config(name)(**ranges)), ranges


def build_from_meta(meta: dict[str, Any]) -> nn.Module:
    """Rebuild the uncompressed model an artifact's header describes."""
    from search_spaces import get_search_space, search_space_config

    name = meta["space"]
    space = get_search_space(name, search_space_config(name)(**meta["space_cfg"]))
    return space.build(meta["arch"], InputSpec(**meta["spec"]))


def run_trial(suggest: Suggest, ctx: TrialContext, *, number: int) -> TrialResult:
    """Evaluate one candidate; constraints go to ``suggest.set_constraint`` when it has one."""
    start = time.monotonic()
    deadline = None if ctx.trial_timeout_s is None else start + ctx.trial_timeout_s
    spec = ctx.splits.spec
    input_shape = (1, spec.in_chans, spec.image_size, spec.image_size)

    arch = ctx.space.sample(suggest)
    comp_params, comp_cfgs = sample_compression(suggest, ctx.compress_cfg, ctx.bits)
    torch.manual_seed(ctx.seed + number)
    model = ctx.space.build(arch, spec)
    meta = {
        "space": ctx.space.name,
        "space_cfg": ctx.space_cfg,
        "arch": arch,
        "spec": asdict(spec),
        "compression": comp_params,
    }

    # Feasibility first: everything a budget constrains is known before training.
    est_size = compress.estimate_size_bytes(model, comp_cfgs, meta=meta)
    stats = compress.stats(model)
    metrics: dict[str, float] = {
        "size_bytes_estimate": float(est_size),
        "params": float(stats["params"]),
        "macs": float(count_macs(model, input_shape)),
    }
    constraints: dict[str, float] = {}
    if ctx.hw is not None and ctx.hw_cfg is not None:
        latency = ctx.hw.latency_ms(model, input_shape)
        peak = ctx.hw.peak_memory_bytes(model, input_shape)
        metrics["latency_ms_estimate"] = latency
        metrics["peak_memory_bytes"] = float(peak)
        constraints = hw_constraints(
            ctx.hw_cfg, size_bytes=est_size, latency_ms=latency, peak_memory_bytes=peak
        )
        set_constraint = getattr(suggest, "set_constraint", None)
        if set_constraint is not None:
            for key, value in constraints.items():
                set_constraint(key, value)
    metrics["feasibility_seconds"] = time.monotonic() - start
    if any(v > 0 for v in constraints.values()):
        metrics.update(val_accuracy=0.0, size_bytes=float(est_size))
        return TrialResult(False, arch, comp_params, metrics, constraints)

    # Train, compress, fine-tune: one loop, compression adds parametrizations.
    t = ctx.train_cfg
    batches = Batches(
        ctx.splits.x_train,
        ctx.splits.y_train,
        batch_size=t.batch_size,
        shuffle=True,
        seed=ctx.seed + number,
    )
    stats_train = train(
        model,
        batches,
        epochs=t.epochs,
        lr=t.lr or ctx.space.default_lr,
        weight_decay=t.weight_decay,
        label_smoothing=t.label_smoothing,
        deadline=deadline,
    )
    train_seconds = stats_train.seconds
    compress.apply(model, comp_cfgs)
    if comp_cfgs and ctx.compress_cfg.finetune_epochs > 0:
        stats_ft = train(
            model,
            batches,
            epochs=ctx.compress_cfg.finetune_epochs,
            lr=ctx.compress_cfg.finetune_lr,
            weight_decay=0.0,
            deadline=deadline,
        )
        train_seconds += stats_ft.seconds

    # Honest numbers: the bytes written, and accuracy of the model loaded back from them.
    ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.artifact_dir / f"trial_{number:05d}.dsz"
    size = compress.export(model, path, meta=meta)
    final = compress.stats(model)
    evaluated = ctx.evaluator.evaluate(path, deadline=deadline)
    metrics.update(
        val_accuracy=evaluated["val_accuracy"],
        size_bytes=float(size),
        nonzero_params=float(final["nonzero_params"]),
        train_seconds=train_seconds,
        trial_seconds=time.monotonic() - start,
    )
    if ctx.hw is not None:
        # Same structure as before training, so the estimate is the final figure, except
        # for measured latency, which is taken again on the trained, compressed model.
        metrics["latency_ms"] = (
            ctx.hw.latency_ms(model, input_shape)
            if ctx.hw_cfg is not None and ctx.hw_cfg.latency == "measure"
            else metrics["latency_ms_estimate"]
        )
    return TrialResult(
        True, arch, comp_params, metrics, constraints, str(path), evaluated["test_accuracy"]
    )
