"""Multi-objective early stopping: asynchronous successive halving on the Pareto rank.

MO-ASHA (Schmucker et al. 2021, "Multi-objective Asynchronous Successive Halving";
Syne Tune's ``MOASHA``), in its stopping form. Rungs sit at ``r_min * eta**k``
training epochs. When a trial reaches a rung, its (val accuracy, size) joins the
results recorded there; the results are ordered by non-dominated sorting (NSGA-II
rank; accuracy up, log10 size down), ties within a rank broken by crowding distance
(the extremes of each rank first), then by trial number. The trial continues only
if it is among the first ``ceil(n / eta)`` of the ``n`` results. A rung holding
fewer than ``eta`` results (or at most ``grace_trials``) stops nothing: asynchronous
promotion, so the first trials are never stopped for lack of company.

Lifecycle: :func:`make_early_stop` builds the judge when the trial context is made;
``nas.pipeline.train_proposal`` calls :meth:`MOASHA.should_stop` after every training
epoch but the last. The judge keeps an in-memory table of rung results. With a
:class:`StudyLink`, it also writes each trial's partial results to that trial in the
Optuna study (user attr ``partial``) and, on its first call, rebuilds its table from
every trial of the study, so a resumed search (or a fresh Ray actor) judges against
all results recorded so far. It holds no open handles when pickled (the link reopens
the storage lazily), so the Ray runner can host it in an actor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.config import Registry
from nas.study import keys

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from nas.pipeline import EpochJudge

__all__ = [
    "EARLY_STOPPERS",
    "MOASHA",
    "PARTIAL_ATTR",
    "StudyLink",
    "continues",
    "crowding_distance",
    "make_early_stop",
    "nondominated_ranks",
    "rungs",
]

PARTIAL_ATTR = keys.PARTIAL
"""Trial user attr: ``{"size_bytes": estimate, "val_accuracy": {"<epochs>": acc, ...}}``."""


def make_early_stop(
    cfg: DictConfig, *, out_dir: Path | None = None, study_name: str | None = None
) -> EpochJudge | None:
    """The judge ``cfg.early_stop`` asks for, or None (``early_stop=none``).

    Args:
        out_dir, study_name: where the search's study lives (as for
            ``nas.study.make_storage``); with both, partial results are persisted to
            and rebuilt from the study, otherwise they live in memory only.
    """
    link = None
    if out_dir is not None and study_name is not None:
        link = StudyLink(storage=cfg.search.storage, study_name=study_name, output_dir=str(out_dir))
    return EARLY_STOPPERS.get(cfg.early_stop.name)(cfg, link)


JudgeFactory = Callable[["DictConfig", "StudyLink | None"], "EpochJudge | None"]
EARLY_STOPPERS: Registry[JudgeFactory] = Registry("early_stop")
"""Judge factories ``(cfg, link) -> judge`` by ``early_stop=`` option."""


@EARLY_STOPPERS.register("none")
def _no_early_stop(cfg: DictConfig, link: StudyLink | None) -> EpochJudge | None:
    return None


@EARLY_STOPPERS.register("moasha")
def _moasha(cfg: DictConfig, link: StudyLink | None) -> EpochJudge | None:
    e = cfg.early_stop
    return MOASHA(
        epochs=int(cfg.train.epochs),
        min_epochs=int(e.min_epochs),
        reduction_factor=int(e.reduction_factor),
        grace_trials=int(e.grace_trials),
        link=link,
    )


def rungs(epochs: int, min_epochs: int, reduction_factor: int) -> list[int]:
    """Epoch counts at which a trial is judged: ``r_min * eta**k`` below ``epochs``.

    The last epoch is never a rung: a trial that trained that far is finished.
    """
    out, r = [], min_epochs
    while r < epochs:
        out.append(r)
        r *= reduction_factor
    return out


class StudyLink:
    """Where partial results persist: the trials of an Optuna study.

    Picklable (strings only); the storage is opened on first use in each process.
    Args are those of ``nas.study.make_storage``.
    """

    def __init__(self, *, storage: str | None, study_name: str, output_dir: str) -> None:
        self.storage, self.study_name, self.output_dir = storage, study_name, output_dir
        self._opened: tuple[Any, int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, _opened=None)

    def _open(self) -> tuple[Any, int]:
        if self._opened is None:
            import optuna

            from nas.study._storage import make_storage

            storage = make_storage(self.storage, self.study_name, Path(self.output_dir))
            if isinstance(storage, str):  # an RDB URL
                storage = optuna.storages.get_storage(storage)
            self._opened = (storage, storage.get_study_id_from_name(self.study_name))
        return self._opened

    def load(self) -> dict[int, dict[str, Any]]:
        """Every trial's recorded partial results, by trial number."""
        storage, study_id = self._open()
        return {
            t.number: t.user_attrs[PARTIAL_ATTR]
            for t in storage.get_all_trials(study_id, deepcopy=False)
            if PARTIAL_ATTR in t.user_attrs
        }

    def save(self, number: int, partial: dict[str, Any]) -> None:
        storage, study_id = self._open()
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        storage.set_trial_user_attr(trial_id, PARTIAL_ATTR, partial)


