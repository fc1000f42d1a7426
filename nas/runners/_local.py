"""``runner=local``: trials one after another in this process."""

from __future__ import annotations

import time

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from nas.pipeline import TrialResult, run_trial
from nas.runners._base import SearchLoop, register_runner, worker_record
from nas.study import keys, run_and_record

__all__ = ["LocalRunner"]


@register_runner("local")
class LocalRunner:
    """Trials one after another in this process."""

    trains_here = True

    def check(self, cfg: DictConfig) -> None:
        pass

    def prepare(self, loop: SearchLoop) -> None:
        assert loop.ctx.strategy is not None
        loop.ctx.strategy.prepare(loop.ctx)

    def run(self, loop: SearchLoop) -> None:
        where = worker_record()

        def body(trial: optuna.Trial) -> TrialResult:
            trial.set_user_attr(keys.WORKER, where)
            return run_trial(trial, loop.ctx, number=trial.number, phase=loop.phase_of(trial),
                             ends_at=loop.ends_at())  # fmt: skip

        while loop.remaining > 0:
            if loop.past_deadline():
                return
            t0 = time.monotonic()
            frozen = run_and_record(loop.recorder, body)
            if frozen.state == TrialState.COMPLETE and frozen.user_attrs.get(keys.FEASIBLE):
                loop.durations.append(time.monotonic() - t0)
