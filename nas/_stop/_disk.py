"""A write refused for want of space, named with the path that was being written."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

__all__ = [
    "EXIT_DISK_FULL",
    "DiskFull",
    "is_disk_full",
    "writing",
]
EXIT_DISK_FULL = 75
"""Exit code of a command stopped by a full disk (sysexits' EX_TEMPFAIL: free space and
run it again)."""


# -- a disk that fills -------------------------------------------------------------------


class DiskFull(OSError):
    """A write refused for want of space (ENOSPC, a quota, or SQLite's "database or
    disk is full"), with the path being written. The command stops: nothing that
    finished is lost, and the same command resumes once space is freed."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(errno.ENOSPC, "no space left on device", str(path))


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, says the disk is full."""
    return _full(error) is not None


def _full(error: BaseException) -> BaseException | None:
    """The error in ``error``'s chain that says the disk is full, or None."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return e
        if "database or disk is full" in str(e):  # SQLite's SQLITE_FULL, as any driver words it
            return e
        e = e.__cause__ or e.__context__
    return None


@contextlib.contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Within the block, a full disk raises :class:`DiskFull` naming the file that could
    not be written: the error's own when it names one, else ``path``."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as e:
        full = _full(e)
        if full is None:
            raise
        named = getattr(full, "filename", None)
        raise DiskFull(named if isinstance(named, str) and named else path) from e
