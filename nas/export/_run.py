"""Getting a model out of a search: one MLflow trial run -> a deployable folder.

:func:`export_run` takes the run of a trial (normally a front member, tag
``pareto=true``) and writes into ``out``:

- ``model.dsz``: the compressed artifact (downloaded from the run's MLflow artifacts,
  or, for a run that never joined the front, found where the search wrote it);
- ``model.onnx``: the deployable ONNX model, int8 (ONNX Runtime static QDQ, calibrated
  on the search's training data) only where that measured faster than fp32; both
  variants stay in ``onnx/fp32/`` and ``onnx/int8/``;
- ``metrics.json`` and ``README.md``: run, study, accuracies, sizes, latencies,
  architecture, compression, and the ONNX models' agreement with ``model.dsz``.

The data come from the search's own config (its parent run's ``config.yaml``, or for
older searches its flattened params), split with the search's seed, so the test
split is the same held-out one the search never selected on.

The steps, each a module: resolve (``_resolve``) -> fetch (``_fetch``) -> score ->
retrain (``_retrain``, optional) -> ONNX (``_onnx``) -> write (``_readme``).

Bad input (an unknown run, an unreachable tracking server, a run without an
artifact, an unwritable folder) raises :class:`nas.config.ConfigError` with one line,
before any work where it can be known before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.config import ConfigError, one_line
from nas.export._fetch import Artifact, fetch_artifact, prepare_out_dir
from nas.export._onnx import export_onnx
from nas.export._readme import metrics_record, write_record
from nas.export._resolve import (
    TrialRun,
    check_request,
    connect,
    default_tracking_uri,
    resolve_trial,
)
from nas.export._retrain import retrain

if TYPE_CHECKING:
    import torch

    from nas.pipeline import Splits

__all__ = ["ExportResult", "export_run"]


@dataclass
class ExportResult:
    out: Path
    metrics: dict[str, Any] = field(default_factory=dict)


def export_run(
    run_id: str,
    out: str | os.PathLike[str],
    *,
    tracking_uri: str | None = None,
    retrain_epochs: int = 0,
    trial: int | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
    device: str | None = None,
) -> ExportResult:
    """Export the trial run ``run_id`` (or trial ``trial`` of the search ``run_id``) to ``out``.

    Args:
        retrain_epochs: When > 0, first retrain the candidate from scratch for this
            many epochs with the search's training settings, compress it the same
            way, fine-tune, and export that instead.
        threads: torch threads (default: the search's ``train.threads``).
        device: the device to export for, of a multi-device search (``+hw=[a,b]``):
            with a search's run id and no ``trial``, its front's most accurate member.
        log: Progress sink (default: one line each to stderr).

    Raises:
        ConfigError: One line, for anything the user's input got wrong.
    """
    say = log or _to_stderr
    uri = tracking_uri or default_tracking_uri()
    out_dir = Path(out).expanduser().resolve()
    check_request(run_id, out_dir, retrain_epochs=retrain_epochs, trial=trial, threads=threads)

    client = connect(uri)
    found = resolve_trial(client, run_id, trial, uri, say, device)
    prepare_out_dir(out_dir)
    artifact = fetch_artifact(client, found, out_dir, uri=uri, retrain=retrain_epochs > 0, say=say)
    splits = _load_data(found, threads, say)
    final = searched = _score_searched(artifact, found, splits, say)
    retrained: dict[str, Any] | None = None
    if retrain_epochs:
        final, retrained = _retrain(artifact, found, splits, searched, retrain_epochs, say)
    onnx = export_onnx(
        final.model,
        final.test_pred,
        splits,
        out_dir,
        artifact.input_shape,
        seed=found.record.seed,
        threads=found.record.latency_threads,
        say=say,
    )
    metrics = metrics_record(
        found, artifact, uri=uri, dsz=final.summary(), retrain=retrained, onnx=onnx, splits=splits
    )
    write_record(out_dir, metrics)
    say(f"wrote {out_dir} (model.dsz, model.onnx = {onnx['chosen']}, README.md, metrics.json)")
    return ExportResult(out_dir, metrics)


@dataclass(frozen=True)
class _Scored:
    """A ``.dsz`` artifact loaded as a fresh process would, and its predictions."""

    path: Path
    size_bytes: int
    model: Any
    val_accuracy: float
    test_accuracy: float
    test_pred: torch.Tensor

    def summary(self) -> dict[str, Any]:
        """The ``dsz`` entry of ``metrics.json``."""
        return {
            "file": self.path.name,
            "size_bytes": self.size_bytes,
            "val_accuracy": self.val_accuracy,
            "test_accuracy": self.test_accuracy,
        }

    def accuracies(self) -> dict[str, float]:
        return {"val_accuracy": self.val_accuracy, "test_accuracy": self.test_accuracy}


def _to_stderr(msg: str) -> None:
    print(f"export: {msg}", file=sys.stderr, flush=True)


def _load_data(found: TrialRun, threads: int | None, say: Callable[[str], None]) -> Splits:
    """The search's splits (its data, its seed), with torch set to ``threads``."""
    import torch

    from nas.pipeline import load_splits

    record = found.record
    torch.set_num_threads(int(threads or record.threads))
    say(f"data: {record.dataset.name} (seed {record.seed}, config from {record.source})")
    return load_splits(record.dataset, seed=record.seed)


def _score(path: Path, splits: Splits) -> _Scored:
    import compress
    from nas.pipeline import score_artifact

    model, scores = score_artifact(path, splits)
    return _Scored(
        path=path,
        size_bytes=compress.size_bytes(path),
        model=model,
        val_accuracy=scores["val_accuracy"],
        test_accuracy=scores["test_accuracy"],
        test_pred=scores["test_pred"],
    )


def _score_searched(
    artifact: Artifact, found: TrialRun, splits: Splits, say: Callable[[str], None]
) -> _Scored:
    """Score the searched artifact; warn when it does not match what the search recorded."""
    try:
        scored = _score(artifact.path, splits)
    except ValueError as e:  # a header this process cannot build
        raise ConfigError(
            f"{one_line(e, 200)} (a user search space needs --plugin MODULE)"
        ) from None
    recorded = found.metrics.get("val_accuracy")
    if recorded is not None and abs(scored.val_accuracy - recorded) > 1e-6:
        say(
            f"warning: val accuracy {scored.val_accuracy:.4f} differs from the run's "
            f"{recorded:.4f}; is the data the search's?"
        )
    return scored


def _retrain(
    artifact: Artifact,
    found: TrialRun,
    splits: Splits,
    searched: _Scored,
    epochs: int,
    say: Callable[[str], None],
) -> tuple[_Scored, dict[str, Any]]:
    """Retrain into ``model.dsz`` next to ``searched.dsz``; the new model and the record."""
    path = artifact.path.parent / "model.dsz"
    done = retrain(artifact, found, splits, epochs=epochs, dst=path, say=say)
    final = _score(path, splits)
    done.update(
        before=searched.accuracies(),
        after=final.accuracies(),
        size_bytes_before=artifact.size_bytes,
        size_bytes_after=final.size_bytes,
    )
    say(
        f"retrained: val {searched.val_accuracy:.4f} -> {final.val_accuracy:.4f}, "
        f"test {searched.test_accuracy:.4f} -> {final.test_accuracy:.4f}"
    )
    return final, done
