"""The energy benchmark models each front member of a finished search and the fp32
LeNet-5, and refuses a directory that holds no front in one line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_energy.py"
ARCH = {"width_mult": 0.35, "depths": [3, 1, 2, 1], "kernels": [3, 5, 5, 3],
        "expansions": [1, 6, 6, 4]}  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(_SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def test_a_front_member_is_modelled_against_lenet5(tmp_path: Path) -> None:
    front = tmp_path / "run" / "outputs" / "mbconv-mnist5k-mobile-x"
    front.mkdir(parents=True)
    with open(front / "pareto.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["trial", "val_accuracy", "size_bytes", "bits", "sparsity", "arch"])
        w.writeheader()
        w.writerow({"trial": 1, "val_accuracy": 0.976, "size_bytes": 43386, "bits": 16,
                    "sparsity": 0.18, "arch": json.dumps(ARCH)})  # fmt: skip
    out = tmp_path / "energy.json"
    proc = _run(str(tmp_path / "run"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(out.read_text())
    (member,) = record["front"]
    # The same member as a +hw=mobile search recorded it (its energy_uj metric).
    assert abs(member["energy_uj"] - 4.8212) < 1e-3
    assert record["lenet5"]["energy_uj"] > member["energy_uj"] > 0
    assert record["model"]["table"] == "horowitz45" and record["study_name"].endswith("-x")


def test_a_directory_without_a_front_is_one_line(tmp_path: Path) -> None:
    proc = _run(str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("bench_energy.py: ")
