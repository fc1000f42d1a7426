"""Seeded uniform random architectures of a search space, for profiling and budgets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from search_spaces import Arch, get_search_space

__all__ = ["RandomSuggest", "random_archs"]


class RandomSuggest:
    """A ``search_spaces.Suggest`` that draws every choice uniformly from a seeded RNG."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int:
        return int(self.rng.choice(np.arange(low, high + 1, step)))

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        if log:
            return float(np.exp(self.rng.uniform(np.log(low), np.log(high))))
        return float(self.rng.uniform(low, high))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return choices[int(self.rng.integers(len(choices)))]


def random_archs(space: str, n: int, *, seed: int) -> list[Arch]:
    """``n`` random architectures of ``space`` (default ranges), reproducible from ``seed``."""
    s = get_search_space(space)
    suggest = RandomSuggest(np.random.default_rng(seed))
    return [s.sample(suggest) for _ in range(n)]
