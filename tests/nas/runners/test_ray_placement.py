"""Where a ``runner=ray`` trial trains, on the worker's side, without starting Ray: the
device a worker's context resolves, what a worker adds to its trial's tags, the tags
crossing back to the driver as JSON and reaching the trial's MLflow run, and the
refusals. (Ray assigning fake GPUs to concurrent trials: tests/e2e/test_ray_gpus.py.)"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from nas import compose
from nas.config import ConfigError
from nas.pipeline import TrialResult
from nas.pipeline._device import Placement
from nas.runners import _ray as ray_runner
from nas.runners import _ray_worker as worker
from nas.runners import worker_setup

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def _setup(tmp_path: Path, *overrides: str) -> worker.WorkerSetup:
    cfg = compose(["runner=ray", "dataset=digits", "search_space=tiny", *overrides])
    loop = SimpleNamespace(cfg=cfg, out_dir=tmp_path, study_name="s", plugins=())
    return worker_setup(loop)  # type: ignore[arg-type]


def test_auto_trains_on_the_cpu_when_no_gpu_is_reserved(tmp_path: Path) -> None:
    """Ray leaves a GPU-less worker's CUDA_VISIBLE_DEVICES as the node has it; with no
    GPU reserved, auto must not take one that other trials may be using."""
    assert _setup(tmp_path).cfg["train"]["device"] == "cpu"
    assert _setup(tmp_path, "runner.gpus_per_trial=0.25").cfg["train"]["device"] == "auto"
    kept = _setup(tmp_path, "train.device=mps").cfg["train"]["device"]
    assert kept == "mps"  # an explicit choice stays


def test_cuda_without_a_gpu_per_trial_is_refused_at_start_up() -> None:
    cfg = compose(["runner=ray", "train.device=cuda:0"])
    with pytest.raises(ConfigError, match=r"train.device=cuda:0 under runner=ray needs"):
        ray_runner.RayRunner().check(cfg)
    ray_runner.RayRunner().check(compose(["runner=ray", "train.device=cpu"]))  # accepted
    with_gpu = compose(["runner=ray", "train.device=cuda", "runner.gpus_per_trial=0.5"])
    ray_runner.RayRunner().check(with_gpu)  # the worker decides whether it has CUDA


def test_a_local_ray_declares_runner_num_gpus() -> None:
    def gpus(*overrides: str) -> float | None:
        return ray_runner._local_gpus(compose(["runner=ray", *overrides]).runner)

    assert gpus("runner.num_gpus=2", "runner.gpus_per_trial=1") == 2.0
    assert gpus("runner.gpus_per_trial=0.5") is None  # Ray detects them
    assert gpus() == 0  # none asked, none claimed


@no_cuda
def test_a_trial_on_a_worker_without_cuda_fails_with_one_line(tmp_path: Path) -> None:
    """train.device=cuda on a worker whose torch sees no GPU: the trial's outcome is a
    one-line failure (the driver records it FAILED and the search goes on)."""
    setup = _setup(tmp_path, "train.device=cuda", "runner.gpus_per_trial=1")
    proposal = {"number": 0, "arch": {}, "compression": {}, "metrics": {}, "constraints": {}}
    out = worker._run_in_worker({"proposal": json.dumps(proposal)}, setup, None)
    assert out["nas_outcome"] == "failed"
    assert out["nas_reason"].startswith("ConfigError: train.device=cuda but this machine")
    assert "\n" not in out["nas_reason"]
    assert not worker._CONTEXTS  # nothing half-built is cached for the next trial


@no_cuda
def test_the_supernet_training_task_resolves_its_placement(tmp_path: Path) -> None:
    """prepare_in_worker builds its context with no evaluator but with a placement."""
    from nas.runners._context import make_context

    cfg = compose(["dataset=digits", "search_space=tiny", "train.threads=1"])
    placed = make_context(cfg, out_dir=tmp_path, study_name="s", evaluator=False, place=True)
    assert placed.placement is not None and placed.placement.device == "cpu"
    assert placed.evaluator is None
    driver = make_context(cfg, out_dir=tmp_path, study_name="s", evaluator=False)
    assert driver.placement is None  # a Ray driver trains nothing


def test_a_reused_context_follows_the_gpus_ray_gave_this_process(tmp_path: Path) -> None:
    """A cached context placed for other GPU ids than this process has is re-placed."""
    setup = _setup(tmp_path, "runner.gpus_per_trial=1")
    stale = Placement("cuda:0", "bf16", "NVIDIA H200", ("1",))
    ctx: Any = SimpleNamespace(placement=stale)
    worker._replace_if_moved(ctx, setup)  # no Ray here: no GPU ids, no CUDA
    if not torch.cuda.is_available():
        assert ctx.placement == Placement("cpu", "fp32", "cpu", ())
    same: Any = SimpleNamespace(placement=Placement("cpu", "fp32", "cpu", ()))
    kept = same.placement
    worker._replace_if_moved(same, setup)
    assert same.placement is kept


def test_worker_tags_name_the_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert worker.worker_tags() == {"cuda_visible_devices": "3"}
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert worker.worker_tags() == {}


def test_result_tags_cross_ray_and_reach_the_trial_run() -> None:
    """A worker's result crosses to the driver as JSON of the dataclass; its tags
    survive, and the recorder writes them on the trial's run (its own tags win)."""
    from nas.study import end_finished_run, keys

    tags = {
        "device": "cuda:0",
        "device_name": "NVIDIA H200",
        "precision": "bf16",
        "ray_gpu_ids": "2",
        "cuda_visible_devices": "2",
        keys.TAG_FEASIBLE: "bogus",
    }
    sent = TrialResult(True, {"w": 8}, {"bits": 8}, {"val_accuracy": 0.5, "size_bytes": 9.0})
    sent.tags.update(tags)
    back = TrialResult(**json.loads(json.dumps(asdict(sent))))
    assert back == sent and back.tags == tags
    logged: dict[str, Any] = {}
    tracker: Any = SimpleNamespace(finish_trial=lambda run_id, **kw: logged.update(kw))
    end_finished_run(tracker, "run", {}, back)
    assert {k: logged["tags"][k] for k in tags if k != keys.TAG_FEASIBLE} == {
        k: v for k, v in tags.items() if k != keys.TAG_FEASIBLE
    }
    assert logged["tags"][keys.TAG_FEASIBLE] == "true"
