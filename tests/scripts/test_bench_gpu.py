"""The GPU benchmark at tiny size on the CPU: its record's shape, its restatement of the
supernet step, the trial breakdown from an mlflow.db, and null ratios without a GPU."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

_REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_gpu", _REPO / "scripts" / "bench_gpu.py")
assert _spec is not None and _spec.loader is not None
bench_gpu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_gpu)


def test_largest_and_median_candidates() -> None:
    space = bench_gpu.mbconv_space()
    archs = bench_gpu.candidate_archs(space)
    assert archs["largest"] == space.extremes()[1]
    assert archs["largest"]["width_mult"] == 1.0 and archs["largest"]["depths"] == [3] * 4
    assert archs["median"] == {
        "width_mult": 0.5,
        "depths": [2, 2, 2, 2],
        "kernels": [3, 3, 3, 3],
        "expansions": [1, 3, 3, 3],
    }


@pytest.fixture(scope="module")
def tiny_record() -> dict[str, Any]:
    import torch

    threads = torch.get_num_threads()
    try:
        return bench_gpu.measure("cpu", batch=4, warmup=0, steps=1, repeats=1)
    finally:
        torch.set_num_threads(threads)


def test_tiny_cpu_record_has_every_workload_at_fp32(tiny_record: dict[str, Any]) -> None:
    rec = json.loads(json.dumps(tiny_record))  # JSON-clean
    assert set(rec["results"]) == set(bench_gpu.WORKLOADS)
    for w in bench_gpu.WORKLOADS:
        assert set(rec["results"][w]) == {"fp32"}  # bf16/fp16 only on CUDA
        fig = rec["results"][w]["fp32"]
        assert fig["samples_per_s"] > 0 and len(fig["repeats_samples_per_s"]) == 1
        assert rec["fastest_precision"][w] == "fp32"
    assert rec["params"]["supernet"] == rec["params"]["largest"] > rec["params"]["median"]
    assert rec["batch_size"] == 4 and rec["input"] == [1, 28, 28]
    text = bench_gpu.table(rec)
    assert "supernet" in text and "fp32" in text


def test_supernet_loss_is_the_training_loops() -> None:
    """The restated sub-network loss equals nas.pipeline's for the same draws."""
    import numpy as np
    import torch

    from nas.pipeline._supernet_train import SupernetRecipe, _subnet_loss
    from search_spaces import SlicedSupernet

    space = bench_gpu.mbconv_space()
    torch.manual_seed(0)
    supernet = SlicedSupernet(space, bench_gpu._spec())
    x = torch.randn(4, 1, 28, 28)
    soft = torch.randn(4, 10)
    r = bench_gpu.SUPERNET
    recipe = SupernetRecipe(
        epochs=1, warmup_epochs=0, schedule="sandwich", random_subnets=r["random_subnets"],
        lr=0.05, batch_size=4, weight_decay=1e-4, label_smoothing=0.0,
        distill_temperature=r["distill_temperature"], bits=tuple(r["bits"]),
        sparsity_max=r["sparsity_max"],
    )  # fmt: skip
    arch = bench_gpu.candidate_archs(space)["median"]
    ours = bench_gpu.subnet_loss(supernet, arch, np.random.default_rng(3), x, soft, recipe=r)
    theirs = _subnet_loss(supernet, arch, recipe, np.random.default_rng(3), x, soft)
    assert torch.allclose(ours, theirs)


def test_ratios_are_null_without_a_gpu(tiny_record: dict[str, Any]) -> None:
    default_run = {"n_trials": 27, "wall_seconds": 195.0, "command": "x"}
    rec = bench_gpu.combine(tiny_record, None, default_run=default_run)
    assert rec["train_samples_per_s_ratio"] is None
    assert rec["trials_per_minute_ratio"] is None
    assert rec["trials_per_minute"]["cpu"] == pytest.approx(60 * 27 / 195)
    assert rec["trials_per_minute"]["gpu"] is None
    assert all(v is None for r in rec["train_samples_per_s_ratio_by_workload"].values()
               for v in r.values())  # fmt: skip
    assert rec["gpu"] is None and "no GPU was measured" in rec["note"]
    json.dumps(rec)


