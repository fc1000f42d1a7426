"""Training throughput on a GPU against the CPU, and what a search trial's time goes to.

    python scripts/bench_gpu.py --device cpu --threads 2 --out docs/bench/gpu_cpu_side.json
    python scripts/bench_gpu.py --device cuda --out $OUT/gpu_side.json     # on the GPU machine
    python scripts/bench_gpu.py --quick                                     # a smoke run
    python scripts/bench_gpu.py combine --cpu docs/bench/gpu_cpu_side.json \\
        [--gpu gpu_side.json] [--gpu-run DIR] [--cpu-run DIR] --out docs/bench/gpu.json

Throughput (the default sub-command) needs only torch and timm (and this repo's
``search_spaces`` and ``compress``, which import nothing else), so it runs on a GPU
machine without Optuna, Hydra or MLflow. It times one training step at batch 128 on
synthetic MNIST-shaped tensors (1x28x28, 10 classes) -- forward, backward and an AdamW
step -- for three workloads of the default ``mbconv`` space:

- ``largest``: every elastic dimension at its maximum (``space.extremes()``);
- ``median``: the median (``statistics.median_low``) of each dimension's choices;
- ``supernet``: one full sandwich step of the weight-sharing supernet as
  ``nas.pipeline._supernet_train`` runs it after warm-up with
  ``conf/strategy/supernet.yaml`` (the largest network on the labels, then the smallest
  and ``random_subnets`` random sub-networks distilled in place from it, each with a
  drawn bit-width and magnitude sparsity, gradients summed, one optimizer step). That
  module imports ``nas.config`` (OmegaConf), so the step is restated here from the same
  functions it calls: ``SlicedSupernet.shell``/``weights``, ``compress.magnitude_mask``,
  ``compress.fake_quantize`` and ``nas.hw.RandomSuggest`` (tests/scripts checks the
  restatement against ``_subnet_loss``).

at each precision: ``fp32``, and on CUDA ``bf16`` and ``fp16`` under ``torch.autocast``
(``fp16`` with ``torch.amp.GradScaler``). Each figure is the median over ``repeats`` of
the samples per second of ``steps`` steps, after ``warmup`` steps (CUDA synchronized
around each repeat).

``combine`` writes the record ``docs/bench/gpu.json``: ``train_samples_per_s_ratio``
(GPU over 2 CPU cores, the ``median`` workload, GPU at bf16 -- what ``train.precision=
auto`` picks on a GPU with bf16 -- over CPU fp32) and ``trials_per_minute_ratio`` (the
default search with ``train.device=cuda`` over docs/bench/default_run.json's CPU run),
with the per-workload and per-precision ratios and each side's breakdown of a trial's
time read from its ``mlflow.db`` (feasibility, training, export + evaluation, the
driver's share: sampling, tracking and the rest of ask-to-told). A side not measured
is null, with a note; no figure is ever filled in for a GPU that did not run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python scripts/bench_gpu.py`: the repo's packages
    sys.path.insert(0, str(REPO))
if str(REPO / "scripts") not in sys.path:  # loaded by path (the tests): its sibling below
    sys.path.insert(0, str(REPO / "scripts"))

from gpu_record import (  # noqa: E402  (the record: ratios, a search's trial time)
    PRECISIONS,
    WORKLOADS,
    breakdown_of,
    combine,
    main_combine,
    trial_breakdown,
)

__all__ = ["combine", "main", "measure", "table", "trial_breakdown"]

BATCH, IN_CHANS, IMAGE_SIZE, NUM_CLASSES = 128, 1, 28, 10
# conf/train/default.yaml and conf/strategy/supernet.yaml, conf/compress/joint.yaml.
LR, WEIGHT_DECAY = 0.05, 1e-4
SUPERNET = {
    "random_subnets": 2,
    "distill_temperature": 1.0,
    "bits": (2, 3, 4, 6, 8, 16, 32),
    "sparsity_max": 0.9,
}


# -- the workloads ----------------------------------------------------------------------


def mbconv_space() -> Any:
    """The default ``mbconv`` space (conf/search_space/mbconv.yaml keeps the defaults)."""
    from search_spaces import MBConvSpaceConfig, get_search_space

    return get_search_space("mbconv", MBConvSpaceConfig())


def candidate_archs(space: Any) -> dict[str, dict[str, Any]]:
    """The ``largest`` arch (every dimension at its maximum) and the ``median`` one."""
    cfg, n = space.cfg, space.num_stages
    _, largest = space.extremes()
    depth = statistics.median_low(range(cfg.depth_min, cfg.depth_max + 1))
    median = {
        "width_mult": float(statistics.median_low(sorted(cfg.width_mults))),
        "depths": [int(depth)] * n,
        "kernels": [3] + [int(statistics.median_low(sorted(cfg.kernels)))] * (n - 1),
        "expansions": [1] + [int(statistics.median_low(sorted(cfg.expansions)))] * (n - 1),
    }
    return {"largest": largest, "median": median}


def _spec() -> Any:
    from search_spaces import InputSpec

    return InputSpec(in_chans=IN_CHANS, image_size=IMAGE_SIZE, num_classes=NUM_CLASSES)


class _Amp:
    """Autocast and loss scaling for one precision on one device."""

    def __init__(self, precision: str, device: Any) -> None:
        import torch

        self.device_type = device.type
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scaler = (
            torch.amp.GradScaler(device.type) if precision == "fp16" else None  # type: ignore[attr-defined]
        )

    def autocast(self) -> Any:
        import contextlib

        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: Any) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, opt: Any) -> None:
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()


def model_step(space: Any, arch: dict[str, Any], precision: str, device: Any) -> Callable:
    """One training step of ``arch`` built by the space: ``step(x, y)``."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = space.build(arch, _spec()).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    amp = _Amp(precision, device)

    def step(x: Any, y: Any) -> None:
        opt.zero_grad(set_to_none=True)
        with amp.autocast():
            loss = F.cross_entropy(model(x), y)
        amp.backward(loss)
        amp.step(opt)

    step.params = sum(p.numel() for p in model.parameters())  # type: ignore[attr-defined]
    return step


