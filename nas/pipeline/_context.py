"""The types of a trial: what every trial of a search shares (:class:`TrialContext`),
what it proposes and produces (:class:`Proposal`, :class:`TrialResult`), and the
small interfaces it calls out through (a strategy, a teacher, an early-stopping
judge). Light: no torch at import, so the registries can be listed at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from search_spaces import Arch

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from nas.config import CompressSearchConfig, HwConfig
    from nas.hw import HardwareModel
    from nas.pipeline._data import Splits
    from nas.pipeline._device import Placement
    from nas.pipeline._evaluator import ArtifactEvaluator
    from search_spaces import SearchSpace

__all__ = [
    "COST_ESTIMATES",
    "Device",
    "EpochJudge",
    "Proposal",
    "Strategy",
    "TeacherSource",
    "TrialContext",
    "TrialResult",
]


@dataclass
class Proposal:
    """A sampled candidate with everything known before training (its feasibility)."""

    number: int
    arch: Arch
    compression: dict[str, Any]
    metrics: dict[str, float]
    constraints: dict[str, float]
    # "score": the strategy scores it; "final": a finalist the strategy trains for real.
    phase: str = "score"
    # A multi-device search: each device's constraints (feasible when all <= 0).
    device_constraints: dict[str, dict[str, float]] = field(default_factory=dict)
    # When the search's budget ends (time.time(), so a Ray worker can read it), for a
    # trial that may stop early at its end (a finalist's rounds); None: no end.
    ends_at: float | None = None

    @property
    def feasible(self) -> bool:
        """Whether it is worth evaluating: within every budget or, with several
        devices, within every budget of at least one of them."""
        if self.device_constraints:
            return bool(self.feasible_on)
        return all(v <= 0 for v in self.constraints.values())

    @property
    def feasible_on(self) -> list[str]:
        return feasible_on(self.device_constraints)


def feasible_on(device_constraints: dict[str, dict[str, float]]) -> list[str]:
    """The devices whose every constraint is met (<= 0)."""
    return [d for d, c in device_constraints.items() if all(v <= 0 for v in c.values())]


@dataclass
class TrialResult:
    feasible: bool
    arch: Arch
    compression: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)
    artifact: str | None = None
    test_accuracy: float | None = None
    device_constraints: dict[str, dict[str, float]] = field(default_factory=dict)
    # Where it trained (Placement.tags(): device, device_name, precision, ray_gpu_ids),
    # recorded as tags of its MLflow run.
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def feasible_on(self) -> list[str]:
        """Devices it is feasible for (a multi-device search; [] otherwise or untrained)."""
        return feasible_on(self.device_constraints) if self.feasible else []

    @property
    def values(self) -> tuple[float, float]:
        """The objectives on the default cost axis: (val_accuracy, size_bytes)."""
        return self.objectives("size_bytes")

    def objectives(self, cost: str) -> tuple[float, float]:
        """The objectives: (val_accuracy to maximize, ``cost`` to minimize), where
        ``cost`` is ``search.cost`` (``size_bytes`` or ``energy_uj``)."""
        return self.metrics["val_accuracy"], self.metrics[cost]


COST_ESTIMATES = {"size_bytes": "size_bytes_estimate", "energy_uj": "energy_uj"}
"""Each ``search.cost``'s figure known before training (a proposal's metric): the
size's upper bound, and the energy itself (it depends only on shapes, bits, sparsity)."""


class EpochJudge(Protocol):
    """Decides after each training epoch whether a trial goes on (multi-objective ASHA)."""

    def should_stop(
        self, number: int, epoch: int, val_accuracy: float, size_bytes: float
    ) -> bool: ...


class TeacherSource(Protocol):
    """A distillation teacher, built (or trained and cached) on first :meth:`get`."""

    def get(self) -> nn.Module: ...

    def describe(self) -> str: ...


class Strategy(Protocol):
    """How feasible candidates get their accuracy (see the module docstring)."""

    records_scores: bool
    """Whether each scored trial is its own MLflow child run (and on the front)."""

    trains_once: bool
    """Whether :meth:`prepare` trains something shared (a supernet): ``runner=ray`` then
    runs it as one task on a worker, with a trial's resources."""

    def check(self, ctx: TrialContext) -> None:
        """Refuse (ConfigError) what it cannot honour, before anything is written."""

    def plan(
        self, ctx: TrialContext, seconds: float | None, recorded: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Fit the one-off work of :meth:`prepare` to ``seconds`` (what
        ``search.timeout_s`` leaves; None: no limit): the ``strategy`` config values to
        change, {} for none. ``recorded``: the plan a resumed study recorded, returned
        as it is (a study never mixes two plans). Raises ConfigError when even its least
        work does not fit, before anything is written."""
        ...

    def prepare(self, ctx: TrialContext) -> None:
        """One-off work before the first trial, in the driver process."""

    def score(self, proposal: Proposal, ctx: TrialContext) -> TrialResult:
        """The result of a feasible proposal (any worker)."""
        ...

    min_finalists: int
    """How many finalists always run (``reserve_s`` keeps time for them); more run
    while ``search.timeout_s`` has time left."""

    max_finalists: int | None
    """The most finalists in all (None: until the budget ends)."""

    def finalists(self, study: optuna.Study, ctx: TrialContext, batch: int = 1) -> list[int]:
        """Numbers of the scored trials to finalise next (phase 3), best first, given
        the finalists that have landed; the driver asks again after each ``batch``
        (how many run side by side). [] for none."""
        ...

    def reserve_s(self, ctx: TrialContext, seconds: float | None = None) -> float:
        """Seconds of ``seconds`` (``search.timeout_s``) kept for the finalists: scoring
        stops that much earlier, so the whole search fits its budget (0 without
        finalists)."""
        ...

    def finalize(self, proposal: Proposal, ctx: TrialContext) -> TrialResult:
        """Train, export and score a finalist for real (any worker)."""
        ...


@dataclass
class Device:
    """One target of a multi-device search (``+hw=[a,b,...]``)."""

    name: str
    cfg: HwConfig
    model: HardwareModel


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
    # Set for a multi-device search only (then hw and hw_cfg are None): its targets,
    # and the constraint its samplers see (search.device_constraint).
    devices: list[Device] = field(default_factory=list)
    device_constraint: str = "round_robin"
    # Where trials train (train.device / train.precision, resolved in this process);
    # None: the CPU at fp32.
    placement: Placement | None = None
    # The front's hypervolume reference (dataset.hv_ref_accuracy, hv_ref_size_bytes):
    # what a strategy choosing finalists by the hypervolume they add measures against.
    front_ref: tuple[float, float] | None = None
    # The front's cost axis (search.cost): what early stopping ranks against accuracy.
    cost: str = "size_bytes"

    @property
    def device(self) -> str:
        return self.placement.device if self.placement is not None else "cpu"

    @property
    def precision(self) -> str:
        return self.placement.precision if self.placement is not None else "fp32"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        spec = self.splits.spec
        return (1, spec.in_chans, spec.image_size, spec.image_size)
