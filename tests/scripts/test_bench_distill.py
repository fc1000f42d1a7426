"""The distillation benchmark refuses a bad ``--student`` before it trains anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_distill.py"


@pytest.mark.parametrize(
    ("student", "says"),
    [
        ("[1", "is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"width_mult": 0.5}', "lacks keys ['depths', 'expansions', 'kernels']"),
    ],
)
def test_bad_student_is_one_clear_line(tmp_path: Path, student: str, says: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(_SCRIPT), "--student", student, "--cache", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("bench_distill.py: error: --student") and says in last
    assert not any(tmp_path.iterdir())  # no teacher was trained
