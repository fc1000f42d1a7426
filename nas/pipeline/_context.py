"""What every trial of a search shares: :class:`TrialContext`, and the small
interfaces a trial calls out through (a teacher, an early-stopping judge)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from torch import nn

from nas.config import CompressSearchConfig, HwConfig
from nas.pipeline._data import Splits
from nas.pipeline._evaluator import ArtifactEvaluator
from search_spaces import SearchSpace

if TYPE_CHECKING:
    from nas.hw import HardwareModel
    from nas.pipeline._strategy import Strategy

__all__ = ["EpochJudge", "TeacherSource", "TrialContext", "TrialStopped"]


class TrialStopped(Exception):
    """Early stopping ended the trial after a partial result; it is recorded as PRUNED."""


class EpochJudge(Protocol):
    """Decides after each training epoch whether a trial goes on (multi-objective ASHA)."""

    def should_stop(
        self, number: int, epoch: int, val_accuracy: float, size_bytes: float
    ) -> bool: ...


class TeacherSource(Protocol):
    """A distillation teacher, built (or trained and cached) on first :meth:`get`."""

    def get(self) -> nn.Module: ...

    def describe(self) -> str: ...


@dataclass
class TrialContext:
    """Everything a trial needs; built once per search (once per worker under Ray)."""

    space: SearchSpace
    space_cfg: dict[str, Any]
    splits: Splits
    compress_cfg: CompressSearchConfig
    train_cfg: Any
    bits: list[int]
    hw: HardwareModel | None
    hw_cfg: HwConfig | None
    evaluator: ArtifactEvaluator | None
    artifact_dir: Path
    seed: int = 0
    trial_timeout_s: float | None = None
    teacher: TeacherSource | None = None
    early_stop: EpochJudge | None = None
    strategy: Strategy | None = None

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        spec = self.splits.spec
        return (1, spec.in_chans, spec.image_size, spec.image_size)
