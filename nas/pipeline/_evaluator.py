"""Accuracy of an artifact, measured in a fresh process.

The evaluator process never sees the trained model object: it rebuilds the model
from the artifact's bytes alone (``compress.load``), so a reported accuracy is the
accuracy of what was written, not of what happened to be in memory. One process
serves a whole search, so torch is imported once, not once per trial.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas._stop import children_shielded, shield_child, unwatched
from nas.pipeline._errors import TrialTimeout

__all__ = [
    "MAX_ARTIFACT_PARAMS",
    "ArtifactEvaluator",
    "evaluate_artifact",
    "load_artifact",
    "score_artifact",
]


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
        device: str = "cpu",
    ) -> None:
        self._args = (dataset, seed, threads, list(plugins), device)
        self._timeout_s = timeout_s
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve,
            args=(child, *self._args, os.getpid()),
            daemon=True,
            name="nas-evaluator",
        )
        with children_shielded():  # a stop sent to the process group is the driver's
            self._proc.start()
        child.close()
        self._ready = False

    def wait_ready(self) -> float:
        """Wait for the process to have started (imports, data); the seconds waited."""
        return self._wait_ready()

    def _wait_ready(self) -> float:
        """Wait for the process to have started; returns the seconds waited. Start-up
        (imports, data) is the search's cost, not the first trial's: it is waited for
        under the evaluator's own timeout, and moves the trial's deadlines on."""
        if self._ready:
            return 0.0
        start = time.monotonic()
        with unwatched():  # no trial's hard time limit runs meanwhile
            answered = self._conn.poll(self._timeout_s)
        if not answered:
            self.close()
            raise TimeoutError(f"the evaluator did not start in {self._timeout_s:.0f} s")
        try:
            self._conn.recv()
        except EOFError:
            self.close()
            raise RuntimeError(f"{self._died()} while starting") from None
        self._ready = True
        return time.monotonic() - start

    def evaluate(self, path: str | Path, *, deadline: float | None = None) -> dict[str, Any]:
        """Val and test accuracy (fractions) and a checksum of the predictions.

        Args:
            deadline: ``time.monotonic()`` value (the trial's); a reply that has not
                come by then raises :class:`TimeoutError` and restarts the worker.
        """
        if not self._proc.is_alive():
            self._start()  # a timed-out or crashed worker is replaced for the next trial
        waited = self._wait_ready()
        timeout = self._timeout_s
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline + waited - time.monotonic()))
        self._conn.send(str(path))
        try:
            answered = self._conn.poll(timeout)
        except BaseException:
            # Ctrl-C (or anything else) while waiting: the reply would arrive out of
            # step with the next request, so this worker is not reused.
            self.close()
            raise
        if not answered:
            self._proc.kill()  # hung: a polite close would wait for it in vain
            self.close()
            self._start()  # warm up a fresh worker while the next trial trains
            said = f"evaluating {Path(path).name} took longer than {timeout:.1f} s"
            if timeout < self._timeout_s:
                raise TrialTimeout(f"{said} (the trial's time limit, search.trial_timeout_s)")
            raise TimeoutError(f"{said} (the evaluator's)")
        try:
            reply: dict[str, Any] = self._conn.recv()
        except EOFError:
            self.close()
            raise RuntimeError(
                f"{self._died()} while evaluating {Path(path).name}; a fresh one scores the "
                "next trial"
            ) from None
        if "error" in reply:
            raise RuntimeError(f"evaluating {path} failed in the evaluator: {reply['error']}")
        return reply

    def _died(self) -> str:
        """How the worker process ended, for the trial's error: its pid, and the signal
        that killed it (the OOM killer's SIGKILL) or its exit code."""
        self._proc.join(timeout=5)
        code = self._proc.exitcode
        how = "died"
        if code is not None and code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
        elif code is not None:
            how = f"exited with code {code}"
        return f"the evaluator process (pid {self._proc.pid}) {how}"

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5)
        self._conn.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


MAX_ARTIFACT_PARAMS = 200_000_000
"""An artifact whose header describes a larger model is refused before it is built."""


def load_artifact(path: str | Path) -> Any:
    """Rebuild the model stored in an artifact (architecture from its header).

    Nothing is unpickled, and the header is untrusted: the model it describes is
    first built on torch's ``meta`` device (no memory) and refused when it is not a
    model of a registered space or exceeds :data:`MAX_ARTIFACT_PARAMS`.

    Raises:
        ValueError: If the file is not a valid artifact of a buildable model.
    """
    import torch

    import compress
    from search_spaces import build_from_meta

    meta = compress.read_meta(path)
    try:
        with torch.device("meta"):
            n_params = sum(p.numel() for p in build_from_meta(meta).parameters())
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
        raise ValueError(
            f"{path}: the header does not describe a model of a registered search space "
            f"({type(e).__name__}: {' '.join(str(e).split())[:200]})"
        ) from None
    if n_params > MAX_ARTIFACT_PARAMS:
        raise ValueError(
            f"{path}: the header describes a model of {n_params:,} parameters; "
            f"at most {MAX_ARTIFACT_PARAMS:,} are loaded"
        )
    return compress.load(path, build_from_meta)


def score_artifact(
    path: str | Path, splits: Any, *, device: str = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """The model loaded from ``path`` (as a fresh process would load it) and its scores,
    computed on ``device`` in fp32.

    Returns:
        (model, scores): ``scores`` holds ``val_accuracy`` and ``test_accuracy``
        (fractions of the images that could be read), the predicted classes
        ``val_pred`` and ``test_pred``, and ``skipped``, the unreadable images.
    """
    from nas.pipeline._train import predict_labeled, readable_accuracy

    model = load_artifact(path).to(device)
    out: dict[str, Any] = {"skipped": 0}
    for name in ("val", "test"):
        part = getattr(splits, name)
        pred, labels = predict_labeled(model, part)
        acc, unreadable = readable_accuracy(pred, part.y if labels is None else labels)
        out["skipped"] += unreadable
        out[f"{name}_pred"] = pred
        out[f"{name}_accuracy"] = acc
    return model.cpu(), out


def evaluate_artifact(path: str | Path, splits: Any, *, device: str = "cpu") -> dict[str, Any]:
    """Val and test accuracy of the model loaded from ``path``, and checksums of its
    predictions (what the evaluator process sends back: no tensors)."""
    _, scores = score_artifact(path, splits, device=device)
    out: dict[str, Any] = {}
    for name in ("val", "test"):
        pred = scores.pop(f"{name}_pred")
        out[f"{name}_accuracy"] = scores[f"{name}_accuracy"]
        out[f"{name}_pred_crc"] = zlib.crc32(pred.numpy().astype("int64").tobytes())
    if scores["skipped"]:
        out["skipped_images"] = scores["skipped"]
    return out


def _serve(
    conn: Any,
    dataset: dict[str, Any],
    seed: int,
    threads: int,
    plugins: list[str],
    device: str,
    parent: int,
) -> None:
    import importlib
    import threading

    # Ctrl-C, `timeout`, Slurm and a closed terminal signal the whole process group; the
    # driver handles the stop and closes this worker, which must not die halfway
    # through a reply. (It started with those signals blocked: see children_shielded.)
    shield_child()
    # A driver killed with SIGKILL closes its end of the pipe (EOF below), but a worker
    # busy loading data or evaluating would only notice later: watch the parent too.
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()

    import torch

    for module in plugins:
        importlib.import_module(module)
    from nas.config import DatasetConfig
    from nas.pipeline._data import load_splits

    torch.set_num_threads(threads)
    # An artifact's accuracy is its fp32 accuracy on any device: no TF32 convolutions.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    splits = load_splits(DatasetConfig(**dataset), seed=seed)
    for part in (splits.val, splits.test):
        # A daemon process may not start loader workers: a streamed part decodes here.
        if hasattr(part, "num_workers"):
            part.num_workers = 0
    conn.send({"ready": True})
    while True:
        try:
            path = conn.recv()
        except EOFError:
            return
        if path is None:
            return
        try:
            conn.send(evaluate_artifact(path, splits, device=device))
        except Exception as e:  # reported to the trial, which records it as failed
            conn.send({"error": f"{type(e).__name__}: {e}"})


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)
