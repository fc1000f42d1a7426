"""Helpers that more than one benchmark script needs, and that are no part of the product.

Imported as ``from _common import ...``: a script run as ``python scripts/x.py`` has
``scripts/`` first on ``sys.path``. Light at import (no torch), so a script can set
thread variables or refuse a bad argument before torch loads.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from nas.pipeline import LossFn, Recipe, Splits

__all__ = ["git_commit", "logit_agreement", "onnx_logits", "train_uncompressed"]


def git_commit() -> str:
    """The checkout's short commit, for a benchmark record ("unknown" outside git)."""
    import subprocess
    from pathlib import Path

    out = subprocess.run(
        ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return out or "unknown"


def train_uncompressed(
    space: Any,
    arch: dict[str, Any],
    splits: Splits,
    recipe: Recipe,
    *,
    seed: int,
    loss_fn: LossFn | None = None,
) -> nn.Module:
    """``arch`` trained as a search trial trains it with no compression, seed ``seed``.

    A trial seeds torch with ``search.seed + number`` and then builds its model;
    :func:`nas.pipeline.train_compressed` shuffles the batches by the same seed. So a
    baseline (or a distillation student) here is the model a trial of ``arch`` gets.
    """
    import torch

    from nas.pipeline import train_compressed

    torch.manual_seed(seed)
    model = space.build(arch, splits.spec)
    return train_compressed(model, splits, recipe, compression=[], seed=seed, loss_fn=loss_fn).model


def onnx_logits(path: str | os.PathLike[str], x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's outputs for each row of ``x``, one at a time (the graph has batch 1)."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"input": xi[None]})[0] for xi in x])


def logit_agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """How close ``other``'s logits are to ``reference``'s (e.g. int8 to fp32), row by row.

    Returns:
        ``top1_agreement`` (share of rows with the same argmax), ``cosine_min`` (the
        lowest per-row cosine similarity), ``max_abs_diff`` and ``max_abs_logit`` (the
        largest absolute reference logit, the scale of the difference).
    """
    import numpy as np

    a, b = reference, other
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {
        "top1_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
        "cosine_min": float(cos.min()),
        "max_abs_diff": float(np.abs(a - b).max()),
        "max_abs_logit": float(np.abs(a).max()),
    }
