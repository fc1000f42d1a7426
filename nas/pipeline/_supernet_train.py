"""Training a weight-sharing supernet once, for every candidate of the search.

Two schedules, both with in-place distillation (BigNAS, Yu et al., 2020): the
largest network learns from the labels, and every other sub-network of the step
learns from the largest network's soft predictions.

- ``sandwich`` (BigNAS): every step trains the largest, the smallest and
  ``random_subnets`` random sub-networks, their gradients summed.
- ``progressive`` (Once-for-All's progressive shrinking, Cai et al., 2020): the
  same step, but the random sub-networks are elastic in one more dimension per
  phase (kernel, then depth, then expansion, then width); the others stay at
  their largest.

Both start with ``warmup_epochs`` of the largest network alone. Then its channels are
sorted by importance (OFA), so narrower sub-networks inherit the most important
ones, and the optimizer restarts (its moments belong to the old channel order).

Compression-aware (APQ; Once-Quantization-Aware Training): each sub-network but
the largest also draws a bit-width from those the search may sample and a
layer-wise magnitude sparsity up to ``sparsity_max``, applied to the shared
weights in the forward pass (``compress.magnitude_mask`` and
``compress.fake_quantize``, with straight-through gradients), so inherited weights
score well after the candidate's own compression.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import compress
from nas.hw import RandomSuggest
from nas.pipeline._data import Splits
from nas.pipeline._device import autocast
from nas.pipeline._errors import NotLearning, TrainFailed, TrialTimeout
from nas.pipeline._train import Placing, prepare_batch
from search_spaces import Arch, SlicedSupernet

__all__ = ["CHANCE_FRACTION", "SupernetRecipe", "SupernetStats", "step_seconds", "train_supernet"]

# Progressive shrinking's order (OFA): the dimensions made elastic, one per phase.
_PROGRESSIVE = ("kernels", "depths", "expansions", "width_mult")

CHANCE_FRACTION = 0.9
"""From the end of warm-up on, a largest network whose mean training loss over an epoch
is still at least this fraction of chance (ln of the number of classes: what a uniform
guess scores) has learned nothing the candidates could inherit: training stops."""
JUDGED_AFTER_STEPS = 16
"""A supernet is judged once it has taken this many steps: an epoch's mean loss over
fewer (a test's supernet of three steps) still holds the first steps' chance loss."""


@dataclass(frozen=True)
class SupernetRecipe:
    """Everything that changes a trained supernet (it keys the cache)."""

    epochs: int
    warmup_epochs: int
    schedule: str
    random_subnets: int
    lr: float
    batch_size: int
    weight_decay: float
    label_smoothing: float
    distill_temperature: float
    bits: tuple[int, ...]
    sparsity_max: float
    shift: int = 0
    """Training images are translated by up to this many pixels each way
    (``shift_batch``); 0: not at all, or the data set's own augmentation applies."""

    def key(self) -> dict[str, Any]:
        key = asdict(self)
        if not self.shift:
            del key["shift"]  # a supernet cached before shifts existed is this one
        return key


@dataclass
class SupernetStats:
    seconds: float
    steps: int
    final_loss: float
    subnets_trained: int


def train_supernet(
    supernet: SlicedSupernet,
    splits: Splits,
    recipe: SupernetRecipe,
    *,
    seed: int,
    deadline: float | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
) -> SupernetStats:
    """Train ``supernet``'s shared weights in place (see the module docstring), on
    ``device`` at ``precision``; the supernet is back on the CPU when it returns.
    ``on_epoch(epoch, loss)``: after each epoch, with the largest network's mean loss."""
    start = time.monotonic()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    batches = splits.train.batches(recipe.batch_size, shuffle=True, seed=seed)
    total = max(1, recipe.epochs * len(batches))  # type: ignore[arg-type]
    model = supernet.model
    model.to(device)
    opt = _optimizer(supernet, recipe)
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=precision == "fp16")
    augment_gen, shift = Placing(augment=splits.augment, seed=seed, shift=recipe.shift).augmenting()
    model.train()
    step, loss_value, subnets = 0, float("nan"), 0
    for epoch in range(recipe.epochs):
        if epoch == recipe.warmup_epochs and epoch > 0:
            supernet.sort_channels()
            opt = _optimizer(supernet, recipe)
        shared = epoch >= recipe.warmup_epochs
        largest, n = 0.0, 0
        for x, y in batches:
            x, y, _ = prepare_batch(x, y, device, augment_gen, shift)
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total, recipe.lr)
            opt.zero_grad(set_to_none=True)
            archs = _step_archs(supernet, recipe, rng, epoch) if shared else []
            own, loss_value = _backward(supernet, recipe, rng, x, y, archs, scaler, precision)
            subnets += len(archs)
            if not math.isfinite(loss_value):
                raise TrainFailed(f"supernet loss became {loss_value} at step {step}")
            scaler.step(opt)
            scaler.update()
            step += 1
            largest, n = largest + own, n + 1
            if deadline is not None and time.monotonic() > deadline:
                raise TrialTimeout(f"supernet training ran past its deadline (epoch {epoch})")
        if on_epoch is not None:  # the largest network's loss: the sandwich's sum reads
            on_epoch(epoch, largest / max(n, 1))  # as a jump when sub-networks join
        if epoch + 1 >= recipe.warmup_epochs:
            if step >= JUDGED_AFTER_STEPS:
                _check_learning(largest / max(n, 1), epoch, recipe, splits.spec.num_classes)
    if recipe.warmup_epochs >= recipe.epochs:
        supernet.sort_channels()  # never shared: sort anyway, so narrow nets keep the best
    model.cpu()
    model.eval()
    return SupernetStats(time.monotonic() - start, step, loss_value, subnets)


