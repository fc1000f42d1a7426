"""Packaging follows the layout: every package is listed, and a non-editable install
(a built wheel, not this checkout) composes a config and imports every layer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]


def _listed() -> set[str]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(cfg["tool"]["setuptools"]["packages"])


def test_every_package_and_config_folder_is_listed() -> None:
    found = set()
    for top in ("nas", "compress", "search_spaces"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    found |= {f"nas.conf.{d.name}" for d in (ROOT / "conf").iterdir() if d.is_dir()}
    found |= {"nas.conf", "nas.hw.data"}
    assert found - _listed() == set(), "add these to [tool.setuptools] packages"
    assert _listed() - found == set(), "listed but not in the tree"


@pytest.mark.slow
def test_wheel_install_composes_and_imports_every_layer(tmp_path: Path) -> None:
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    assert "BuildBackendWarning" not in build.stderr, build.stderr[-2000:]
    (wheel,) = wheels.glob("downsize-*.whl")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    code = (
        "import nas, sys; assert nas.__file__.startswith(sys.argv[1]), nas.__file__; "
        "cfg = nas.compose(['+hw=mobile', 'strategy=scratch']); "
        "import nas.driver._search, nas.export._run, nas.runners._local, nas.hw; "
        "from nas.hw import LatencyPredictor; LatencyPredictor.load('pixel3'); "
        "print(cfg.hw.name)"
    )
    # Run from an empty folder, with the installed copy first on the path, so that
    # nothing of this checkout (the editable install's finder included) is used.
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}",
         str(target)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "mobile"
