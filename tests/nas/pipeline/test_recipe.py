"""A distilled student's loss, and the memo of its teacher's logits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.pipeline._recipe import TeacherMemo, distiller


class _Counting(nn.Module):
    """A teacher that counts the rows it has run."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        out: torch.Tensor = self.net(x)
        return out


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 2, 2, generator=torch.Generator().manual_seed(seed))


def test_the_memo_answers_as_the_teacher_does_and_runs_each_image_once() -> None:
    teacher = _Counting().eval()
    memo = TeacherMemo(teacher)
    x = _images(10)
    with torch.no_grad():
        want = teacher.net(x)
        first = memo(x)
        # Another order, another batch size, a channels-last copy: the same rows.
        perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
        again = memo(x[perm][:7].contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(first, want)
    torch.testing.assert_close(again, want[perm][:7])
    assert teacher.rows == 10  # the second call ran nothing
    assert (memo.misses, memo.hits) == (10, 7)


def test_the_memo_runs_only_the_rows_it_has_not_seen() -> None:
    teacher = _Counting().eval()
    memo = TeacherMemo(teacher)
    a, b = _images(4, seed=0), _images(3, seed=1)
    with torch.no_grad():
        memo(a)
        out = memo(torch.cat([a[:2], b]))
        torch.testing.assert_close(out, teacher.net(torch.cat([a[:2], b])))
    assert teacher.rows == 4 + 3  # the first 4, then only the 3 new ones


def test_a_full_memo_keeps_answering_without_keeping() -> None:
    teacher = _Counting().eval()
    memo = TeacherMemo(teacher, max_rows=4)
    with torch.no_grad():
        memo(_images(4, seed=0))
        out = memo(_images(4, seed=1))
        torch.testing.assert_close(out, teacher.net(_images(4, seed=1)))
    assert len(memo.rows) == 4


def test_the_distiller_with_a_memo_gives_the_same_loss() -> None:
    teacher = _Counting().eval()
    x, y = _images(6), torch.tensor([0, 1, 2, 3, 4, 0])
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(2))
    plain = distiller(teacher, temperature=2.0, alpha=0.5)(logits, y, x)
    memo = TeacherMemo(teacher)
    memoed = distiller(teacher, temperature=2.0, alpha=0.5, memo=memo)
    torch.testing.assert_close(memoed(logits, y, x), plain)
    torch.testing.assert_close(memoed(logits, y, x), plain)
    assert memo.hits == 6


def test_a_memo_of_another_teacher_is_refused() -> None:
    with pytest.raises(ValueError, match="another teacher"):
        distiller(_Counting(), temperature=1.0, alpha=0.5, memo=TeacherMemo(_Counting()))
