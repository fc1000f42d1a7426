"""The adaptive package's 8-bit BatchNorm statistics (search_spaces._adaptive_bn)."""

from __future__ import annotations

import pytest
import torch

from search_spaces._adaptive_bn import decode_bn, encode_bn

EPS = 1e-5
SIZES = [8, 16, 4]


def _stats(seed: int, dead: int = 0) -> torch.Tensor:
    """Per BatchNorm its means then its variances (bn_stats' layout); ``dead`` channels
    of the second layer with no variance."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for i, n in enumerate(SIZES):
        mean = torch.randn(n, generator=g) * 3
        var = torch.rand(n, generator=g) * 40 + 0.01
        if i == 1:
            var[:dead] = 0
        parts += [mean, var]
    return torch.cat(parts)


def _split(flat: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out, at = [], 0
    for n in SIZES:
        out.append((flat[at : at + n], flat[at + n : at + 2 * n]))
        at += 2 * n
    return out


def _max_errors(got: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    """The largest mean error in units of sqrt(var + eps), and log error of var + eps."""
    em = ev = 0.0
    for (m, v), (m0, v0) in zip(_split(got), _split(want), strict=True):
        em = max(em, ((m - m0).abs() / (v0 + EPS).sqrt()).max().item())
        ev = max(ev, ((v + EPS) / (v0 + EPS)).log().abs().max().item())
    return em, ev


def test_statistics_survive_8_bits_within_half_a_grid_step() -> None:
    flat = _stats(0)
    data = encode_bn(flat, SIZES)
    assert len(data) == 8 * len(SIZES) + 2 * sum(SIZES)  # one byte per number, a grid each
    em, ev = _max_errors(decode_bn(data, SIZES), flat)
    # Means span ~12 sd over 254 steps, log variances ~8 nats: half a step is under 0.03.
    assert 0 < em < 0.03 and 0 < ev < 0.03


def test_a_channel_without_variance_keeps_its_mean_exactly() -> None:
    flat = _stats(1, dead=3)
    back = decode_bn(encode_bn(flat, SIZES), SIZES)
    (m0, _), (m, v) = _split(flat)[1], _split(back)[1]
    assert torch.equal(v[:3], torch.zeros(3))
    torch.testing.assert_close(m[:3], m0[:3].half().float(), rtol=0, atol=0)


def test_a_close_reference_makes_the_grid_finer() -> None:
    ref = _stats(2)
    near = ref.clone()
    near += torch.randn(near.shape, generator=torch.Generator().manual_seed(3)) * 0.01
    near = torch.cat([torch.cat([m, v.clamp_min(0.01)]) for m, v in _split(near)])
    alone = _max_errors(decode_bn(encode_bn(near, SIZES), SIZES), near)
    against = _max_errors(decode_bn(encode_bn(near, SIZES, ref), SIZES, ref), near)
    assert against[0] < alone[0] / 10 and against[1] < alone[1] / 10


@pytest.mark.parametrize("sizes", [[8, 16], [8, 16, 4, 1]])
def test_statistics_of_another_layout_are_refused(sizes: list[int]) -> None:
    data = encode_bn(_stats(0), SIZES)
    with pytest.raises(ValueError, match="do not fit"):
        decode_bn(data, sizes)
    with pytest.raises(ValueError, match="do not fit"):
        encode_bn(_stats(0), sizes)
