"""``strategy=supernet``: train once, score thousands, finalise the best for real.

1. :meth:`SupernetStrategy.prepare` trains the space's weight-sharing supernet once
   (``nas.pipeline._supernet_train``) and caches it as safetensors under a file
   lock, or loads the cached one that covers the search.
2. :meth:`SupernetStrategy.score` scores a feasible candidate by inheritance: its
   sub-network is extracted as a real, smaller module, compressed as the candidate
   says (pruning masks, fake quantization), its BatchNorm statistics re-estimated
   on ``bn_calib_images`` training images, and its val accuracy measured. That is
   an estimate: scored candidates are Optuna trials, never on the front.
3. :meth:`SupernetStrategy.finalists` says which scored candidates to finalise next
   (``nas.pipeline._supernet_predict``): first ``finalists`` spread over the scored
   sizes (always finalised), then, while the budget lasts, each next the one that a
   predictor of finalised accuracy, refitted as each finalist lands, expects to add
   the most hypervolume. :meth:`SupernetStrategy.finalize` trains each from its
   inherited weights until its val accuracy stops improving (quantization-aware,
   distilled from the largest sub-network), exports it and scores the artifact in the
   fresh-process evaluator, as a scratch trial is. The front a search reports is made
   of these.
"""

from __future__ import annotations

import fcntl
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from tqdm.auto import tqdm

import compress
from nas.config import ConfigError
from nas.pipeline._candidate import compression_configs
from nas.pipeline._context import Proposal, TrialContext, TrialResult
from nas.pipeline._recipe import TeacherMemo, distiller
from nas.pipeline._scratch import export_and_evaluate
from nas.pipeline._supernet_cache import (
    CheckpointError,
    cache_path,
    covers,
    find_cached,
    load_into,
    read_key,
    save,
    train_seconds,
)
from nas.pipeline._supernet_finalise import finetune_until_plateau
from nas.pipeline._supernet_plan import fit_epochs
from nas.pipeline._supernet_predict import next_finalists
from nas.pipeline._supernet_train import SupernetRecipe, train_supernet
from nas.pipeline._train import Placing, accuracy, model_device, step_seconds
from search_spaces import InputSpec, SlicedSupernet, get_search_space, search_space_config

if TYPE_CHECKING:
    import optuna

__all__ = ["SupernetStrategy", "inherit", "load_supernet", "recalibrate_bn"]

# Weight of the distillation term while a finalist fine-tunes (the rest: the labels).
_FINETUNE_ALPHA = 0.5
# Export, the fresh-process evaluation and the records of one finalist (measured ~2 s).
_EVAL_S = 4.0


