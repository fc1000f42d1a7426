"""Accuracy of an artifact, measured in a fresh process.

The evaluator process never sees the trained model object: it rebuilds the model
from the artifact's bytes alone (``compress.load``), so a reported accuracy is the
accuracy of what was written, not of what happened to be in memory. One process
serves a whole search, so torch is imported once, not once per trial.
"""

from __future__ import annotations

import multiprocessing as mp
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ArtifactEvaluator", "evaluate_artifact", "load_artifact"]


class ArtifactEvaluator:
    """A spawned worker that loads artifacts and scores them on val and test.

    Lifecycle: construct once per search (starts the process, which loads and
    splits the data with the same seed as the search), call :meth:`evaluate` per
    artifact, :meth:`close` at the end (also on garbage collection).
    """

    def __init__(
        self,
        *,
        dataset: dict[str, Any],
        seed: int,
        threads: int = 1,
        plugins: Sequence[str] = (),
        timeout_s: float = 600.0,
    ) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._timeout_s = timeout_s
        self._proc = ctx.Process(
            target=_serve,
            args=(child, dataset, seed, threads, list(plugins)),
            daemon=True,
            name="nas-evaluator",
        )
        self._proc.start()
        child.close()

    def evaluate(self, path: str | Path) -> dict[str, Any]:
        """Val and test accuracy (fractions) and a checksum of the predictions."""
        self._conn.send(str(path))
        if not self._conn.poll(self._timeout_s):
            self.close()
            raise TimeoutError(f"evaluator gave no answer for {path} in {self._timeout_s:.0f} s")
        reply: dict[str, Any] = self._conn.recv()
        if "error" in reply:
            raise RuntimeError(f"evaluating {path} failed in the evaluator: {reply['error']}")
        return reply

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
        self._conn.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def load_artifact(path: str | Path) -> Any:
    """Rebuild the model stored in an artifact (architecture from its header)."""
    import compress
    from nas._trial import build_from_meta

    return compress.load(path, build_from_meta)


def evaluate_artifact(path: str | Path, splits: Any) -> dict[str, Any]:
    """Score the model loaded from ``path`` on ``splits`` (val and test)."""
    from nas._train import predict

    model = load_artifact(path)
    out: dict[str, Any] = {}
    for name in ("val", "test"):
        x, y = getattr(splits, f"x_{name}"), getattr(splits, f"y_{name}")
        pred = predict(model, x)
        out[f"{name}_accuracy"] = float((pred == y).float().mean())
        out[f"{name}_pred_crc"] = zlib.crc32(pred.numpy().astype("int64").tobytes())
    return out


def _serve(conn: Any, dataset: dict[str, Any], seed: int, threads: int, plugins: list[str]) -> None:
    import importlib

    import torch

    for module in plugins:
        importlib.import_module(module)
    from nas._config import DatasetConfig
    from nas._data import load_splits

    torch.set_num_threads(threads)
    splits = load_splits(DatasetConfig(**dataset), seed=seed)
    while True:
        try:
            path = conn.recv()
        except EOFError:
            return
        if path is None:
            return
        try:
            conn.send(evaluate_artifact(path, splits))
        except Exception as e:  # reported to the trial, which records it as failed
            conn.send({"error": f"{type(e).__name__}: {e}"})
