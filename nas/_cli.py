"""What every ``python -m nas.*`` command shares: one-line refusals and SIGTERM.

A command checks its inputs before any work and refuses a bad one with one line on
stderr (``error: ...``) and exit code 2 (:data:`EXIT_USAGE`); ``SIGTERM`` (what
``timeout``, Slurm and Kubernetes send) stops it like Ctrl-C. Light: no torch.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
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
    "raise_if_sigterm_lost",
    "sigterm_as_interrupt",
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


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, ``SIGTERM`` does what Ctrl-C does (``KeyboardInterrupt``).

    The signal is handed to the current ``SIGINT`` handler, so the places that defer
    or ignore Ctrl-C around bookkeeping (``nas.study.sigint_deferred``) defer or
    ignore ``SIGTERM`` too. A process started with Ctrl-C ignored (a shell's ``cmd &``)
    keeps ignoring Ctrl-C but still stops on ``SIGTERM``. The previous handlers are
    restored afterwards. Off the main thread (where Python cannot install handlers)
    the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _ACTIVE
    term = _Sigterm()
    outer, _ACTIVE = _ACTIVE, term
    background = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if background:
        # A handler rather than SIG_IGN, so that a SIGTERM can interrupt through it.
        signal.signal(signal.SIGINT, term.background_sigint)
    previous = signal.signal(signal.SIGTERM, term.sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _ACTIVE = outer
        if background:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def raise_if_sigterm_lost() -> None:
    """Raise the ``KeyboardInterrupt`` of a ``SIGTERM`` that Python swallowed.

    A handler's exception that lands in a finaliser or a weakref callback (SQLAlchemy
    has some) is printed as "Exception ignored in ..." and dropped, so the search would
    run on and exit 0. Code that reaches a safe point (between trials) in its normal
    flow after a SIGTERM can only have lost it: this raises it there, once.
    """
    term = _ACTIVE
    if threading.current_thread() is not threading.main_thread():
        return  # a runner's helper thread: the main thread gets the interrupt itself
    if term is not None and term.requested:
        term.requested = False
        raise KeyboardInterrupt


_ACTIVE: _Sigterm | None = None  # the innermost sigterm_as_interrupt block's


class _Sigterm:
    """Routes SIGTERM through the current SIGINT handler (see sigterm_as_interrupt)."""

    def __init__(self) -> None:
        self.requested = False

    def sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        handler = signal.getsignal(signal.SIGINT)
        if handler is signal.SIG_IGN:
            return  # bookkeeping that must not be cut short (nas.study.sigint_ignored)
        if callable(handler):
            handler(signal.SIGINT, frame)  # raises, or defers until the block ends
            return
        raise KeyboardInterrupt

    def background_sigint(self, signum: int, frame: FrameType | None) -> None:
        # Ctrl-C stays ignored, as the shell asked; a SIGTERM routed here interrupts.
        if self.requested:
            raise KeyboardInterrupt