class SupernetStrategy:
    """Score candidates with weights inherited from one trained supernet."""

    records_scores = False
    trains_once = True  # prepare trains the supernet: the Ray runner runs it on a worker

    def __init__(self, cfg: Any) -> None:
        """``cfg``: the ``strategy`` config node (conf/strategy/supernet.yaml)."""
        self.cfg = cfg
        self._supernet: SlicedSupernet | None = None
        self._teacher: nn.Module | None = None
        self._memo: TeacherMemo | None = None
        self._reserve: float | None = None

    # -- the key of the supernet a search needs, and where it lives --------------------

    def recipe(self, ctx: TrialContext) -> SupernetRecipe:
        c, t = self.cfg, ctx.train_cfg
        smax = c.sparsity_max if c.sparsity_max is not None else ctx.compress_cfg.sparsity_max
        return SupernetRecipe(
            epochs=int(c.epochs),
            warmup_epochs=int(c.warmup_epochs),
            schedule=str(c.schedule),
            random_subnets=int(c.random_subnets),
            lr=float(c.lr if c.lr is not None else ctx.space.default_lr),
            batch_size=int(t.batch_size),
            weight_decay=float(t.weight_decay),
            label_smoothing=float(t.label_smoothing),
            distill_temperature=float(c.distill_temperature),
            # The compress group's bit-widths, not the device's: a supernet trained for
            # them serves every +hw profile, which can only narrow them.
            bits=tuple(sorted(int(b) for b in ctx.compress_cfg.bits)),
            sparsity_max=float(smax),
            shift=round(float(c.get("shift", 0.0)) * ctx.splits.spec.image_size),
        )

    def key(self, ctx: TrialContext) -> dict[str, Any]:
        recipe = self.recipe(ctx)
        key: dict[str, Any] = {
            "space": ctx.space.name,
            "space_cfg": ctx.space_cfg,
            "spec": asdict(ctx.splits.spec),
            "data": ctx.splits.fingerprint,
            "seed": ctx.seed,
            "recipe": recipe.key(),
        }
        key["recipe"]["bits"] = list(recipe.bits)
        return key

    def cache_dir(self, ctx: TrialContext) -> Path:
        return ctx.artifact_dir.parent / "supernets"

    def train_seconds(self, ctx: TrialContext) -> float | None:
        """How long the cached supernet of this search's key took to train (None: not
        cached, or not recorded)."""
        path = cache_path(self.cache_dir(ctx), self.key(ctx))
        return train_seconds(path) if path.exists() else None

    # -- the Strategy interface --------------------------------------------------------

    def check(self, ctx: TrialContext) -> None:
        """Refuse a space without a supernet, and a checkpoint that does not cover."""
        if not getattr(ctx.space, "nested", False):
            raise ConfigError(
                f"strategy=supernet needs a space whose architectures nest in one supernet; "
                f"search_space={ctx.space.name} has none (use search_space=mbconv or "
                "strategy=scratch)"
            )
        if self.cfg.checkpoint:
            path = Path(str(self.cfg.checkpoint)).expanduser()
            try:
                have = read_key(path)
            except CheckpointError as e:
                raise ConfigError(f"strategy.checkpoint: {e}") from None
            why = covers(have, self.key(ctx))
            if why is not None:
                raise ConfigError(
                    f"strategy.checkpoint={str(path)!r} does not cover this search: {why}"
                )

    def prepare(self, ctx: TrialContext) -> None:
        self.load(ctx, train=True)

    def score(self, proposal: Proposal, ctx: TrialContext) -> TrialResult:
        start = time.monotonic()
        model = inherit(self.load(ctx), proposal, ctx, calib_images=int(self.cfg.bn_calib_images))
        val = accuracy(model, ctx.splits.val)
        metrics = dict(
            proposal.metrics,
            val_accuracy=val,
            size_bytes=proposal.metrics["size_bytes_estimate"],
            score_seconds=time.monotonic() - start,
        )
        for key in [k for k in metrics if k.startswith("latency_ms_estimate")]:
            metrics[key.replace("latency_ms_estimate", "latency_ms", 1)] = metrics[key]
        return TrialResult(
            True, proposal.arch, proposal.compression, metrics, proposal.constraints,
            device_constraints=proposal.device_constraints,
        )  # fmt: skip

    @property
    def min_finalists(self) -> int:
        return int(self.cfg.finalists)

    @property
    def max_finalists(self) -> int | None:
        return None if self.cfg.max_finalists is None else int(self.cfg.max_finalists)

    def finalists(self, study: optuna.Study, ctx: TrialContext, batch: int = 1) -> list[int]:
        """The next scored trials to finalise (``nas.pipeline._supernet_predict``); a
        multi-device search takes each device's in turn, a candidate once."""
        ref = ctx.front_ref or (0.0, math.inf)
        k = int(self.cfg.finalists)
        devices: list[str | None] = [d.name for d in ctx.devices] or [None]
        orders = [next_finalists(study, cover=k, batch=batch, ref=ref, device=d) for d in devices]
        chosen: list[int] = []
        for rank in range(max((len(o) for o in orders), default=0)):
            for order in orders:
                if rank < len(order) and order[rank] not in chosen:
                    chosen.append(order[rank])
        return chosen

    def plan(
        self, ctx: TrialContext, seconds: float | None, recorded: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Fewer training epochs when ``seconds`` is short (``nas.pipeline._supernet_plan``);
        {} when there is no limit, or no training to do (a checkpoint, a cached supernet)."""
        if recorded is not None:
            return recorded
        if seconds is None or self.cfg.checkpoint:
            return {}
        try:
            if find_cached(self.cache_dir(ctx), self.key(ctx)) is not None:
                return {}
        except CheckpointError:
            pass  # trained again, so fitted
        return fit_epochs(
            ctx, seconds, recipe=self.recipe(ctx), finalists=int(self.cfg.finalists),
            reserve_s=lambda largest: self.reserve_s(ctx, seconds, largest),
        )  # fmt: skip

    def reserve_s(
        self, ctx: TrialContext, seconds: float | None = None, largest: nn.Module | None = None
    ) -> float:
        """Seconds of ``seconds`` (the search's budget) kept for finalising: its
        ``finalise_share``, and at least the time to finalise ``finalists`` candidates,
        each at most the largest network, for ``finetune_patience`` + 1 epochs (an
        estimate, not a bound: two rounds stop a finalist that does not improve, most
        run more, and most are far smaller than the largest network) at a
        measured step time, with export and evaluation. ``largest``: a stand-in for the
        trained one (the step time is the same)."""
        if self._reserve is None:
            batch = int(ctx.train_cfg.batch_size)
            x, y = ctx.splits.train.head(batch), ctx.splits.train.y[:batch]
            model = largest if largest is not None else self._largest(ctx)
            step = step_seconds(model, x, y, Placing(ctx.device, ctx.precision))
            steps = -(-len(ctx.splits.train) // len(x))
            epochs = min(int(self.cfg.finetune_patience) + 1, int(self.cfg.finetune_epochs))
            self._reserve = (epochs * steps * step * 1.5 + _EVAL_S) * int(self.cfg.finalists)
        share = 0.0 if seconds is None else float(self.cfg.finalise_share) * seconds
        return max(self._reserve, share)

    def finalize(self, proposal: Proposal, ctx: TrialContext) -> TrialResult:
        start = time.monotonic()
        deadline = None if ctx.trial_timeout_s is None else start + ctx.trial_timeout_s
        ends = None if proposal.ends_at is None else start + (proposal.ends_at - time.time())
        supernet = self.load(ctx)
        model = supernet.extract(proposal.arch)
        cfgs = compression_configs(proposal.compression, ctx.input_shape)
        calib = ctx.splits.train.head(int(self.cfg.bn_calib_images))
        model = compress.apply(model, cfgs) or model
        recalibrate_bn(model, calib)  # the supernet's statistics are not this network's
        tuned = finetune_until_plateau(
            model,
            ctx.splits,
            max_epochs=int(self.cfg.finetune_epochs),
            patience=int(self.cfg.finetune_patience),
            lr=float(self.cfg.finetune_lr),
            batch_size=int(ctx.train_cfg.batch_size),
            loss_fn=distiller(
                self._largest(ctx),
                temperature=float(self.cfg.distill_temperature),
                alpha=_FINETUNE_ALPHA,
                memo=None if ctx.splits.augment else self._teacher_memo(ctx),
            ),
            seed=ctx.seed + proposal.number,
            deadline=deadline,
            ends=ends,
            # No shift here: on 8 finalists of the seed-0 supernet (shifted, mnist5k),
            # shifting their fine-tuning too lost 0.1 points of test accuracy on
            # average (6 of 8 lower) and took 1.4x the time (no teacher memo).
            placing=Placing(ctx.device, ctx.precision, ctx.splits.augment, ctx.seed),
        )
        recalibrate_bn(tuned.model, calib)
        result = export_and_evaluate(
            proposal, ctx, tuned.model,
            train_seconds=tuned.seconds, start=start, deadline=deadline,
        )  # fmt: skip
        result.metrics.update(
            finetune_epochs=tuned.epochs, finetune_best_epoch=tuned.best_epoch,
            inherited_val_accuracy=tuned.inherited_val, finetune_cut=float(tuned.cut),
        )  # fmt: skip
        return result

    def weights_file(self, ctx: TrialContext) -> Path | None:
        """The file of the shared weights this search uses (the checkpoint, or the cached
        supernet that covers it); None before one is trained."""
        if self.cfg.checkpoint:
            return Path(str(self.cfg.checkpoint)).expanduser().resolve()
        try:
            found = find_cached(self.cache_dir(ctx), self.key(ctx))
        except CheckpointError:
            return None
        return None if found is None else found[0].resolve()

    # -- the supernet, loaded once per process -----------------------------------------

    def load(self, ctx: TrialContext, *, train: bool = False) -> SlicedSupernet:
        """The search's supernet: this process's, the cached one, or (``train``) a new one.

        Under a file lock, so that of several processes one trains and the rest load.
        """
        if self._supernet is not None:
            return self._supernet
        want = self.key(ctx)
        if self.cfg.checkpoint:
            path = Path(str(self.cfg.checkpoint)).expanduser()
            self._supernet = _load_file(path, read_key(path), ctx)
            return self._supernet
        cache = self.cache_dir(ctx)
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache_path(cache, want).with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._supernet = self._cached(cache, want, ctx)
            if self._supernet is None:
                if not train:
                    raise RuntimeError(
                        "no trained supernet in the cache: the search's driver trains it "
                        "(strategy.prepare) before any candidate is scored"
                    )
                self._supernet = self._train(cache_path(cache, want), want, ctx)
        return self._supernet

    def _cached(
        self, cache: Path, want: dict[str, Any], ctx: TrialContext
    ) -> SlicedSupernet | None:
        try:
            found = find_cached(cache, want)
            if found is None:
                _say_why_not_reused(cache, want)
                return None
            path, have = found
            supernet = _load_file(path, have, ctx)
        except CheckpointError as e:
            print(f"{e}; training it again", file=sys.stderr)
            return None
        if path != cache_path(cache, want):
            print(f"Using the cached supernet {path.name}, which covers this search.",
                  file=sys.stderr)  # fmt: skip
        return supernet

    def _train(self, path: Path, key: dict[str, Any], ctx: TrialContext) -> SlicedSupernet:
        recipe = self.recipe(ctx)
        supernet = SlicedSupernet(ctx.space, ctx.splits.spec)
        bar = tqdm(total=recipe.epochs, desc="supernet", unit="epoch", file=sys.stderr)

        def on_epoch(_epoch: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(largest_loss=f"{loss:.3f}")

        with bar:
            stats = train_supernet(
                supernet, ctx.splits, recipe, seed=ctx.seed, on_epoch=on_epoch,
                device=ctx.device, precision=ctx.precision,
            )  # fmt: skip
        size = save(supernet, path, key, train_seconds=stats.seconds)
        print(
            f"Trained the supernet in {stats.seconds:.0f} s ({stats.steps} steps, "
            f"{stats.subnets_trained} sub-network passes); cached as {path} ({size:,} bytes).",
            file=sys.stderr,
        )
        return supernet

    def _teacher_memo(self, ctx: TrialContext) -> TeacherMemo:
        """The teacher's logits, kept across this process's finalists (un-augmented
        images repeat every epoch of every finalist)."""
        teacher = self._largest(ctx)
        if self._memo is None or self._memo.teacher is not teacher:
            self._memo = TeacherMemo(teacher)
        return self._memo

    def _largest(self, ctx: TrialContext) -> nn.Module:
        """The largest sub-network, BatchNorm re-estimated: the finalists' teacher."""
        if self._teacher is None:
            supernet = self.load(ctx)
            self._teacher = supernet.extract(supernet.largest)
            recalibrate_bn(self._teacher, ctx.splits.train.head(int(self.cfg.bn_calib_images)))
        return self._teacher


def _say_why_not_reused(cache: Path, want: dict[str, Any]) -> None:
    """One line per cached supernet of the same space that this search cannot use, so a
    retraining is never a surprise (e.g. a bit-width it was not trained with)."""
    for path in sorted(cache.glob(f"supernet_{want['space']}_*.safetensors")):
        try:
            have = read_key(path)
            diff = [k for k, v in want["recipe"].items() if have["recipe"].get(k) != v]
            why = covers(have, want) or f"it was trained with another {', '.join(diff)}"
        except CheckpointError as e:
            why = str(e)
        print(f"Not reusing the cached supernet {path.name}: {why}.", file=sys.stderr)


def _load_file(path: Path, have: dict[str, Any], ctx: TrialContext) -> SlicedSupernet:
    """The supernet saved at ``path`` with key ``have`` (its own, possibly wider, space)."""
    space = get_search_space(have["space"], search_space_config(have["space"])(**have["space_cfg"]))
    supernet = SlicedSupernet(space, ctx.splits.spec)
    load_into(supernet, path)
    return supernet


def load_supernet(path: Path, spec: InputSpec) -> tuple[SlicedSupernet, dict[str, Any]]:
    """A supernet file (a search's cache or checkpoint) and its key, in the space it was
    trained for. Raises ``CheckpointError`` (one line) for a file that is not one."""
    have = read_key(path)
    space = get_search_space(have["space"], search_space_config(have["space"])(**have["space_cfg"]))
    supernet = SlicedSupernet(space, spec)
    load_into(supernet, path)
    return supernet, have


def inherit(
    supernet: SlicedSupernet, proposal: Proposal, ctx: TrialContext, *, calib_images: int
) -> nn.Module:
    """A candidate's model with inherited weights: extracted, compressed, BN re-estimated."""
    model = supernet.extract(proposal.arch)
    cfgs = compression_configs(proposal.compression, ctx.input_shape)
    model = compress.apply(model, cfgs) or model
    model.to(ctx.device)  # scored where trials train; compressed on the CPU, as anywhere
    recalibrate_bn(model, ctx.splits.train.head(calib_images))
    return model


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: torch.Tensor, *, batch_size: int = 256) -> None:
    """Re-estimate every BatchNorm's running statistics on ``images`` (their exact mean
    over the batches: momentum None), as a sub-network's differ from the supernet's."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    device = model_device(model)
    for i in range(0, len(images), batch_size):
        model(images[i : i + batch_size].to(device))
    for bn, momentum in zip(bns, momenta, strict=True):
        bn.momentum = momentum
    model.eval()
