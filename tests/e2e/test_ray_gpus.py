"""runner.gpus_per_trial on a machine without a GPU: a local Ray that declares GPUs it
does not have (``runner.num_gpus``) still assigns their ids to trials and narrows each
trial's ``CUDA_VISIBLE_DEVICES`` to them, as on a GPU node. So the scheduling half of
GPU trials (fractional shares run at once, each trial told its GPU, every child run
recording where it ran) is checked here; torch sees no CUDA, so ``train.device=auto``
trains on the CPU. (Training on a real GPU: ``scripts/gpu_check.sh``. The worker's side
without Ray: tests/nas/runners/test_ray_placement.py.)
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import torch

from nas import compose
from nas.driver import run_search
from nas.study import keys

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the CPU fallback of fake GPUs"
)


def _gpu_search(tmp_path: Path, fast, mlflow_runs, *overrides: str) -> tuple[Any, list[Any], float]:
    """A fast Ray search; its outcome, its child runs, and its wall time."""
    start = time.monotonic()
    outcome = run_search(compose(fast("runner=ray", f"search.output_dir={tmp_path}", *overrides)))
    wall = time.monotonic() - start
    children = mlflow_runs(outcome.tracking_uri, keys.ROLE_TRIAL)
    errors = {r.data.tags.get(keys.TAG_ERROR) for r in children} - {None}
    assert not errors, f"failed trials: {errors}"
    return outcome, children, wall


def _spans(children: list[Any]) -> list[tuple[float, float]]:
    """Each trial's (start, end) on its worker, in seconds since the epoch."""

    def at(run: Any, tag: str) -> float:
        return datetime.fromisoformat(run.data.tags[tag]).timestamp()

    return [(at(r, "ray.started_at"), at(r, "ray.ended_at")) for r in children]


def test_four_trials_share_one_gpu_at_a_quarter_each(tmp_path: Path, fast, mlflow_runs) -> None:
    """gpus_per_trial=0.25 on one GPU: four trials at once, each told GPU 0."""
    outcome, children, wall = _gpu_search(
        tmp_path, fast, mlflow_runs,
        "runner.num_gpus=1", "runner.gpus_per_trial=0.25", "runner.max_concurrent=4",
        "runner.cpus_per_trial=0.5", "search.n_trials=4",
    )  # fmt: skip
    assert (outcome.exit_code, outcome.n_trials, outcome.n_failed) == (0, 4, 0)
    assert len(children) == 4
    for run in children:
        tags = run.data.tags
        assert tags["ray_gpu_ids"] == "0", tags  # the id Ray gave the trial
        assert tags["cuda_visible_devices"] == "0"  # what Ray narrowed the worker to
        assert (tags["device"], tags["device_name"], tags["precision"]) == ("cpu", "cpu", "fp32")
    spans = _spans(children)
    overlap = min(end for _, end in spans) - max(start for start, _ in spans)
    print(f"4 trials at gpus_per_trial=0.25: wall {wall:.1f} s, all four overlapped "
          f"{overlap:.1f} s", file=sys.stderr)  # fmt: skip
    assert overlap > 0, f"the four trials did not all run at once: {spans}"


def test_one_gpu_each_gives_two_trials_distinct_gpus(tmp_path: Path, fast, mlflow_runs) -> None:
    """gpus_per_trial=1 on two GPUs: two trials at once, on GPU 0 and GPU 1."""
    outcome, children, wall = _gpu_search(
        tmp_path, fast, mlflow_runs,
        "runner.num_gpus=2", "runner.gpus_per_trial=1", "runner.max_concurrent=2",
        "runner.cpus_per_trial=1", "search.n_trials=2",
    )  # fmt: skip
    assert (outcome.exit_code, outcome.n_trials, outcome.n_failed) == (0, 2, 0)
    ids = sorted(r.data.tags["ray_gpu_ids"] for r in children)
    assert ids == ["0", "1"]
    # Ray narrows each worker to its GPU, in the node's numbering (torch then calls it
    # cuda:0, whichever it is).
    assert sorted(r.data.tags["cuda_visible_devices"] for r in children) == ids
    spans = _spans(children)
    overlap = min(end for _, end in spans) - max(start for start, _ in spans)
    print(f"2 trials at gpus_per_trial=1: wall {wall:.1f} s, overlapped {overlap:.1f} s",
          file=sys.stderr)  # fmt: skip
    assert overlap > 0, f"the two trials did not run at once: {spans}"
