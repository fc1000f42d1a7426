"""One trial, as one straight path: sample -> feasibility -> train -> compress ->
fine-tune -> export -> evaluate the artifact in a fresh process.

See ``STYLE.md`` ("The shape of the system"). Nothing here knows about MLflow or
the runner; :func:`run_trial` returns a :class:`TrialResult` the caller records.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

import compress
from nas._config import CompressSearchConfig, HwConfig
from nas._data import Batches, Splits
from nas._evaluator import ArtifactEvaluator
from nas._train import LossFn, accuracy, train
from nas.hw import HardwareModel, count_macs, deployed_latency_ms
from search_spaces import Arch, InputSpec, SearchSpace, Suggest

__all__ = [
    "EpochJudge",
    "Proposal",
    "TeacherSource",
    "TrialContext",
    "TrialResult",
    "TrialStopped",
    "build_from_meta",
    "compression_configs",
    "hw_constraints",
    "infeasible_result",
    "propose",
    "run_trial",
    "sample_compression",
    "space_from_cfg",
    "train_proposal",
]


class TrialStopped(Exception):
    """Early stopping ended the trial after a partial result; it is recorded as PRUNED."""


class EpochJudge(Protocol):
    """Decides after each training epoch whether a trial goes on (multi-objective ASHA)."""

    def should_stop(
        self, number: int, epoch: int, val_accuracy: float, size_bytes: float
    ) -> bool: ...


class TeacherSource(Protocol):
    def get(self) -> nn.Module: ...


@dataclass
class TrialContext:
    """Everything a trial needs; built once per search (once per worker under Ray)."""

    space: SearchSpace
    space_cfg: dict[str, Any]
    splits: Splits
    compress_cfg: CompressSearchConfig
    train_cfg: Any
    bits: list[int]
    hw: HardwareModel | None
    hw_cfg: HwConfig | None
    evaluator: ArtifactEvaluator | None
    artifact_dir: Path
    seed: int = 0
    trial_timeout_s: float | None = None
    teacher: TeacherSource | None = None
    early_stop: EpochJudge | None = None

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        spec = self.splits.spec
        return (1, spec.in_chans, spec.image_size, spec.image_size)


@dataclass
class Proposal:
    """A sampled candidate with everything known before training (its feasibility)."""

    number: int
    arch: Arch
    compression: dict[str, Any]
    metrics: dict[str, float]
    constraints: dict[str, float]

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.constraints.values())


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
) -> dict[str, Any]:
    """Draw the compression part of a candidate as plain params (see :func:`compression_configs`).

    Parameters a choice makes irrelevant are not drawn (a structured trial draws no
    sparsity), so the samplers see the real, conditional space.
    """

    def choose(name: str, options: list[Any]) -> Any:
        return suggest.suggest_categorical(name, options) if len(options) > 1 else options[0]

    params: dict[str, Any] = {}
    kind = choose("prune_kind", list(cfg.prune_kinds))
    params["prune_kind"] = kind
    if kind == "structured":
        ratio = 0.0
        if cfg.channel_ratio_max > 0:
            ratio = suggest.suggest_float(
                "channel_ratio", cfg.channel_ratio_min, cfg.channel_ratio_max
            )
        params["channel_ratio"] = round(ratio, 4)
    else:
        sparsity = 0.0
        if cfg.sparsity_max > 0:
            sparsity = suggest.suggest_float("sparsity", cfg.sparsity_min, cfg.sparsity_max)
        params["sparsity"] = round(sparsity, 4)
        params["prune_scope"] = choose("prune_scope", list(cfg.prune_scopes))
    params["rank_ratio"] = float(choose("rank_ratio", sorted(float(r) for r in cfg.rank_ratios)))
    params["bits"] = int(choose("bits", sorted(bits)))
    distill = bool(choose("distill", sorted(bool(d) for d in cfg.distill)))
    params["distill"] = distill
    if distill:
        params["distill_temperature"] = round(
            suggest.suggest_float(
                "distill_temperature", cfg.distill_temperature_min, cfg.distill_temperature_max
            ),
            3,
        )
        params["distill_alpha"] = round(
            suggest.suggest_float("distill_alpha", cfg.distill_alpha_min, cfg.distill_alpha_max),
            3,
        )
    return params


def compression_configs(params: dict[str, Any], input_shape: tuple[int, ...]) -> list[Any]:
    """The ``compress`` configs a candidate's params describe, in the order they apply.

    Structural techniques come first (they change shapes), then masks, then
    quantization, which ``compress.apply`` and the size estimate require.
    """
    cfgs: list[Any] = []
    if params.get("prune_kind") == "structured" and params.get("channel_ratio", 0.0) > 0:
        cfgs.append(
            compress.ChannelPruneConfig(ratio=params["channel_ratio"], input_shape=input_shape)
        )
    if params.get("rank_ratio", 1.0) < 1.0:
        cfgs.append(compress.LowRankConfig(rank_ratio=params["rank_ratio"]))
    if params.get("sparsity", 0.0) > 0:
        cfgs.append(
            compress.PruneConfig(
                sparsity=params["sparsity"], scope=params.get("prune_scope", "global")
            )
        )
    if params.get("bits", 32) != 32:
        cfgs.append(compress.QuantConfig(bits=params["bits"]))
    return cfgs


def structural_copy(model: nn.Module, cfgs: list[Any]) -> nn.Module:
    """A copy of ``model`` with only the shape-changing configs applied.

    Its layer shapes are those of the final model (the channel counts removed and
    the ranks kept follow from the ratios alone, not the weights), so latency and
    peak memory are known before training.
    """
    structural = [
        c for c in cfgs if isinstance(c, compress.ChannelPruneConfig | compress.LowRankConfig)
    ]
    if not structural:
        return model
    return compress.apply(copy.deepcopy(model), structural)


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


def build_candidate(ctx: TrialContext, arch: Arch, number: int) -> nn.Module:
    """The untrained model of trial ``number``; seeded, so any worker builds the same one."""
    torch.manual_seed(ctx.seed + number)
    return ctx.space.build(arch, ctx.splits.spec)


def candidate_meta(ctx: TrialContext, arch: Arch, compression: dict[str, Any]) -> dict[str, Any]:
    """The artifact header: what :func:`build_from_meta` needs to rebuild the model."""
    return {
        "space": ctx.space.name,
        "space_cfg": ctx.space_cfg,
        "arch": arch,
        "spec": asdict(ctx.splits.spec),
        "compression": compression,
    }


def propose(suggest: Suggest, ctx: TrialContext, *, number: int) -> Proposal:
    """Sample a candidate and everything a budget constrains, before any training.

    Constraints go to ``suggest.set_constraint`` when it has one (an Optuna trial),
    so the samplers learn where the feasible region is.
    """
    start = time.monotonic()
    arch = ctx.space.sample(suggest)
    comp = sample_compression(suggest, ctx.compress_cfg, ctx.bits)
    cfgs = compression_configs(comp, ctx.input_shape)
    model = build_candidate(ctx, arch, number)
    est_size = compress.estimate_size_bytes(model, cfgs, meta=candidate_meta(ctx, arch, comp))
    shaped = structural_copy(model, cfgs)
    metrics: dict[str, float] = {
        "size_bytes_estimate": float(est_size),
        "params": float(compress.stats(shaped)["params"]),
        "macs": float(count_macs(shaped, ctx.input_shape)),
    }
    constraints: dict[str, float] = {}
    if ctx.hw is not None and ctx.hw_cfg is not None:
        latency = ctx.hw.latency_ms(
            shaped, ctx.input_shape, bits=comp["bits"], sparsity=comp.get("sparsity", 0.0)
        )
        peak = ctx.hw.peak_memory_bytes(shaped, ctx.input_shape)
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
    return Proposal(number, arch, comp, metrics, constraints)


def infeasible_result(p: Proposal) -> TrialResult:
    """An infeasible proposal's record: never trained, scored at zero accuracy."""
    metrics = dict(p.metrics, val_accuracy=0.0, size_bytes=p.metrics["size_bytes_estimate"])
    return TrialResult(False, p.arch, p.compression, metrics, p.constraints)