def subnet_loss(
    supernet: Any, arch: dict[str, Any], rng: Any, x: Any, soft: Any, *, recipe: dict[str, Any]
) -> Any:
    """In-place distillation of one sub-network, as ``_supernet_train._subnet_loss``."""
    import torch.nn.functional as F
    from torch import nn
    from torch.func import functional_call

    import compress

    shell = supernet.shell(arch)
    shell.train()
    bits = int(rng.choice(recipe["bits"]))
    smax = recipe["sparsity_max"]
    sparsity = float(rng.uniform(0.0, smax)) if smax > 0 else 0.0
    weights = supernet.weights(arch, shell)
    for name, m in shell.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            w = weights[f"{name}.weight"]
            if sparsity > 0:
                w = w * compress.magnitude_mask(w, sparsity)
            weights[f"{name}.weight"] = compress.fake_quantize(w, bits)
    logits = functional_call(shell, weights, (x,))
    t = recipe["distill_temperature"]
    return F.kl_div(
        F.log_softmax(logits / t, dim=1), F.softmax(soft / t, dim=1), reduction="batchmean"
    ) * (t * t)


def supernet_step(space: Any, precision: str, device: Any, *, seed: int = 0) -> Callable:
    """One sandwich step of the shared-weight supernet (largest, smallest, randoms)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from nas.hw import RandomSuggest
    from search_spaces import SlicedSupernet

    torch.manual_seed(seed)
    supernet = SlicedSupernet(space, _spec())
    supernet.model.to(device).train()
    # Shells are built on the CPU by the space; their buffers (BatchNorm) must follow.
    build = supernet.space.build
    supernet.space = _OnDevice(space, device, build)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(supernet.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    amp = _Amp(precision, device)

    def step(x: Any, y: Any) -> None:
        opt.zero_grad(set_to_none=True)
        with amp.autocast():
            logits = supernet.model(x)
            loss = F.cross_entropy(logits, y)
        amp.backward(loss)
        soft = logits.detach()
        suggest = RandomSuggest(rng)
        randoms = [space.sample(suggest) for _ in range(SUPERNET["random_subnets"])]
        for arch in [supernet.smallest, *randoms]:
            with amp.autocast():
                sub = subnet_loss(supernet, arch, rng, x, soft, recipe=SUPERNET)
            amp.backward(sub)
        amp.step(opt)

    step.params = sum(p.numel() for p in supernet.parameters())  # type: ignore[attr-defined]
    return step


class _OnDevice:
    """A space whose ``build`` puts the module on ``device`` (the supernet's shells)."""

    def __init__(self, space: Any, device: Any, build: Callable) -> None:
        self._space, self._device, self._build = space, device, build

    def build(self, arch: dict[str, Any], spec: Any) -> Any:
        return self._build(arch, spec).to(self._device)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._space, name)


# -- timing -----------------------------------------------------------------------------


def time_step(
    step: Callable, device: Any, *, batch: int, warmup: int, steps: int, repeats: int
) -> dict[str, Any]:
    """Samples per second of ``step``: the median over ``repeats`` of ``steps`` steps."""
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, IN_CHANS, IMAGE_SIZE, IMAGE_SIZE, generator=g).to(device)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=g).to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step(x, y)
    sync()
    rates = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            step(x, y)
        sync()
        rates.append(batch * steps / (time.perf_counter() - t0))
    return {
        "samples_per_s": statistics.median(rates),
        "step_ms": 1000.0 * batch / statistics.median(rates),
        "repeats_samples_per_s": rates,
    }


