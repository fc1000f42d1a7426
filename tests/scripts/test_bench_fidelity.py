"""scripts/bench_fidelity.py: its refusals, and the table and curve it makes of a record
(the measurements themselves take an hour: docs/bench/supernet.json)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_fidelity.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_an_unknown_section_is_one_clear_line() -> None:
    r = _run("--sections", "uniform,nosuch")
    assert r.returncode == 2
    assert "unknown sections ['nosuch']; choose from ['uniform', 'width', 'folder']" in r.stderr


def test_no_section_prints_and_plots_the_record(tmp_path: Path) -> None:
    rows = [
        {"width_mult": w, "inherited_val": i, "standalone_val": s, "standalone_vals": [s, s],
         "epochs": 20, "params": 1000}
        for w, i, s in ((0.25, 0.95, 0.97), (1.0, 0.96, 0.99))
    ]  # fmt: skip
    record = {
        "fidelity_set": "uniform", "fidelity_set_size": 30, "kendall_tau": 0.5,
        "kendall_tau_ci": [0.3, 0.7], "inherited_by_width": rows,
        "largest_child_gap_folder": 4.5, "standalone_val_folder": 0.9,
        "folder": {"width_mult": 1.0, "inherited_val": 0.855, "standalone_val": 0.9},
    }  # fmt: skip
    out = tmp_path / "supernet.json"
    out.write_text(json.dumps(record))
    r = _run("--sections=", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "uniform fidelity: tau 0.50 [0.30, 0.70] on 30 candidates" in r.stdout
    assert "      0.25     0.9500     0.9700        2.0" in r.stdout
    assert "gap 4.5 points" in r.stdout
    assert (tmp_path / "supernet_by_width.png").stat().st_size > 10_000
    assert json.loads(out.read_text()) == record  # nothing measured, nothing changed
