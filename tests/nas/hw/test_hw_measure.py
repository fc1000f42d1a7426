"""Measured latency: the shared warm-up / repeats / median logic, the profile's batch size
and device (``hw.batch_size``, ``hw.device``), and their start-up checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from nas.config import ConfigError, compose, search_hash
from nas.hw import HardwareModel, deployed_latency_ms, measure_latency_ms, median_latency_ms


@dataclass
class Profile:
    name: str = "test"
    latency: str = "measure"
    predictor: str | None = None
    latency_budget_ms: float | None = None
    size_budget_bytes: int | None = None
    peak_memory_budget_bytes: int | None = None
    bits: list[int] = field(default_factory=lambda: [8, 32])
    activation_bytes: int = 4
    threads: int = 1
    device: str = "cpu"
    batch_size: int = 1


class Recorder(nn.Module):
    """A small conv net that records the batch size of every input it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1))
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(int(x.shape[0]))
        return self.net(x)


class FakeTimer:
    """Returns the given times in turn and counts the calls of ``run`` it made."""

    def __init__(self, times: list[float]) -> None:
        self.times = iter(times)
        self.runs = 0

    def __call__(self, run) -> float:
        run()
        self.runs += 1
        return next(self.times)


# -- the shared logic -----------------------------------------------------------------


def test_median_drops_warmup_and_takes_the_median_of_repeats() -> None:
    calls: list[int] = []
    # Warm-up passes are slow (1000 ms) and must not count; the repeats are 1..5.
    timer = FakeTimer([1000.0, 1000.0, 1000.0, 4.0, 1.0, 5.0, 2.0, 3.0])
    median, spread = median_latency_ms(lambda: calls.append(1), timer=timer, warmup=3, repeats=5)
    assert timer.runs == len(calls) == 8  # every pass runs the model, warm-up included
    assert median == 3.0
    assert spread == pytest.approx((4.0 - 2.0) / 3.0)  # IQR over the median


def test_median_without_warmup_and_a_zero_median() -> None:
    timer = FakeTimer([0.0])
    assert median_latency_ms(lambda: None, timer=timer, warmup=0, repeats=1) == (0.0, 0.0)
    assert timer.runs == 1


@pytest.mark.parametrize(("warmup", "repeats"), [(-1, 5), (0, 0)])
def test_median_refuses_bad_counts(warmup: int, repeats: int) -> None:
    with pytest.raises(ValueError, match=f"warmup={warmup}, repeats={repeats}"):
        median_latency_ms(lambda: None, warmup=warmup, repeats=repeats)


# -- the CPU, at a batch size ----------------------------------------------------------


def test_measure_latency_times_the_batch_it_is_given() -> None:
    model = Recorder()
    median, spread = measure_latency_ms(model, (2, 3, 16, 16), warmup=2, repeats=5)
    assert median > 0 and spread >= 0
    assert model.batches == [2] * 7


def test_cpu_measure_at_batch_size_2() -> None:
    seen: list[torch.Size] = []

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen.append(args[0].shape)  # under the ONNX tracer: read it afterwards

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1))
    model[0].register_forward_pre_hook(record)
    hw = HardwareModel(Profile(batch_size=2))
    assert hw.batch_size == 2 and hw.device == torch.device("cpu")
    assert hw.kernel_bits == [8, 32]  # the CPU measures ONNX Runtime, as before
    # The ONNX export traces the model at the profile's batch, whatever batch is asked.
    assert hw.latency_ms(model, (1, 3, 16, 16)) > 0
    assert seen and {int(shape[0]) for shape in seen} == {2}
    assert deployed_latency_ms(hw, model, (1, 3, 16, 16)) > 0


def test_profiles_without_the_keys_measure_at_batch_1_on_the_cpu() -> None:
    @dataclass
    class Old:
        name: str = "old"
        latency: str = "measure"
        predictor: str | None = None
        activation_bytes: int = 4
        threads: int = 1

    hw = HardwareModel(Old())  # type: ignore[arg-type]
    assert hw.batch_size == 1 and hw.device == torch.device("cpu")


def test_device_is_only_read_when_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    predicted = HardwareModel(Profile(latency="predict", predictor="pixel3", device="cuda"))
    assert predicted.device == torch.device("cpu")
    none = HardwareModel(Profile(latency="none", device="cuda"))
    assert math.isnan(none.latency_ms(Recorder(), (1, 3, 8, 8)))


# -- start-up refusals ------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_measuring_on_cuda_without_cuda_is_refused(
    monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError) as e:
        HardwareModel(Profile(device=device))
    msg = str(e.value)
    assert msg.startswith(f"hw.device={device} but this machine has no CUDA device")
    assert "\n" not in msg


def test_a_cuda_index_past_the_last_gpu_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="hw.device=cuda:3 but this machine has 1 CUDA device"):
        HardwareModel(Profile(device="cuda:3"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"batch_size": 0}, "batch_size=0 must be >= 1"), ({"device": "gpu"}, "device='gpu'")],
)
def test_bad_profiles_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HardwareModel(Profile(**kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["hw.latency=measure", "hw.batch_size=0"], "hw.batch_size=0 must be an integer >= 1"),
        (["hw.latency=measure", "hw.device=gpu"], "hw.device='gpu' is not one of cpu, cuda"),
        (["hw.latency=measure", "hw.device=cuda:x"], "hw.device='cuda:x' is not one of"),
        (["hw.device=cuda"], "hw.device=cuda and hw.batch_size=1 set how a latency is measured, "
                             "but hw.latency='predict'; add hw.latency=measure"),
        (["hw.batch_size=8"], "but hw.latency='predict'"),
    ],
)  # fmt: skip
def test_config_refuses_bad_device_and_batch_size(overrides: list[str], line: str) -> None:
    with pytest.raises(ConfigError) as e:
        compose(["+hw=gpu", *overrides])
    assert line in str(e.value) and "\n" not in str(e.value)


def test_config_accepts_measuring_on_cuda_and_keeps_the_gpu_hash() -> None:
    cfg = compose(["+hw=gpu", "hw.latency=measure", "hw.device=cuda:0", "hw.batch_size=8"])
    assert cfg.hw.device == "cuda:0" and cfg.hw.batch_size == 8
    # gpu.yaml leaves device and batch_size at their neutral values: studies resume.
    assert search_hash(compose(["+hw=gpu"])) == "fba59367d5"


# -- a real GPU ---------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_measure_on_cuda() -> None:
    model = Recorder()
    hw = HardwareModel(Profile(device="cuda", batch_size=4))
    assert hw.device.type == "cuda" and hw.kernel_bits == [32]
    ms = hw.latency_ms(model, (1, 3, 32, 32))
    assert 0 < ms < 1000
    assert next(model.parameters()).device.type == "cpu"  # a copy was timed on the GPU
    median, spread = measure_latency_ms(model, (4, 3, 32, 32), device="cuda", repeats=10)
    assert median > 0 and spread >= 0
    assert deployed_latency_ms(hw, model, (1, 3, 32, 32)) > 0
