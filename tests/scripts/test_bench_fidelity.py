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
    assert (
        "unknown sections ['nosuch']; choose from"
        " ['uniform', 'width', 'levers', 'recipes', 'folder']" in r.stderr
    )


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
        "kendall_tau_predicted": 0.61, "kendall_tau_predicted_ci": [0.4, 0.8],
        "inherited_by_width_levers": {
            "widths": [0.25, 1.0], "bn_calib_images": {"500": [0.95, 0.96]},
            "lr": {"0.02": [0.94, 0.961]},
        },
    }  # fmt: skip
    out = tmp_path / "supernet.json"
    out.write_text(json.dumps(record))
    r = _run("--sections=", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "uniform fidelity: tau 0.50 [0.30, 0.70] on 30 candidates" in r.stdout
    assert "      0.25     0.9500     0.9700        2.0" in r.stdout
    assert "gap 4.5 points" in r.stdout
    assert "predicted (leave one out): tau 0.61 [0.40, 0.80]" in r.stdout
    assert "BatchNorm on   500 images: 0.950 0.960" in r.stdout
    assert "supernet lr      0.02: 0.940 0.961" in r.stdout
    assert (tmp_path / "supernet_by_width.png").stat().st_size > 10_000
    assert json.loads(out.read_text()) == record  # nothing measured, nothing changed


def test_the_leave_one_out_predictor_learns_what_finalising_adds() -> None:
    """Candidates that inherit alike but finalise by width: predicted from the others,
    each lands in the order of its finalised accuracy, as the raw estimate cannot."""
    sys.path.insert(0, str(SCRIPT.parent))
    import bench_fidelity

    rows = [
        {"arch": {"width_mult": w, "depths": [1, d]}, "compression": {"bits": 8},
         "estimate": 0.95, "size_bytes": 1000.0 * w, "final_val": 0.94 + 0.04 * w}
        for w, d in ((0.25, 1), (0.35, 2), (0.5, 1), (0.75, 2), (1.0, 1), (0.6, 2))
    ]  # fmt: skip
    predicted = bench_fidelity._loo_predicted(rows)
    order = sorted(range(len(rows)), key=lambda i: rows[i]["final_val"])
    assert sorted(range(len(rows)), key=lambda i: predicted[i]) == order
    assert bench_fidelity._flat(rows[0]) == {"width_mult": 0.25, "depths_0": 1, "depths_1": 1,
                                            "bits": 8}  # fmt: skip