def test_ratios_when_both_sides_ran(tiny_record: dict[str, Any]) -> None:
    gpu = json.loads(json.dumps(tiny_record))
    for w in gpu["results"]:
        base = gpu["results"][w]["fp32"]["samples_per_s"]
        gpu["results"][w] = {p: {"samples_per_s": base * k} for p, k in
                             (("fp32", 10.0), ("bf16", 20.0), ("fp16", 15.0))}  # fmt: skip
    rec = bench_gpu.combine(
        tiny_record, gpu, default_run={"n_trials": 27, "wall_seconds": 180.0},
        gpu_job={"n_trials": 27, "wall_seconds": 60.0},
    )  # fmt: skip
    assert rec["train_samples_per_s_ratio"] == pytest.approx(20.0)  # median, bf16 / fp32
    assert rec["train_samples_per_s_ratio_by_workload"]["supernet"]["fp16"] == pytest.approx(15.0)
    assert rec["trials_per_minute_ratio"] == pytest.approx(3.0)
    assert rec["note"] is None


def _mlflow_db(path: Path) -> None:
    """The tables and columns of MLflow's sqlite store that trial_breakdown reads."""
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE runs (run_uuid TEXT, start_time INTEGER, end_time INTEGER, status TEXT);"
        "CREATE TABLE tags (key TEXT, value TEXT, run_uuid TEXT);"
        "CREATE TABLE latest_metrics (key TEXT, value REAL, run_uuid TEXT);"
    )
    runs = [("p", 0, 100_000, "search"), ("a", 10_000, 30_000, "trial"),
            ("b", 30_000, 60_000, "trial"), ("c", 60_000, 60_010, "trial")]  # fmt: skip
    for run, start, end, role in runs:
        con.execute("INSERT INTO runs VALUES (?, ?, ?, 'FINISHED')", (run, start, end))
        con.execute("INSERT INTO tags VALUES ('nas.role', ?, ?)", (role, run))
    metrics = {"a": (1.0, 12.0, 18.0), "b": (1.0, 20.0, 28.0)}  # c: infeasible, untrained
    for run, (feas, train, trial) in metrics.items():
        for key, value in (("feasibility_seconds", feas), ("train_seconds", train),
                           ("trial_seconds", trial)):  # fmt: skip
            con.execute("INSERT INTO latest_metrics VALUES (?, ?, ?)", (key, value, run))
    con.execute("INSERT INTO latest_metrics VALUES ('n_trials', 3, 'p')")
    con.commit()
    con.close()


def test_trial_breakdown_from_an_mlflow_db(tmp_path: Path) -> None:
    _mlflow_db(tmp_path / "mlflow.db")
    bd = bench_gpu.trial_breakdown(tmp_path / "mlflow.db")
    s = bd["mean_seconds"]
    assert bd["trained_trials"] == 2 and bd["trial_runs"] == 3 and bd["n_trials"] == 3
    assert s["feasibility"] == 1.0 and s["training"] == 16.0 and s["trial"] == 23.0
    assert s["export_evaluate"] == pytest.approx(6.0)  # 23 - 1 - 16
    assert s["ask_to_told"] == 25.0 and s["driver"] == pytest.approx(2.0)
    assert sum(bd["fractions"].values()) == pytest.approx(1.0)
    assert bd["search_wall_s"] == 100.0 and bd["outside_trials_s"] == pytest.approx(49.99)


def test_throughput_part_imports_no_optuna_hydra_mlflow_ray() -> None:
    code = (
        "import sys\n"
        "for n in ('optuna', 'hydra', 'omegaconf', 'mlflow', 'ray'): sys.modules[n] = None\n"
        f"sys.path.insert(0, {str(_REPO / 'scripts')!r})\n"
        "import bench_gpu, torch\n"
        "torch.set_num_threads(1)\n"
        "space = bench_gpu.mbconv_space()\n"
        "step = bench_gpu.supernet_step(space, 'fp32', torch.device('cpu'))\n"
        "x, y = torch.randn(2, 1, 28, 28), torch.tensor([0, 1])\n"
        "step(x, y)\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=_REPO
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("script", ["gpu_check.sh", "gpu_wheels.sh"])
def test_shell_scripts_parse(script: str) -> None:
    proc = subprocess.run(
        ["bash", "-n", str(_REPO / "scripts" / script)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