def step_seconds(
    supernet: SlicedSupernet,
    splits: Splits,
    recipe: SupernetRecipe,
    *,
    seed: int,
    shared: bool,
    device: str = "cpu",
    precision: str = "fp32",
    repeats: int = 5,
) -> float:
    """The median of ``repeats`` whole training steps on one batch, after one untimed
    (allocations): the largest network, and with ``shared`` the step's sub-networks,
    forward, backward and the optimizer's update, as :func:`train_supernet` takes them.
    The steps train ``supernet``: pass a throwaway one."""
    rng = np.random.default_rng(seed)
    x, y = splits.train.head(recipe.batch_size), splits.train.y[: recipe.batch_size]
    model = supernet.model
    model.to(device)
    model.train()
    opt = _optimizer(supernet, recipe)
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=precision == "fp16")
    times = []
    for _ in range(repeats + 1):
        t0 = time.monotonic()
        xb, yb, _ = prepare_batch(x, y, device, None)
        archs = _step_archs(supernet, recipe, rng, recipe.warmup_epochs) if shared else []
        opt.zero_grad(set_to_none=True)
        _backward(supernet, recipe, rng, xb, yb, archs, scaler, precision)
        scaler.step(opt)
        scaler.update()
        if device.startswith("cuda"):
            torch.cuda.synchronize(torch.device(device))
        times.append(time.monotonic() - t0)
    model.cpu()
    return float(np.median(times[1:]))


def _backward(
    supernet: SlicedSupernet,
    recipe: SupernetRecipe,
    rng: np.random.Generator,
    x: torch.Tensor,
    y: torch.Tensor,
    archs: list[Arch],
    scaler: torch.amp.GradScaler,
    precision: str,
) -> tuple[float, float]:
    """One step's gradients: the largest network from the labels, then each of ``archs``
    distilled from it (in place). Returns (the largest's loss, the step's summed loss)."""
    device = str(x.device)
    with autocast(device, precision):
        logits = supernet.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
    scaler.scale(loss).backward()
    own = float(loss.detach())
    total = own
    soft = logits.detach().float()
    for arch in archs:
        with autocast(device, precision):
            sub_loss = _subnet_loss(supernet, arch, recipe, rng, x, soft)
        scaler.scale(sub_loss).backward()
        total += float(sub_loss.detach())
    return own, total


