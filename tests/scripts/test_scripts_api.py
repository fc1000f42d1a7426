"""The benchmark scripts use the packages' public API and the search's training recipe."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

_SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
_PACKAGES = ("nas", "compress", "search_spaces")


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, _SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _private_imports(path: Path) -> list[str]:
    """``module`` or ``module.name`` of every import of a private part of our packages."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
            names = [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = names = [a.name for a in node.names]
        else:
            continue
        for dotted in (*modules, *names):
            parts = dotted.split(".")
            if parts[0] in _PACKAGES and any(p.startswith("_") for p in parts[1:]):
                found.append(dotted)
    return sorted(set(found))


@pytest.mark.parametrize("path", sorted(_SCRIPTS.glob("*.py")), ids=lambda p: p.name)
def test_scripts_import_only_public_names(path: Path) -> None:
    assert _private_imports(path) == []


def test_the_check_sees_private_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from nas.hw._predictor import _read_models\n"
        "from compress import _onnx_runtime\n"
        "import nas.pipeline._recipe\n"
        "from nas.pipeline import train\n"
    )
    assert _private_imports(bad) == [
        "compress._onnx_runtime",
        "nas.hw._predictor",
        "nas.hw._predictor._read_models",
        "nas.pipeline._recipe",
    ]


def test_logit_agreement() -> None:
    common = _load("_common")
    ref = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    other = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.5]])
    a = common.logit_agreement(ref, other)
    assert a["top1_agreement"] == 0.5
    assert a["cosine_min"] == pytest.approx(1.0 / np.hypot(1.0, 1.5))
    assert a["max_abs_diff"] == 1.5
    assert a["max_abs_logit"] == 2.0


def test_baseline_lenet_trains_as_a_trial_on_digits(tmp_path: Path) -> None:
    out = tmp_path / "baseline.json"
    proc = subprocess.run(
        [sys.executable, str(_SCRIPTS / "baseline_lenet.py"), "--dataset", "digits",
         "--seeds", "0", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["LeNet-300-100", "LeNet-5"]
    for r in rows:
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["size_bytes"] > 0


def test_bench_supernet_adds_sections_without_rewriting_the_records_provenance() -> None:
    merge = _load("bench_supernet")._merge
    previous = {"commit": "aaa1111", "overrides": ["train.threads=1"], "wall_seconds": 1770.0,
                "kendall_tau": 0.36, "reuse": {"candidates": 1000}}  # fmt: skip
    measured = {"quick": False, "overrides": [], "commit": "bbb2222", "date": "2026-11-29"}
    report = {**measured, "sampler_quality": {"n": 400}, "wall_seconds": 474.0}
    merged = merge(previous, report, measured, ["sampler_quality"])
    # The figures already there keep the commit and overrides they were measured with.
    assert merged["commit"] == "aaa1111"
    assert merged["overrides"] == ["train.threads=1"]
    assert merged["wall_seconds"] == 1770.0
    assert merged["kendall_tau"] == 0.36 and merged["reuse"] == {"candidates": 1000}
    # The new section carries its own.
    assert merged["sampler_quality"]["n"] == 400
    assert merged["sampler_quality"]["measured"] == {
        **measured,
        "sections": ["sampler_quality"],
        "wall_seconds": 474.0,
    }


def test_every_shell_script_runs_as_a_command() -> None:
    """The README tells people to run scripts/*.sh: each is executable in git (what a
    clone gets) and here."""
    listed = subprocess.run(
        ["git", "-C", str(_SCRIPTS.parent), "ls-files", "-s", "scripts/*.sh"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(listed) >= 5
    modes = {line.split()[-1]: line.split()[0] for line in listed}
    assert {path for path, mode in modes.items() if mode != "100755"} == set()
    import os

    assert all(os.access(_SCRIPTS.parent / path, os.X_OK) for path in modes)