def precisions_for(device: Any) -> list[str]:
    """fp32 everywhere; bf16 and fp16 on CUDA (bf16 only where the GPU has it)."""
    import torch

    if device.type != "cuda":
        return ["fp32"]
    out = ["fp32"]
    if torch.cuda.is_bf16_supported():
        out.append("bf16")
    return [*out, "fp16"]


def measure(
    device_name: str,
    *,
    workloads: tuple[str, ...] = WORKLOADS,
    precisions: list[str] | None = None,
    batch: int = BATCH,
    warmup: int = 3,
    steps: int = 10,
    repeats: int = 5,
) -> dict[str, Any]:
    """Every workload at every precision: ``{"results": {workload: {precision: ...}}}``."""
    import torch

    device = torch.device(device_name)
    space = mbconv_space()
    archs = candidate_archs(space)
    precs = precisions if precisions is not None else precisions_for(device)
    results: dict[str, dict[str, Any]] = {}
    params: dict[str, int] = {}
    for w in workloads:
        results[w] = {}
        for prec in precs:
            if w == "supernet":
                step = supernet_step(space, prec, device)
            else:
                step = model_step(space, archs[w], prec, device)
            params[w] = step.params  # type: ignore[attr-defined]
            fig = time_step(step, device, batch=batch, warmup=warmup, steps=steps, repeats=repeats)
            results[w][prec] = fig
            print(
                f"  {w:<9} {prec:<5} {fig['samples_per_s']:>10.0f} samples/s",
                file=sys.stderr,
                flush=True,
            )
            del step
            if device.type == "cuda":
                torch.cuda.empty_cache()
    out: dict[str, Any] = {
        "device": device_name,
        "device_name": _device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch_size": batch,
        "input": [IN_CHANS, IMAGE_SIZE, IMAGE_SIZE],
        "num_classes": NUM_CLASSES,
        "warmup_steps": warmup,
        "steps": steps,
        "repeats": repeats,
        "archs": archs,
        "params": params,
        "supernet_recipe": {**SUPERNET, "bits": list(SUPERNET["bits"])},
        "results": results,
    }
    fastest = {w: max(r, key=lambda p, r=r: r[p]["samples_per_s"]) for w, r in results.items()}
    out["fastest_precision"] = fastest
    return out


def _device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def table(record: dict[str, Any]) -> str:
    """The samples/s table: one row per workload, one column per precision."""
    results = record["results"]
    precs = [p for p in PRECISIONS if any(p in r for r in results.values())]
    lines = [
        f"{record['device']} ({record['device_name']}), batch {record['batch_size']}, "
        f"{record['threads']} threads: training samples/s (median of {record['repeats']} x "
        f"{record['steps']} steps)",
        f"{'workload':<10} {'params':>9} " + " ".join(f"{p:>9}" for p in precs),
    ]
    for w, r in results.items():
        cells = " ".join(f"{r[p]['samples_per_s']:>9.0f}" if p in r else f"{'-':>9}" for p in precs)
        lines.append(f"{w:<10} {record['params'].get(w, 0):>9,} {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["combine"]:
        main_combine(argv[1:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    ap.add_argument("--out", type=Path, help="write the JSON here (else stdout only)")
    ap.add_argument("--quick", action="store_true", help="tiny: batch 16, 1 x 2 steps, 2 repeats")
    ap.add_argument("--workloads", nargs="*", choices=WORKLOADS, default=list(WORKLOADS))
    ap.add_argument("--precisions", nargs="*", choices=PRECISIONS, help="default: per device")
    ap.add_argument("--steps", type=int, help="steps per repeat (default 10; cuda 50)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, help="warm-up steps (default 3; cuda 10)")
    ap.add_argument("--cpu-run", type=Path, help="a CPU search's dir: add its trial breakdown")
    args = ap.parse_args(argv)
    from _bench import Bench

    bench = Bench(__file__, argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py: --device cuda, but torch sees no CUDA device")
    cuda = args.device == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    kw: dict[str, Any] = {
        "batch": 16 if args.quick else BATCH,
        "warmup": 1 if args.quick else (args.warmup or (10 if cuda else 3)),
        "steps": 2 if args.quick else (args.steps or (50 if cuda else 10)),
        "repeats": 2 if args.quick else args.repeats,
    }
    record = measure(args.device, workloads=tuple(args.workloads), precisions=args.precisions, **kw)
    record.update(
        quick=bool(args.quick),
        cpus=os.cpu_count(),
        loadavg=os.getloadavg(),
    )
    bd = breakdown_of(args.cpu_run)
    if bd is not None:
        record["trial_breakdown"] = bd
    print(table(record))
    bench.write(record, args.out)


if __name__ == "__main__":
    main()
