"""Knowledge distillation loss (Hinton et al., 2015, "Distilling the Knowledge in a
Neural Network"); the training loop that uses it lives with the trainer."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["distillation_loss"]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """``alpha * KL(softmax(t/T) || softmax(s/T)) * T^2 + (1 - alpha) * CE(s, y)``.

    The ``T^2`` factor keeps the soft-target gradients on the same scale as the
    hard-target ones when ``T`` changes.

    Args:
        student_logits: ``(batch, classes)`` logits of the model being trained.
        teacher_logits: ``(batch, classes)`` logits of the teacher (not differentiated).
        targets: ``(batch,)`` class indices.
        temperature: Softening temperature ``T > 0``.
        alpha: Weight of the distillation term, in ``[0, 1]``.

    Returns:
        The scalar loss, averaged over the batch.

    Raises:
        ValueError: If ``temperature`` or ``alpha`` is out of range.
    """
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r} must be > 0")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha={alpha!r} is outside [0, 1]")
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits.detach() / t, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    hard = F.cross_entropy(student_logits, targets)
    return alpha * soft * t * t + (1 - alpha) * hard
