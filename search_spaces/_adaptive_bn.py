"""A point's BatchNorm statistics in 8 bits: what an adaptive package stores per point.

The points' statistics were the package's largest overhead over its largest point's own
artifact (measured on the default supernet search: 6.7 KB of fp16 for five points, over
a 20.4 KB largest point). Per BatchNorm, each live channel (running variance above 0)
is stored as two ``u8`` codes on the layer's own uniform grid:

- its mean, in units of ``sqrt(var + eps)`` (what a shift of the mean costs the
  normalised activation), as a difference from a *reference* point's mean;
- the log of ``var + eps``, as a difference from the reference's (a relative error of
  what BatchNorm divides by, the same for every scale of variance).

``eps`` is BatchNorm's default, 1e-5; the search space builds its BatchNorms with it.

The reference is the package's largest other point with the same BatchNorm layout, whose
statistics are close (the same architecture at another sparsity) so the differences are
small and the grid fine; a point without one is stored against zero mean and unit
variance. A channel with no variance (every weight feeding it pruned) has code 255 and
its mean stored exactly (fp16), since its ``x - mean`` is the whole activation.

Measured on that search's points, against fp16: the points' val accuracy moved by at
most 2 of 500 images stored against a reference, and by up to 6 against zero (p0 of the
benchmark), so the reference is worth its bookkeeping. Per layer the grid costs four
fp16 numbers (lowest value and step, for the mean and the log variance).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["decode_bn", "encode_bn"]

_DEAD = 255  # the variance code of a channel with no variance
_LEVELS = 254  # codes 0..254 for live channels
_EPS = 1e-5  # BatchNorm's default eps
_F16_MAX = 6.0e4


def encode_bn(flat: torch.Tensor, sizes: list[int], ref: torch.Tensor | None = None) -> bytes:
    """``flat`` (:func:`search_spaces.bn_stats`: per BatchNorm its means, then its
    variances) as bytes; ``sizes`` the channels of each BatchNorm; ``ref`` a decoded
    reference of the same layout (None: zero mean, unit variance)."""
    flat = flat.detach().double().cpu()
    ref = _check(flat, sizes, ref)
    grids, codes, exact = [], [], []
    for m, v, rm, rv in _layers(flat, ref, sizes):
        live = v > 0
        gy, cy = _grid(torch.log(v + _EPS)[live] - torch.log(rv + _EPS)[live])
        # The mean against the variance as decoded, so the decoder's scale is the same.
        v_dec = torch.exp(gy[0] + gy[1] * torch.from_numpy(cy).double()) * (rv[live] + _EPS)
        x = (m[live] - rm[live]) / v_dec.clamp_min(_EPS).sqrt()
        gx, cx = _grid(x.clamp(-_F16_MAX / 2, _F16_MAX / 2))
        mean_codes = np.zeros(len(m), np.uint8)
        var_codes = np.full(len(m), _DEAD, np.uint8)
        mean_codes[live.numpy()], var_codes[live.numpy()] = cx, cy
        grids += [*gx, *gy]
        codes += [mean_codes, var_codes]
        exact.append(m[~live].numpy())
    return b"".join(
        [
            np.asarray(grids, "<f2").tobytes(),
            np.concatenate(codes).tobytes() if codes else b"",
            np.concatenate(exact).astype("<f2").tobytes() if exact else b"",
        ]
    )


def decode_bn(data: bytes, sizes: list[int], ref: torch.Tensor | None = None) -> torch.Tensor:
    """The statistics :func:`encode_bn` stored, fp32, in :func:`search_spaces.bn_stats`'s
    layout."""
    n = sum(sizes)
    grids_end = 8 * len(sizes)
    if len(data) < grids_end + 2 * n:
        raise ValueError("the stored BatchNorm statistics do not fit the point's model")
    grids = np.frombuffer(data[:grids_end], "<f2").astype(np.float64).reshape(-1, 4)
    codes = np.frombuffer(data[grids_end : grids_end + 2 * n], np.uint8)
    exact = np.frombuffer(data[grids_end + 2 * n :], "<f2").astype(np.float64)
    if int((codes.reshape(-1)[_var_code_index(sizes)] == _DEAD).sum()) != len(exact):
        raise ValueError("the stored BatchNorm statistics do not fit the point's model")
    ref = _check(torch.zeros(2 * n, dtype=torch.float64), sizes, ref)
    parts, at, dead = [], 0, 0
    for (m_ref, v_ref, rm, rv), grid, size in zip(
        _layers(torch.zeros(2 * n, dtype=torch.float64), ref, sizes), grids, sizes, strict=True
    ):
        del m_ref, v_ref
        cm, cv = codes[at : at + size], codes[at + size : at + 2 * size]
        at += 2 * size
        live = torch.from_numpy(cv != _DEAD)
        y = torch.from_numpy(grid[2] + grid[3] * cv.astype(np.float64))
        scale = torch.exp(y) * (rv + _EPS)  # var + eps
        v = torch.where(live, (scale - _EPS).clamp_min(0), 0.0)
        x = torch.from_numpy(grid[0] + grid[1] * cm.astype(np.float64))
        m = rm + x * scale.clamp_min(_EPS).sqrt()
        n_dead = int((~live).sum())
        m[~live] = torch.from_numpy(exact[dead : dead + n_dead].copy())
        dead += n_dead
        parts += [m, v]
    return torch.cat(parts).float() if parts else torch.zeros(0)


def _check(flat: torch.Tensor, sizes: list[int], ref: torch.Tensor | None) -> torch.Tensor:
    if flat.numel() != 2 * sum(sizes):
        raise ValueError("the BatchNorm statistics do not fit the point's model")
    if ref is None:
        # Zero mean, unit variance: the statistics are then stored as they are.
        ones = [torch.cat([torch.zeros(s), torch.ones(s)]) for s in sizes]
        return torch.cat(ones).double() if ones else torch.zeros(0, dtype=torch.float64)
    if ref.numel() != flat.numel():
        raise ValueError("a BatchNorm reference must have the point's layout")
    return ref.detach().double().cpu()


def _layers(
    flat: torch.Tensor, ref: torch.Tensor, sizes: list[int]
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    at = 0
    for s in sizes:
        m, v = flat[at : at + s], flat[at + s : at + 2 * s]
        rm, rv = ref[at : at + s], ref[at + s : at + 2 * s]
        yield m, v, rm, rv
        at += 2 * s


def _grid(x: torch.Tensor) -> tuple[tuple[float, float], np.ndarray]:
    """``x`` on a uniform grid of :data:`_LEVELS` + 1 codes between its extremes; the
    grid's origin and step are rounded to fp16 first, as they are stored."""
    if x.numel() == 0:
        return (0.0, 0.0), np.zeros(0, np.uint8)
    low, high = x.min().item(), x.max().item()
    lo16 = np.float16(low)
    if float(lo16) > low:  # rounded up past the lowest value: one fp16 step down
        lo16 = np.nextafter(lo16, np.float16(-np.inf))
    lo = float(lo16)
    step16 = np.float16((high - lo) / _LEVELS)
    if float(step16) * _LEVELS + lo < high:  # rounded down: the top would not fit
        step16 = np.nextafter(step16, np.float16(np.inf))
    step = float(step16)
    codes = torch.round((x - lo) / step) if step > 0 else torch.zeros_like(x)
    return (lo, step), codes.clamp(0, _LEVELS).numpy().astype(np.uint8)


def _var_code_index(sizes: list[int]) -> np.ndarray:
    idx, at = [], 0
    for s in sizes:
        idx.append(np.arange(at + s, at + 2 * s))
        at += 2 * s
    return np.concatenate(idx) if idx else np.zeros(0, np.int64)
