"""Where a trial trains: ``train.device`` and ``train.precision`` resolved as pure
logic over what a process sees (CUDA devices, MPS, the GPU ids Ray assigned), so the
selection is tested without a GPU; the CLI refuses a device the machine lacks."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nas.config import ConfigError, check_device_spec, compose
from nas.pipeline._device import (
    Placement,
    resolve_device,
    resolve_precision,
    select_device,
)


@pytest.mark.parametrize(
    ("spec", "cuda", "mps", "want"),
    [
        ("auto", 0, False, "cpu"),
        ("auto", 2, False, "cuda:0"),  # the first visible GPU (Ray's, when assigned)
        ("auto", 0, True, "mps"),
        ("auto", 1, True, "cuda:0"),
        ("cpu", 4, True, "cpu"),
        ("cuda", 1, False, "cuda:0"),
        ("cuda:1", 2, False, "cuda:1"),
        ("mps", 0, True, "mps"),
    ],
)
def test_resolve_device(spec: str, cuda: int, mps: bool, want: str) -> None:
    assert resolve_device(spec, cuda_count=cuda, mps=mps) == want


def test_auto_takes_the_gpu_ray_assigned() -> None:
    # Ray narrows CUDA_VISIBLE_DEVICES to the trial's GPUs: its first is cuda:0.
    assert resolve_device("auto", cuda_count=1, mps=False, ray_gpu_ids=("3",)) == "cuda:0"


@pytest.mark.parametrize(
    ("spec", "cuda", "ids", "says"),
    [
        ("cuda", 0, (), "train.device=cuda but this machine has no CUDA device"),
        ("cuda:0", 0, ("1",), "Ray assigned GPU ids ['1'] but torch sees no CUDA device"),
        ("cuda:2", 2, (), "only 2 CUDA device(s) are visible; use cuda:0..cuda:1"),
        ("cuda:1", 1, ("0",), "only 1 CUDA device(s) of the trial's (those Ray assigned)"),
        ("mps", 0, (), "train.device=mps but this machine has no MPS device"),
        ("gpu", 1, (), "train.device='gpu' is not one of auto, cpu, cuda, cuda:N or mps"),
    ],
)
def test_a_missing_device_is_one_line(
    spec: str, cuda: int, ids: tuple[str, ...], says: str
) -> None:
    with pytest.raises(ValueError) as e:
        resolve_device(spec, cuda_count=cuda, mps=False, ray_gpu_ids=ids)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_check_device_spec() -> None:
    assert check_device_spec("cuda:12") is None
    assert check_device_spec("cuda:x") is not None
    assert check_device_spec("CPU") is not None


@pytest.mark.parametrize(
    ("spec", "device", "bf16", "want"),
    [
        ("auto", "cpu", False, "fp32"),
        ("auto", "cuda:0", True, "bf16"),
        ("auto", "cuda:0", False, "fp32"),
        ("auto", "mps", False, "fp32"),
        ("bf16", "cpu", False, "bf16"),  # CPU autocast has bf16
        ("fp16", "cuda:0", True, "fp16"),
        ("fp32", "cuda:0", True, "fp32"),
    ],
)
def test_resolve_precision(spec: str, device: str, bf16: bool, want: str) -> None:
    assert resolve_precision(spec, device, bf16_supported=bf16) == want


def test_fp16_on_the_cpu_is_refused() -> None:
    with pytest.raises(ValueError, match="train.precision=fp16 needs a GPU"):
        resolve_precision("fp16", "cpu", bf16_supported=False)


def test_this_machine_resolves_auto() -> None:
    place = select_device("auto")
    if torch.cuda.is_available():
        assert place.device == "cuda:0" and place.name != "cuda:0"
    else:
        assert place == Placement("cpu", "fp32", "cpu", ())


def test_tags_record_where_a_trial_ran() -> None:
    tags = Placement("cuda:0", "bf16", "NVIDIA H200", ("2",)).tags()
    assert tags == {
        "device": "cuda:0",
        "device_name": "NVIDIA H200",
        "precision": "bf16",
        "ray_gpu_ids": "2",
    }
    assert "ray_gpu_ids" not in Placement("cpu", "fp32", "cpu").tags()


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("train.device=gpu0", "train.device='gpu0' is not one of auto, cpu, cuda, cuda:N or mps"),
        ("train.precision=int8", "train.precision='int8' is not one of auto, bf16, fp16, fp32"),
    ],
)
def test_bad_values_are_refused_before_torch(override: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        compose([override])


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_cuda_without_a_gpu_exits_2_with_one_line(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nas.search", "train.device=cuda", "dataset=digits",
         "search_space=tiny", "search.n_trials=1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: train.device=cuda but this machine has no CUDA device "
        "(torch.cuda.is_available() is False); use auto or cpu"
    ]
    assert not (tmp_path / "mlflow.db").exists()


def test_where_a_search_trains_leaves_its_study_name_alone() -> None:
    # A study started on the CPU resumes on a GPU (and back): the device is not hashed.
    from nas.config import search_hash

    base = search_hash(compose([]))
    assert search_hash(compose(["train.device=cpu"])) == base
    assert search_hash(compose(["train.device=cuda:1", "dataset.num_workers=4"])) == base
    assert search_hash(compose(["train.precision=bf16"])) != base  # it changes the numbers
