"""What every ``python -m nas.*`` command shares: one-line refusals.

A command checks its inputs before any work and refuses a bad one with one line on
stderr (``error: ...``) and exit code 2 (:data:`EXIT_USAGE`). How it stops (signals,
pre-emption, a full disk) is :mod:`nas._stop`'s. Light: no torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import NoReturn

__all__ = [
    "EXIT_USAGE",
    "InputError",
    "import_plugins",
    "OneLineParser",
    "check_input_file",
    "check_output_file",
    "refuse",
    "require",
]

EXIT_USAGE = 2
"""Exit code of a refused command line or input file."""


class InputError(ValueError):
    """A user's input is wrong; the message is one line naming the value and what is allowed."""


class OneLineParser(argparse.ArgumentParser):
    """``argparse`` whose errors are an :class:`InputError` (one line), not usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{message} (see {self.prog} --help)")


def refuse(err: BaseException) -> int:
    """Print ``err`` as the one line ``error: ...`` on stderr; return :data:`EXIT_USAGE`."""
    print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
    return EXIT_USAGE


def import_plugins(modules: list[str]) -> None:
    """Import each ``--plugin`` module; it registers its own entries (search spaces) on
    import, and any error it raises is the user's input, refused in one line."""
    for module in modules:
        require(module != "", "--plugin needs a module name, e.g. --plugin my_spaces")
        try:
            importlib.import_module(module)
        except Exception as e:
            raise InputError(f"--plugin {module}: cannot import it ({e})") from None


def require(ok: bool, message: str) -> None:
    """Raise :class:`InputError` with ``message`` unless ``ok``."""
    if not ok:
        raise InputError(message)


def check_input_file(path: Path, what: str) -> None:
    """``path`` is an existing, readable file (``what`` names it in the message)."""
    require(path.exists(), f"{what} {str(path)!r} not found; give an existing file")
    require(path.is_file(), f"{what} {str(path)!r} is a directory; give a file")
    require(os.access(path, os.R_OK), f"{what} {str(path)!r} is not readable")


def check_output_file(path: Path, what: str = "--out") -> None:
    """``path`` can be written: not a directory, and its folder exists or can be made."""
    require(str(path).strip() != "", f"{what} is empty; give a file path")
    require(not path.is_dir(), f"{what}={str(path)!r} is a directory; give a file path")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    require(folder.is_dir(), f"{what}={str(path)!r}: {str(folder)!r} is not a directory")
    require(
        os.access(folder, os.W_OK | os.X_OK),
        f"{what}={str(path)!r}: folder {str(folder)!r} is not writable",
    )