def _check_learning(loss: float, epoch: int, recipe: SupernetRecipe, classes: int) -> None:
    """Stop a supernet whose largest network is still at chance (:data:`CHANCE_FRACTION`)."""
    chance = math.log(classes)
    if loss < CHANCE_FRACTION * chance:
        return
    when = "warm-up" if epoch + 1 == recipe.warmup_epochs else f"epoch {epoch + 1}"
    raise NotLearning(
        f"the supernet is not learning: after {when} of {recipe.epochs} its largest "
        f"network's training loss is {loss:.3f}, and chance for {classes} classes is "
        f"{chance:.3f}; nothing was scored. Check the data's labels, or strategy.lr "
        f"(now {recipe.lr:g}) and strategy.warmup_epochs ({recipe.warmup_epochs})"
    )


def _optimizer(supernet: SlicedSupernet, recipe: SupernetRecipe) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        supernet.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )


def _lr_at(step: int, total: int, peak: float) -> float:
    """One-cycle: a linear rise over the first 10% of steps, then a cosine to zero."""
    rise = max(1, int(0.1 * total))
    if step < rise:
        return peak * (0.04 + 0.96 * step / rise)
    return peak * 0.5 * (1.0 + math.cos(math.pi * (step - rise) / max(1, total - rise)))


def _step_archs(
    supernet: SlicedSupernet, recipe: SupernetRecipe, rng: np.random.Generator, epoch: int
) -> list[Arch]:
    """The sub-networks (other than the largest) trained at this step."""
    suggest = RandomSuggest(rng)
    randoms = [supernet.space.sample(suggest) for _ in range(recipe.random_subnets)]
    if recipe.schedule == "sandwich":
        return [supernet.smallest, *randoms]
    # Progressive: the phase's elastic dimensions; the rest stay at the largest.
    phases = len(_PROGRESSIVE)
    span = max(1, recipe.epochs - recipe.warmup_epochs)
    phase = min(phases - 1, (epoch - recipe.warmup_epochs) * phases // span)
    elastic = _PROGRESSIVE[: phase + 1]
    smallest = _freeze(supernet.smallest, supernet.largest, elastic)
    return [smallest, *(_freeze(a, supernet.largest, elastic) for a in randoms)]


def _freeze(arch: Arch, largest: Arch, elastic: Sequence[str]) -> Arch:
    return {k: (v if k in elastic else largest[k]) for k, v in arch.items()}


def _subnet_loss(
    supernet: SlicedSupernet,
    arch: Arch,
    recipe: SupernetRecipe,
    rng: np.random.Generator,
    x: torch.Tensor,
    soft: torch.Tensor,
) -> torch.Tensor:
    """In-place distillation of one sub-network, compressed as a candidate may be."""
    shell = supernet.shell(arch)
    shell.train()
    bits = int(rng.choice(recipe.bits))
    sparsity = float(rng.uniform(0.0, recipe.sparsity_max)) if recipe.sparsity_max > 0 else 0.0
    weights = supernet.weights(arch, shell)
    for name in _target_weights(shell):
        w = weights[name]
        if sparsity > 0:
            w = w * compress.magnitude_mask(w, sparsity)
        weights[name] = compress.fake_quantize(w, bits)
    logits = functional_call(shell, weights, (x,))
    t = recipe.distill_temperature
    return F.kl_div(
        F.log_softmax(logits / t, dim=1), F.softmax(soft / t, dim=1), reduction="batchmean"
    ) * (t * t)


def _target_weights(shell: nn.Module) -> list[str]:
    """Names of the weights ``compress`` prunes and quantizes (convolutions, linears)."""
    cached: list[str] | None = getattr(shell, "_compress_targets", None)
    if cached is None:
        cached = [
            f"{name}.weight"
            for name, m in shell.named_modules()
            if isinstance(m, nn.Conv2d | nn.Linear)
        ]
        shell._compress_targets = cached  # type: ignore[assignment]
    return cached