class MOASHA:
    """Asynchronous successive halving over the Pareto rank of partial results.

    Args:
        epochs: training epochs of a full trial (``train.epochs``).
        min_epochs: r_min, the epochs before the first rung.
        reduction_factor: eta; each rung keeps the top 1/eta of its results.
        grace_trials: the first results at each rung that always continue.
        link: persist partial results to the study, and rebuild from it.
    """

    def __init__(
        self,
        *,
        epochs: int,
        min_epochs: int = 1,
        reduction_factor: int = 3,
        grace_trials: int = 0,
        link: StudyLink | None = None,
    ) -> None:
        if min_epochs < 1 or reduction_factor < 2 or grace_trials < 0:
            raise ValueError(
                f"MOASHA needs min_epochs >= 1, reduction_factor >= 2, grace_trials >= 0; got "
                f"{min_epochs}, {reduction_factor}, {grace_trials}"
            )
        self.epochs = epochs
        self.eta = reduction_factor
        self.grace_trials = grace_trials
        self.rungs = rungs(epochs, min_epochs, reduction_factor)
        self.link = link
        # rung (epochs trained) -> trial number -> (val accuracy, size bytes)
        self.table: dict[int, dict[int, tuple[float, float]]] = {r: {} for r in self.rungs}
        self._partial: dict[int, dict[str, Any]] = {}
        self._seeded = link is None

    def should_stop(self, number: int, epoch: int, val_accuracy: float, size_bytes: float) -> bool:
        """Record trial ``number`` after training epoch ``epoch`` (0-based); stop it?"""
        self._seed()
        done = epoch + 1
        partial = self._partial.setdefault(
            number, {"size_bytes": float(size_bytes), "val_accuracy": {}}
        )
        partial["val_accuracy"][str(done)] = float(val_accuracy)
        if self.link is not None:
            self.link.save(number, partial)
        if done not in self.table:
            return False
        results = self.table[done]
        results[number] = (float(val_accuracy), float(size_bytes))
        return not continues(number, results, self.eta, self.grace_trials)

    def seed(self, partials: dict[int, dict[str, Any]]) -> None:
        """Add recorded partial results (``PARTIAL_ATTR`` values by trial number)."""
        for number, partial in partials.items():
            self._partial.setdefault(number, partial)
            size = float(partial["size_bytes"])
            for done, acc in partial["val_accuracy"].items():
                if int(done) in self.table:
                    self.table[int(done)].setdefault(number, (float(acc), size))

    def _seed(self) -> None:
        if not self._seeded and self.link is not None:
            self.seed(self.link.load())
            self._seeded = True


def continues(
    number: int, results: dict[int, tuple[float, float]], eta: int, grace_trials: int = 0
) -> bool:
    """Whether trial ``number`` is in the top ``ceil(n / eta)`` of a rung's ``results``."""
    n = len(results)
    if n < eta or n <= grace_trials:
        return True
    numbers = sorted(results)
    points = [(results[k][0], math.log10(max(results[k][1], 1.0))) for k in numbers]
    ranks = nondominated_ranks(points)
    crowd = [0.0] * n
    for r in set(ranks):
        idx = [i for i in range(n) if ranks[i] == r]
        for i, d in zip(idx, crowding_distance([points[i] for i in idx]), strict=True):
            crowd[i] = d
    order = sorted(range(n), key=lambda i: (ranks[i], -crowd[i], numbers[i]))
    keep = math.ceil(n / eta)
    return numbers.index(number) in order[:keep]


def nondominated_ranks(points: list[tuple[float, float]]) -> list[int]:
    """NSGA-II rank (0 = non-dominated) of each (accuracy up, size down) point."""

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

    ranks = [-1] * len(points)
    left = set(range(len(points)))
    rank = 0
    while left:
        front = {i for i in left if not any(dominates(points[j], points[i]) for j in left)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def crowding_distance(points: list[tuple[float, float]]) -> list[float]:
    """NSGA-II crowding distance of points of one rank; the extremes get infinity."""
    n = len(points)
    if n <= 2:
        return [math.inf] * n
    dist = [0.0] * n
    for k in range(2):
        order = sorted(range(n), key=lambda i: points[i][k])
        lo, hi = points[order[0]][k], points[order[-1]][k]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for j in range(1, n - 1):
            dist[order[j]] += (points[order[j + 1]][k] - points[order[j - 1]][k]) / (hi - lo)
    return dist