def train_proposal(p: Proposal, ctx: TrialContext) -> TrialResult:
    """Train, compress, fine-tune, export and evaluate a feasible proposal.

    Raises:
        TrialStopped: ``ctx.early_stop`` stopped it after an epoch.
        TrainFailed, TrialTimeout: recorded as failed by the caller.
    """
    start = time.monotonic()
    deadline = None if ctx.trial_timeout_s is None else start + ctx.trial_timeout_s
    number, comp = p.number, p.compression
    model = build_candidate(ctx, p.arch, number)
    cfgs = compression_configs(comp, ctx.input_shape)
    t = ctx.train_cfg
    batches = Batches(
        ctx.splits.x_train,
        ctx.splits.y_train,
        batch_size=t.batch_size,
        shuffle=True,
        seed=ctx.seed + number,
    )
    loss_fn = None
    if comp.get("distill"):
        if ctx.teacher is None:
            raise RuntimeError("the candidate asks for distillation but the search has no teacher")
        loss_fn = distiller(
            ctx.teacher.get(), temperature=comp["distill_temperature"], alpha=comp["distill_alpha"]
        )
    on_epoch = None
    if ctx.early_stop is not None:
        judge, est = ctx.early_stop, p.metrics["size_bytes_estimate"]

        def on_epoch(epoch: int, _loss: float) -> None:
            acc = accuracy(model, ctx.splits.x_val, ctx.splits.y_val)
            model.train()
            if epoch + 1 < t.epochs and judge.should_stop(number, epoch, acc, est):
                raise TrialStopped(f"stopped early after epoch {epoch + 1} (val {acc:.4f})")

    train_seconds = train(
        model,
        batches,
        epochs=t.epochs,
        lr=t.lr or ctx.space.default_lr,
        weight_decay=t.weight_decay,
        label_smoothing=t.label_smoothing,
        loss_fn=loss_fn,
        deadline=deadline,
        on_epoch=on_epoch,
    ).seconds
    model = compress.apply(model, cfgs)
    if cfgs and ctx.compress_cfg.finetune_epochs > 0:
        train_seconds += train(
            model,
            batches,
            epochs=ctx.compress_cfg.finetune_epochs,
            lr=ctx.compress_cfg.finetune_lr,
            weight_decay=0.0,
            loss_fn=loss_fn,
            deadline=deadline,
        ).seconds

    # Honest numbers: the bytes written, and accuracy of the model loaded back from them.
    ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.artifact_dir / f"trial_{number:05d}.dsz"
    size = compress.export(model, path, meta=candidate_meta(ctx, p.arch, comp))
    final = compress.stats(model)
    if ctx.evaluator is None:
        raise RuntimeError("this trial context has no evaluator (a Ray driver's trains nothing)")
    evaluated = ctx.evaluator.evaluate(path, deadline=deadline)
    metrics = dict(p.metrics)
    metrics.update(
        val_accuracy=evaluated["val_accuracy"],
        size_bytes=float(size),
        nonzero_params=float(final["nonzero_params"]),
        train_seconds=train_seconds,
        trial_seconds=time.monotonic() - start + p.metrics["feasibility_seconds"],
    )
    if ctx.hw is not None:
        # A predicted latency depends only on shapes, bits and sparsity, all fixed before
        # training, so the estimate is the figure. A measured one is taken again on the
        # trained model as deployed (ONNX Runtime; real int8 kernels at 8 bits).
        measured = ctx.hw_cfg is not None and ctx.hw_cfg.latency == "measure"
        metrics["latency_ms"] = (
            deployed_latency_ms(
                ctx.hw,
                model,
                ctx.input_shape,
                bits=comp["bits"],
                sparsity=comp.get("sparsity", 0.0),
                calib=ctx.splits.x_train[:256],
            )
            if measured
            else metrics["latency_ms_estimate"]
        )
    return TrialResult(
        True, p.arch, comp, metrics, p.constraints, str(path), evaluated["test_accuracy"]
    )


def run_trial(suggest: Suggest, ctx: TrialContext, *, number: int) -> TrialResult:
    """Propose a candidate and, when it is feasible, train and evaluate it."""
    p = propose(suggest, ctx, number=number)
    return train_proposal(p, ctx) if p.feasible else infeasible_result(p)


def distiller(teacher: nn.Module, *, temperature: float, alpha: float) -> LossFn:
    """The training loss of a distilled student (``compress.distillation_loss``)."""
    teacher.eval()

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = teacher(inputs)
        return compress.distillation_loss(
            logits, teacher_logits, targets, temperature=temperature, alpha=alpha
        )

    return loss_fn
