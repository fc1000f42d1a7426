"""The layer contract (pyproject.toml, ``[tool.importlinter]``): CLIs -> driver/export
-> runners -> study -> pipeline -> hw -> config, with ``compress`` and
``search_spaces`` independent of ``nas`` and no import cycle inside a package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout or "broken" not in done.stdout.lower()


def test_importing_nas_and_composing_imports_no_torch() -> None:
    code = (
        "import sys, nas; nas.compose(['+hw=mobile']); "
        "import nas.runners, nas.study, nas.pipeline, nas.hw, nas.driver, nas.export; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
