"""Formatting the sections share: tables, numbers, spans, wrapping, and Markdown templates."""

from __future__ import annotations

import math
import os
import re
import string
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ._records import Bench

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Lines that are whole elements of the page: a template never joins them to the next.
_BLOCK_START = ("|", "    ", "- ", "#", "![")


def _template(name: str, **fields: object) -> list[str]:
    """The lines of ``templates/<name>.md``, its ``$field`` placeholders filled in.

    A template is Markdown as a person writes it, paragraphs wrapped anywhere. A
    paragraph (or list item) becomes one line, which ``_wrap`` wraps again for the page,
    so a template's own line breaks never show in the page. Tables, indented code and
    headings keep their lines. A missing field raises: it is a bug of the section.
    """
    text = string.Template((TEMPLATES / f"{name}.md").read_text()).substitute(fields)
    out: list[str] = []
    for block in text.strip("\n").split("\n\n"):
        if out:
            out.append("")
        for line in block.split("\n"):
            joins = out and out[-1] and not out[-1].startswith(_BLOCK_START[:2] + ("#",))
            if joins and not line.startswith(_BLOCK_START):
                out[-1] += " " + line.strip()
            else:
                out.append(line)
    return out


def _not_recorded(name: str, command: str) -> list[str]:
    return [
        f"`{name}` is not recorded yet; this writes it (then rerun this script):",
        "",
        *(f"    {line}" for line in command.splitlines()),
    ]


def _rel(b: Bench, path: Path) -> str:
    """``path`` as the page links it."""
    return Path(os.path.relpath(path, b.out.parent)).as_posix()


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def _int(x: float) -> str:
    return f"{round(x):,}"


def _pct(x: float, decimals: int = 0) -> str:
    return f"{100 * x:.{decimals}f}%"


def _pm(mean: float, std: float, decimals: int) -> str:
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant figures, never in exponent form (2.80, 35.1, 1352)."""
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def _span(values: Iterable[Any], fmt: Callable[[Any], str]) -> str:
    """ "lo-hi" of the values as formatted, or one value when both ends print the same."""
    vals = list(values)
    lo, hi = fmt(min(vals)), fmt(max(vals))
    return lo if lo == hi else f"{lo}-{hi}"


def _seq(values: Iterable[Any], fmt: str = "{}") -> str:
    return ", ".join(fmt.format(v) for v in values)


def _opt(value: Any, fmt: str | Callable[[Any], str]) -> str:
    if value is None or value == "":
        return "-"
    return fmt(value) if callable(fmt) else fmt.format(value)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


_WIDTH = 88
# A wrapped line must not start with a token Markdown would read as a block marker.
_BLOCK_MARKER = re.compile(r"^([-+*>#|=]+|\d+[.)])$")


def _wrap(line: str) -> list[str]:
    """Prose as lines of about 88 characters, for readable diffs; tables and code as is."""
    # The source line stays whole, so "commit not recorded" can be searched for.
    if len(line) <= _WIDTH or line.startswith(("|", "    ", "#", "![", "*Source:")):
        return [line]
    indent = "  " if line.startswith("- ") else ("> " if line.startswith("> ") else "")
    out: list[str] = []
    current = ""
    for word in line.split():
        if current and len(current) + 1 + len(word) > _WIDTH and not _BLOCK_MARKER.match(word):
            out.append(current)
            current = indent + word
        else:
            current = f"{current} {word}" if current else word
    return [*out, current]


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def _ok(x: float | None, test: Callable[[float], bool]) -> bool:
    """``test(x)``, False for a missing or NaN figure (too few candidates to measure)."""
    return x is not None and not math.isnan(x) and test(x)


def _num(x: float | None, fmt: str) -> str:
    return "n/a" if x is None or math.isnan(x) else fmt.format(x)


def _tau(tau: float | None, ci: Sequence[float]) -> str:
    """Kendall's tau and its interval: "0.64 (95% CI 0.48 to 0.77)"."""
    if tau is None or math.isnan(tau):
        return "n/a (fewer than 3 candidates kept)"
    lo, hi = ci
    return f"{tau:.2f} (95% CI {_num(lo, '{:.2f}')} to {_num(hi, '{:.2f}')})"
