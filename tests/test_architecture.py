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
    assert "0 broken" in done.stdout


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


def _private_imports(path: Path, package: str) -> list[str]:
    """``from X._y import`` / ``import X._y`` of another package's private module."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            private = next((i for i, p in enumerate(parts) if p.startswith("_")), None)
            if private is None:
                continue
            owner = ".".join(parts[:private])
            if parts[0] not in ("nas", "compress", "search_spaces"):
                continue  # other libraries' internals are another matter
            if owner and owner != package and not package.startswith(owner + "."):
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                found.append(f"{where}: {name}")
    return found


def test_packages_use_each_others_public_names_only() -> None:
    """A package reaches another only through its ``__init__`` (its interface): no
    ``nas.study._x`` from ``nas.runners``, no ``search_spaces._x`` from ``nas``."""
    bad = []
    for top in ("nas", "compress", "search_spaces"):
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            package = ".".join(parts[:-1] if not path.name == "__init__.py" else parts)
            bad += _private_imports(path, package)
    # nas._lazy, nas._cli and nas._stop are the root package's own helpers.
    bad = [b for b in bad if not b.endswith((": nas._lazy", ": nas._cli", ": nas._stop"))]
    assert bad == []


def test_the_private_import_check_catches_one(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from nas.study._storage import open_study\nfrom nas.study import keys\n")
    assert _private_imports(module, "nas.runners") == [f"{module}: nas.study._storage"]
    assert _private_imports(module, "nas.study") == []
