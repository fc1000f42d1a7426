"""``strategy=scratch``: every feasible candidate is trained from scratch.

Train -> compress -> fine-tune (the one recipe, :func:`~nas.pipeline.train_compressed`)
-> export -> score the artifact in a fresh process. Honest numbers: the size is the
bytes written and the accuracy that of the model loaded back from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import compress
from nas._stop import writing
from nas.hw import deployed_latency_ms
from nas.pipeline._candidate import (
    Proposal,
    TrialResult,
    build_candidate,
    candidate_meta,
    compression_configs,
)
from nas.pipeline._context import COST_ESTIMATES, TrialContext
from nas.pipeline._errors import TrialStopped
from nas.pipeline._recipe import Recipe, distiller, train_compressed
from nas.pipeline._train import LossFn, accuracy

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from nas.config import HwConfig
    from nas.hw import HardwareModel

__all__ = ["ScratchStrategy", "export_and_evaluate", "train_proposal"]


class ScratchStrategy:
    """Train every feasible candidate; each trial is its own MLflow run; no finalists."""

    records_scores = True
    trains_once = False
    min_finalists = 0
    max_finalists: int | None = 0

    def __init__(self, cfg: Any = None) -> None:
        """``cfg``: the ``strategy`` config node (scratch has no settings)."""

    def check(self, ctx: TrialContext) -> None:
        """Nothing to refuse: every space and option trains from scratch."""

    def plan(
        self, ctx: TrialContext, seconds: float | None, recorded: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {}  # nothing one-off to fit to the budget

    def prepare(self, ctx: TrialContext) -> None:
        """Nothing shared to prepare (a distillation teacher trains on first use)."""

    def score(self, proposal: Proposal, ctx: TrialContext) -> TrialResult:
        return train_proposal(proposal, ctx)

    def finalists(self, study: optuna.Study, ctx: TrialContext, batch: int = 1) -> list[int]:
        return []

    def reserve_s(self, ctx: TrialContext, seconds: float | None = None) -> float:
        return 0.0

    def finalize(self, proposal: Proposal, ctx: TrialContext) -> TrialResult:
        return train_proposal(proposal, ctx)


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
    recipe = Recipe.from_config(ctx.train_cfg, ctx.compress_cfg, default_lr=ctx.space.default_lr)
    trained = train_compressed(
        model,
        ctx.splits,
        recipe,
        compression=cfgs,
        seed=ctx.seed + number,
        loss_fn=_loss_fn(comp, ctx),
        deadline=deadline,
        on_epoch=_early_stop_hook(p, ctx, model, recipe.epochs),
        device=ctx.device,
        precision=ctx.precision,
    )
    return export_and_evaluate(
        p, ctx, trained.model, train_seconds=trained.train_seconds, start=start, deadline=deadline
    )


def export_and_evaluate(
    p: Proposal,
    ctx: TrialContext,
    model: nn.Module,
    *,
    train_seconds: float,
    start: float,
    deadline: float | None,
) -> TrialResult:
    """Write a trained candidate's artifact and score it from its bytes in the evaluator.

    Honest numbers: the size is the bytes written, and the accuracy that of the model
    loaded back from them in a fresh process.
    """
    number, comp = p.number, p.compression
    ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.artifact_dir / f"trial_{number:05d}.dsz"
    exported = time.monotonic()
    with writing(path):
        size = compress.export(model, path, meta=candidate_meta(ctx, p.arch, comp))
    if ctx.evaluator is None:
        raise RuntimeError("this trial context has no evaluator (a Ray driver's trains nothing)")
    evaluating = time.monotonic()
    evaluated = ctx.evaluator.evaluate(path, deadline=deadline)
    metrics = dict(p.metrics)
    metrics.update(
        val_accuracy=evaluated["val_accuracy"],
        size_bytes=float(size),
        nonzero_params=float(compress.stats(model)["nonzero_params"]),
        train_seconds=train_seconds,
        # A trial's fixed costs, which a faster device does not shrink.
        export_seconds=evaluating - exported,
        evaluate_seconds=time.monotonic() - evaluating,
        trial_seconds=time.monotonic() - start + p.metrics["feasibility_seconds"],
    )
    if "skipped_images" in evaluated:  # unreadable val/test images, left out of accuracy
        metrics["skipped_images"] = float(evaluated["skipped_images"])
    if ctx.hw is not None and ctx.hw_cfg is not None:
        estimate = metrics["latency_ms_estimate"]
        metrics["latency_ms"] = _latency_ms(model, comp, estimate, ctx.hw, ctx.hw_cfg, ctx)
    for dev in ctx.devices:
        estimate = metrics[f"latency_ms_estimate.{dev.name}"]
        metrics[f"latency_ms.{dev.name}"] = _latency_ms(
            model, comp, estimate, dev.model, dev.cfg, ctx
        )
    return TrialResult(
        True, p.arch, comp, metrics, p.constraints, str(path), evaluated["test_accuracy"],
        device_constraints=p.device_constraints,
    )  # fmt: skip


def _loss_fn(comp: dict[str, Any], ctx: TrialContext) -> LossFn | None:
    if not comp.get("distill"):
        return None
    if ctx.teacher is None:
        raise RuntimeError("the candidate asks for distillation but the search has no teacher")
    return distiller(
        ctx.teacher.get(), temperature=comp["distill_temperature"], alpha=comp["distill_alpha"]
    )


def _early_stop_hook(
    p: Proposal, ctx: TrialContext, model: nn.Module, epochs: int
) -> Callable[[int, float], None] | None:
    """After each epoch but the last, ask ``ctx.early_stop`` whether the trial goes on."""
    if ctx.early_stop is None:
        return None
    judge, est = ctx.early_stop, p.metrics[COST_ESTIMATES[ctx.cost]]

    def on_epoch(epoch: int, _loss: float) -> None:
        acc = accuracy(model, ctx.splits.val)
        model.train()
        if epoch + 1 < epochs and judge.should_stop(p.number, epoch, acc, est):
            raise TrialStopped(f"stopped early after epoch {epoch + 1} (val {acc:.4f})")

    return on_epoch


def _latency_ms(
    model: nn.Module,
    comp: dict[str, Any],
    estimate: float,
    hw: HardwareModel,
    hw_cfg: HwConfig,
    ctx: TrialContext,
) -> float:
    """A predicted latency depends only on shapes, bits and sparsity, all fixed before
    training, so the estimate is the figure. A measured one is taken again on the
    trained model as deployed (ONNX Runtime; real int8 kernels at 8 bits)."""
    if hw_cfg.latency != "measure":
        return estimate
    return deployed_latency_ms(
        hw,
        model,
        ctx.input_shape,
        bits=comp["bits"],
        sparsity=comp.get("sparsity", 0.0),
        calib=ctx.splits.train.head(256),
    )
