"""The one set of supported weight bit-widths (no torch import: configs validate fast)."""

from __future__ import annotations

__all__ = ["BITS", "INT_BITS"]

BITS: tuple[int, ...] = (2, 3, 4, 6, 8, 16, 32)
"""Supported weight bit-widths: 2..8 integer (per-channel symmetric), 16 fp16, 32 none."""

INT_BITS: tuple[int, ...] = tuple(b for b in BITS if b <= 8)
