"""The one training recipe: train, compress, fine-tune (distilled when asked).

Trials, the distillation teacher, ``nas.export``'s retraining and the benchmark
scripts all train through :func:`train_compressed`, so a figure measured by one is
the figure of the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import compress
from nas.pipeline._data import Splits
from nas.pipeline._train import LossFn, Placing, model_device, train

__all__ = ["Recipe", "RecipeResult", "TeacherMemo", "distiller", "train_compressed"]


@dataclass(frozen=True)
class Recipe:
    """The budget of one training: the ``train`` group plus the fine-tuning after compression."""

    epochs: int
    lr: float
    batch_size: int = 128
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    finetune_epochs: int = 1
    finetune_lr: float = 0.002

    @classmethod
    def from_config(
        cls,
        train_cfg: Mapping[str, Any] | Any,
        compress_cfg: Mapping[str, Any] | Any | None,
        *,
        default_lr: float,
        epochs: int | None = None,
    ) -> Recipe:
        """The recipe of a search's ``train`` and ``compress`` sections.

        Args:
            default_lr: the search space's, used when ``train.lr`` is null.
            epochs: overrides ``train.epochs`` (a teacher's or a retraining's budget).
        """

        def get(node: Any, key: str, default: Any) -> Any:
            if node is None:
                return default
            value = node.get(key, default) if hasattr(node, "get") else getattr(node, key)
            return default if value is None else value

        c = compress_cfg
        return cls(
            epochs=int(epochs if epochs is not None else get(train_cfg, "epochs", 5)),
            lr=float(get(train_cfg, "lr", None) or default_lr),
            batch_size=int(get(train_cfg, "batch_size", 128)),
            weight_decay=float(get(train_cfg, "weight_decay", 0.0)),
            label_smoothing=float(get(train_cfg, "label_smoothing", 0.0)),
            finetune_epochs=int(get(c, "finetune_epochs", 1)),
            finetune_lr=float(get(c, "finetune_lr", 0.002)),
        )


@dataclass
class RecipeResult:
    model: nn.Module
    train_seconds: float
    finetuned: bool


def train_compressed(
    model: nn.Module,
    splits: Splits,
    recipe: Recipe,
    *,
    compression: list[Any],
    seed: int,
    loss_fn: LossFn | None = None,
    deadline: float | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
) -> RecipeResult:
    """Train ``model`` on ``splits``, apply ``compression``, then fine-tune it compressed.

    Fine-tuning (``recipe.finetune_epochs`` at ``recipe.finetune_lr``, no weight decay)
    runs only when there is something compressed to recover from. The batches are
    shuffled by ``seed`` alone, so any worker trains the same way.

    Args:
        compression: ``compress`` configs in apply order (structural first).
        loss_fn: replaces cross-entropy in both phases (a distillation loss).
        deadline: ``time.monotonic()`` past which training raises ``TrialTimeout``.
        on_epoch: called after each epoch of the first phase (early stopping, progress).
        device, precision: where both phases train (``train.device``, resolved) and at
            which precision; the model comes back on the CPU either way, so what is
            exported and measured does not depend on where it trained.
    """
    batches = splits.train.batches(recipe.batch_size, shuffle=True, seed=seed)
    placing = Placing(device, precision, splits.augment, seed)
    seconds = train(
        model,
        batches,
        epochs=recipe.epochs,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        label_smoothing=recipe.label_smoothing,
        loss_fn=loss_fn,
        deadline=deadline,
        on_epoch=on_epoch,
        placing=placing,
    ).seconds
    model.cpu()  # compression is applied on the CPU: the same masks and scales anywhere
    if not compression:
        return RecipeResult(model, seconds, finetuned=False)
    model = compress.apply(model, compression) or model
    if recipe.finetune_epochs <= 0:
        return RecipeResult(model, seconds, finetuned=False)
    seconds += train(
        model,
        batches,
        epochs=recipe.finetune_epochs,
        lr=recipe.finetune_lr,
        weight_decay=0.0,
        loss_fn=loss_fn,
        deadline=deadline,
        placing=placing,
    ).seconds
    return RecipeResult(model.cpu(), seconds, finetuned=True)


def distiller(
    teacher: nn.Module, *, temperature: float, alpha: float, memo: TeacherMemo | None = None
) -> LossFn:
    """The training loss of a distilled student (``compress.distillation_loss``).
    ``memo``: the teacher's logits kept by input, for inputs that repeat (no
    augmentation); it must be this teacher's."""
    teacher.eval()
    if memo is not None and memo.teacher is not teacher:
        raise ValueError("distiller: the memo holds another teacher's logits")

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        if model_device(teacher) != inputs.device:
            teacher.to(inputs.device)  # follows the student to its training device
        with torch.no_grad():
            teacher_logits = teacher(inputs) if memo is None else memo(inputs)
        return compress.distillation_loss(
            logits, teacher_logits, targets, temperature=temperature, alpha=alpha
        )

    return loss_fn


class TeacherMemo:
    """A frozen teacher's logits, kept by a digest of each input row.

    A supernet search distils every finalist from one teacher, the largest sub-network,
    over the same training images: without augmentation each epoch of each finalist
    would run the teacher on inputs it has seen. On a CPU the teacher's forward pass
    costs more than a small student's step (its FLOPs are several times the student's),
    so each image goes through it once per search. Rows are keyed by content, so
    shuffling, batch sizes and a new batch order do not matter; inputs on an
    accelerator, where the teacher is cheap and reading rows back is not, bypass the
    memo. Only for inputs that repeat: augmented ones would fill it without a hit."""

    def __init__(self, teacher: nn.Module, *, max_rows: int = 200_000) -> None:
        self.teacher = teacher
        self.max_rows = max_rows
        self.rows: dict[bytes, torch.Tensor] = {}
        self.hits = self.misses = 0

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.device.type != "cpu" or len(self.rows) >= self.max_rows:
            # Full: the inputs do not repeat after all; answer without keeping them.
            return self.teacher(inputs)
        flat = inputs.detach().contiguous().reshape(len(inputs), -1)
        raw = flat.view(torch.uint8).numpy()
        keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in raw]
        missing = [i for i, k in enumerate(keys) if k not in self.rows]
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if missing:
            fresh = self.teacher(inputs[missing]).detach()
            for i, row in zip(missing, fresh, strict=True):
                self.rows[keys[i]] = row.clone()
        return torch.stack([self.rows[k] for k in keys])
