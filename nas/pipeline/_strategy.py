"""The search-strategy seam: how a feasible candidate gets its accuracy.

A strategy is registered in :data:`STRATEGIES` under its ``conf/strategy/<name>.yaml``
option. ``scratch`` (the default) trains every candidate from scratch. A
weight-sharing strategy (a supernet, as in Once-for-All or BigNAS) plugs in here
without a second runner, recorder or tracker, in three phases:

1. :meth:`Strategy.prepare`, once, in the driver, before any trial: the one-off,
   shared work (train the supernet once and cache it on disk, where every worker,
   local or Ray, finds it).
2. :meth:`Strategy.score`, once per feasible proposal, on whichever worker runs
   the trial: cheap when weights are shared. Each proposal is an Optuna trial; it
   is an MLflow child run only when :attr:`Strategy.records_scores` is true.
3. :meth:`Strategy.finalists`, once scoring ends: the trials to finalise. The
   driver re-proposes each as a new trial in phase ``"final"`` (same parameters),
   and :meth:`Strategy.finalize` trains, exports and scores it, recorded as an
   MLflow child run exactly as a scratch trial is, and the front is theirs.

``scratch`` scores by training (so every trial is recorded) and has no finalists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nas._stop import raise_at
from nas.config import Registry
from nas.pipeline._context import Proposal, Strategy, TrialContext, TrialResult
from nas.pipeline._errors import TrialTimeout

if TYPE_CHECKING:
    from search_spaces import Suggest

__all__ = ["HUNG_MARGIN_S", "STRATEGIES", "Strategy", "evaluate_proposal", "run_trial"]

HUNG_MARGIN_S = 10.0
"""Seconds past ``search.trial_timeout_s`` at which a trial that has not stopped by
itself (its training checks the limit after every step, the evaluator's wait is bounded
by it) is taken to be blocked and stopped from outside: a data loader that never
delivers, a network file system that never answers."""


STRATEGIES: Registry[Callable[[Any], Strategy]] = Registry(
    "strategy",
    lazy={
        "scratch": "nas.pipeline._scratch:ScratchStrategy",
        "supernet": "nas.pipeline._supernet:SupernetStrategy",
    },
)
"""Strategy classes by ``strategy=`` option; each is built with its ``strategy`` config node."""


def evaluate_proposal(proposal: Proposal, ctx: TrialContext) -> TrialResult:
    """A feasible proposal's result through ``ctx.strategy``: scored, or finalised.

    Raises:
        TrialTimeout: it ran :data:`HUNG_MARGIN_S` past ``ctx.trial_timeout_s``, blocked.
    """
    if ctx.strategy is None:
        raise RuntimeError("this trial context has no search strategy")
    limit = ctx.trial_timeout_s
    hung = None if limit is None else time.monotonic() + limit + HUNG_MARGIN_S

    def blocked(where: str) -> TrialTimeout:
        return TrialTimeout(
            f"trial exceeded search.trial_timeout_s={limit:g} s and was stopped in {where}, "
            "where it was blocked"
        )

    with raise_at(hung, blocked):
        if proposal.phase == "final":
            result = ctx.strategy.finalize(proposal, ctx)
        else:
            result = ctx.strategy.score(proposal, ctx)
    if ctx.placement is not None:
        result.tags.update(ctx.placement.tags())
    return result


def run_trial(
    suggest: Suggest, ctx: TrialContext, *, number: int, phase: str = "score",
    ends_at: float | None = None,
) -> TrialResult:  # fmt: skip
    """Propose a candidate and, when it is feasible, evaluate it through the strategy.
    ``ends_at``: when the search's budget ends (``Proposal.ends_at``)."""
    from nas.pipeline._candidate import infeasible_result, propose

    p = propose(suggest, ctx, number=number)
    p.phase, p.ends_at = phase, ends_at
    return evaluate_proposal(p, ctx) if p.feasible else infeasible_result(p)
