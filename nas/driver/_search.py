"""The search driver: open the study and its MLflow parent run, let the runner run the
trials through the one recorder, keep the front, and report.

Heavy imports (torch, timm, mlflow) live here, behind ``nas.search``, which
validates the config first.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf, open_dict
from tqdm.auto import tqdm

from nas._stop import EXIT_DISK_FULL, DiskFull, raise_if_preempted, set_grace, stop_cause
from nas.config import ConfigError, device_profiles, min_accuracy, one_line, search_hash
from nas.driver._finish import end_records, say_disk_full
from nas.pipeline import TrialContext
from nas.runners import Runner, SearchLoop, get_runner, make_context
from nas.study import (
    EXIT_INTERRUPTED,
    EXIT_NO_FEASIBLE,
    DeviceFront,
    FrontState,
    SearchOutcome,
    Tracker,
    TrialRecorder,
    check_budgets_reachable,
    check_reachable,
    counted_trials,
    flatten,
    keys,
    make_sampler,
    make_storage,
    nearest_candidates,
    open_study,
    redact_secrets,
    requeue_interrupted,
    sigint_ignored,
    study_attr,
    trial_at,
    unreachable_devices,
)

__all__ = ["run_search", "study_name_of"]


def study_name_of(cfg: DictConfig) -> str:
    """The study a config names: ``search.study_name``, else one derived from the config."""
    if cfg.search.study_name:
        return str(cfg.search.study_name)
    hw = "+".join(device_profiles(cfg)) or "nohw"
    return f"{cfg.search_space.name}-{cfg.dataset.name}-{hw}-{search_hash(cfg)}"


@dataclass
class _Opened:
    """A search's records, open: its study and its MLflow parent run."""

    study: optuna.Study
    tracker: Tracker
    resumed: bool
    # A multi-device search's devices whose budgets no candidate can meet, with why.
    impossible: dict[str, str]


class _NoDevicePossible(Exception):
    """Every device of a multi-device search has a budget no candidate can meet."""

    def __init__(self, reasons: dict[str, str]) -> None:
        super().__init__("; ".join(reasons.values()))
        self.reasons = reasons


def run_search(cfg: DictConfig, *, plugins: Sequence[str] = ()) -> SearchOutcome:
    """Run (or resume) the search ``cfg`` describes; returns what it found.

    Args:
        plugins: modules that register user extensions; the evaluator process imports
            them too, so it can rebuild models of a user's search space.
    """
    start = time.monotonic()
    set_grace(float(cfg.search.get("grace_s", 60.0)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out_dir = Path(cfg.search.output_dir or os.getcwd()).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    name = study_name_of(cfg)
    tracking_uri = cfg.mlflow.tracking_uri or f"sqlite:///{out_dir / 'mlflow.db'}"
    runner = get_runner(cfg.runner.name)

    # Everything a user's input can break (data, budgets, the tracking server, the
    # cluster) is checked before any study or run is written, so a refused start
    # leaves nothing. The local runner's context starts its evaluator process now, so
    # its start-up overlaps these checks instead of delaying the first trial.
    ctx = make_context(
        cfg, out_dir=out_dir, study_name=name, plugins=plugins, evaluator=runner.trains_here
    )
    timeout = cfg.search.timeout_s
    try:
        left = None if timeout is None else start + float(timeout) - time.monotonic()
        opened = _open(cfg, ctx, runner, name, out_dir, tracking_uri, left)
    except _NoDevicePossible as e:
        # Nothing was written: no candidate could be feasible anywhere, so no trial runs.
        if ctx.evaluator is not None:
            ctx.evaluator.close()
        return SearchOutcome(
            study_name=name, parent_run_id="", tracking_uri=tracking_uri,
            exit_code=EXIT_NO_FEASIBLE, wall_seconds=time.monotonic() - start,
            devices={d: DeviceFront(why_empty=why) for d, why in e.reasons.items()},
        )  # fmt: skip
    except BaseException:
        if ctx.evaluator is not None:
            ctx.evaluator.close()
        raise
    outcome = SearchOutcome(
        study_name=name,
        parent_run_id=opened.tracker.parent_id,
        tracking_uri=tracking_uri,
        experiment_id=str(opened.tracker.experiment_id),
        cost=_cost(cfg),
    )
    deadline = None if cfg.search.timeout_s is None else start + float(cfg.search.timeout_s)
    _drive(cfg, opened, ctx, runner, outcome, deadline, tuple(plugins), out_dir)
    outcome.wall_seconds = time.monotonic() - start
    if outcome.exit_code == 0 and not outcome.front:
        outcome.exit_code = EXIT_NO_FEASIBLE
        if not outcome.devices:
            outcome.nearest = nearest_candidates(opened.study)
    return outcome


def _open(
    cfg: DictConfig,
    ctx: TrialContext,
    runner: Runner,
    name: str,
    out_dir: Path,
    tracking_uri: str,
    seconds: float | None,
) -> _Opened:
    """Check what the user's input can break, fit the strategy's one-off work to the
    ``seconds`` the budget leaves, then open the study and the parent run."""
    if ctx.hw is not None:
        check_budgets_reachable(cfg, ctx.splits.spec, ctx.hw)
    impossible = unreachable_devices(cfg, ctx.splits.spec) if ctx.devices else {}
    if ctx.devices and len(impossible) == len(ctx.devices):
        raise _NoDevicePossible(impossible)
    for device, why in impossible.items():
        print(f"{device}: its front will be empty: {why}", file=sys.stderr)
    runner.check(cfg)
    assert ctx.strategy is not None
    ctx.strategy.check(ctx)
    config_hash = search_hash(cfg)  # the user's config: a fitted plan stays out of it
    exists, recorded, storage = study_attr(cfg.search.storage, name, out_dir, keys.STRATEGY_PLAN)
    # A study from before plans were recorded ran the config as it is: {}.
    plan = ctx.strategy.plan(ctx, seconds, (recorded or {}) if exists else None)
    tracker = _open_tracker(cfg, tracking_uri, out_dir)
    study, resumed = open_study(
        study_name=name,
        storage=storage if storage is not None else make_storage(cfg.search.storage, name, out_dir),
        sampler=make_sampler(cfg.sampler, int(cfg.search.seed)),
        config_hash=config_hash,
    )
    if not resumed:
        study.set_user_attr(keys.STRATEGY_PLAN, plan)
    if plan:
        # The live node the strategy reads (and the Ray workers are sent), and the
        # parent run's params below: what this search runs.
        with open_dict(cfg.strategy):
            cfg.strategy.merge_with(plan)
        if resumed:
            said = ", ".join(f"strategy.{k}={v}" for k, v in plan.items())
            print(f"Resuming with what its first start fitted to its budget: {said}.",
                  file=sys.stderr)  # fmt: skip
    resolved = redact_secrets(OmegaConf.to_container(cfg, resolve=True))
    params = flatten(resolved)
    params.update(
        {
            "hv.ref_accuracy": float(cfg.dataset.hv_ref_accuracy),
            f"hv.ref_{_cost(cfg)}": _cost_ref(cfg),
            "study_name": name,
        }
    )
    tags = {keys.TAG_CONFIG_HASH: config_hash, keys.TAG_COST: _cost(cfg)}
    if ctx.devices:
        tags[keys.TAG_DEVICES] = ",".join(d.name for d in ctx.devices)
        tags.update({keys.device_tag(keys.TAG_FRONT_EMPTY, d): w for d, w in impossible.items()})
    tracker.open_parent(study_name=name, params=params, tags=tags)
    # The resolved config, whole: what `nas.export` rebuilds the data and training from.
    tracker.log_text(tracker.parent_id, OmegaConf.to_yaml(resolved), "config.yaml")
    return _Opened(study, tracker, resumed, impossible)


def _drive(
    cfg: DictConfig,
    opened: _Opened,
    ctx: TrialContext,
    runner: Runner,
    outcome: SearchOutcome,
    deadline: float | None,
    plugins: tuple[str, ...],
    out_dir: Path,
) -> None:
    """Run the strategy's phases through the runner; whatever happens, end the records."""
    study, tracker, name = opened.study, opened.tracker, outcome.study_name
    strategy = ctx.strategy
    assert strategy is not None
    front_state = _front_state(cfg, ctx, tracker)
    recorder = TrialRecorder(study, tracker, name, strategy.records_scores, cost=_cost(cfg))
    status = "FAILED"  # unless the loop ends normally or by Ctrl-C
    bar: tqdm[Any] | None = None
    try:
        recorder.sweep_interrupted()
        requeue_interrupted(study)  # the candidates cut short run again first
        front_state.refresh(study, step=None)
        remaining = _remaining(cfg, study, resumed=opened.resumed)
        loop = SearchLoop(
            cfg=cfg, study=study, ctx=ctx, recorder=recorder, front_state=front_state,
            bar=tqdm(disable=True), remaining=remaining, deadline=deadline, plugins=plugins,
            out_dir=out_dir,
        )  # fmt: skip
        runner.prepare(loop)  # before the trials' progress bar: a supernet has its own
        raise_if_preempted()
        _tag_weights(strategy, ctx, tracker)
        if deadline is not None:  # the finalists' share of search.timeout_s
            loop.deadline = _scoring_deadline(cfg, strategy, ctx, deadline)
        bar = loop.bar = tqdm(
            total=remaining, desc="trials", unit="trial", disable=not cfg.search.progress,
            file=sys.stderr,
        )  # fmt: skip
        recorder.callbacks.append(loop.done)
        if loop.remaining > 0:
            runner.run(loop)
        raise_if_preempted()  # the trials in flight have ended: stop before the next
        _run_finalists(loop, runner, deadline)
        raise_if_preempted()
        status = "FINISHED"
    except KeyboardInterrupt:
        status, outcome.exit_code = "KILLED", EXIT_INTERRUPTED
        cause = stop_cause()
        print(
            f"\nStopped{f' by {cause}' if cause else ''}: finished trials are kept; a trial "
            "cut short is marked interrupted and runs again when the same command resumes.",
            file=sys.stderr,
        )
        _sweep(recorder)
    except DiskFull as e:
        status, outcome.exit_code = "FAILED", EXIT_DISK_FULL
        say_disk_full(e)
        _sweep(recorder)
    finally:
        # A second Ctrl-C must not cut the bookkeeping short and leave runs RUNNING; a
        # full disk may refuse some of it, which the resume then does.
        with sigint_ignored():
            if bar is not None:
                bar.close()
            if ctx.evaluator is not None:
                ctx.evaluator.close()
            end_records(
                study, tracker, front_state, outcome, folder=out_dir / "outputs" / name,
                impossible=opened.impossible, records_scores=strategy.records_scores,
                status=status,
            )  # fmt: skip


def _tag_weights(strategy: Any, ctx: TrialContext, tracker: Tracker) -> None:
    """A strategy that trains shared weights says where they are (its optional
    ``weights_file``): nas.export --adaptive derives its operating points from them."""
    weights = getattr(strategy, "weights_file", lambda _ctx: None)(ctx)
    if weights is not None:
        tracker.set_tags(tracker.parent_id, {keys.TAG_SUPERNET: str(weights)})


# When a strategy's one-off work (a supernet's training on a loaded machine) overran its
# plan, candidates are still scored for this share of search.timeout_s: a search that
# scored nothing would leave nothing to finalise, its whole budget spent for no front.
_MIN_SCORING_SHARE = 0.05


def _scoring_deadline(cfg: DictConfig, strategy: Any, ctx: TrialContext, deadline: float) -> float:
    """When scoring stops: the finalists' reserve before ``deadline``; for a strategy
    that finalises, never less than a floor from now (said, as the search then ends
    past its budget)."""
    timeout = float(cfg.search.timeout_s)
    scoring = deadline - strategy.reserve_s(ctx, timeout)
    floor = _MIN_SCORING_SHARE * timeout
    now = time.monotonic()
    if strategy.records_scores or scoring >= now + floor:
        return scoring
    print(
        f"The strategy's preparation left {max(scoring - now, 0.0):.0f} s of "
        f"search.timeout_s={timeout:g} for scoring (it ran past its plan); scoring for "
        f"{floor:.0f} s anyway, then finalising: the search will end past its budget.",
        file=sys.stderr,
    )
    return now + floor


def _sweep(recorder: TrialRecorder) -> None:
    """After a stop: the runner has ended the trials it knew were running; one stopped
    between creating its run and recording it (or telling the study and ending the run)
    is left, so sweep as a resume would. A full disk may refuse it: the resume does it."""
    with sigint_ignored(), contextlib.suppress(DiskFull):
        recorder.sweep_interrupted()


def _front_state(cfg: DictConfig, ctx: TrialContext, tracker: Tracker) -> FrontState:
    """The search's fronts: one, or one per device, above the accuracy floor."""
    return FrontState(
        tracker,
        float(cfg.dataset.hv_ref_accuracy),
        _cost_ref(cfg),
        min_accuracy=min_accuracy(cfg, ctx.splits.spec.num_classes),
        devices=[d.name for d in ctx.devices],
        cost=_cost(cfg),
    )


def _cost(cfg: DictConfig) -> str:
    """The front's cost axis, ``search.cost``."""
    return str(cfg.search.get("cost", "size_bytes"))


def _cost_ref(cfg: DictConfig) -> float:
    """The hypervolume's reference on the cost axis (``dataset.hv_ref_<cost>``)."""
    return float(cfg.dataset.get(f"hv_ref_{_cost(cfg)}"))


def _remaining(cfg: DictConfig, study: optuna.Study, *, resumed: bool) -> int:
    """Trials still to run: ``search.n_trials`` less those a resumed study counts."""
    done = counted_trials(study)
    remaining = max(int(cfg.search.n_trials) - done, 0)
    if resumed:
        print(f"Resuming study {study.study_name}: {done} trials done, {remaining} to go.",
              file=sys.stderr)  # fmt: skip
    return remaining


def _run_finalists(loop: SearchLoop, runner: Runner, deadline: float | None) -> None:
    """Phase 3 of a strategy: finalists, each a new recorded trial, asked of the strategy
    a batch at a time, so each choice sees every finalist that landed before it.

    A finalist is enqueued with its scored trial's parameters, so it is proposed (and
    checked against the budgets) exactly as it was scored. The first ``min_finalists``
    always run (``reserve_s`` kept time for them); the rest run while ``deadline``
    (``search.timeout_s``) leaves time for another, up to ``max_finalists`` if set. A
    batch is one trial locally, and as many as Ray runs side by side. ``scratch`` has
    none.
    """
    strategy = loop.ctx.strategy
    assert strategy is not None
    batch = 1 if runner.trains_here else max(1, int(loop.cfg.runner.get("max_concurrent", 1)))
    cap = strategy.max_finalists
    started = False
    while True:
        tried = _finalised(loop.study)
        done = len(tried)
        must = max(0, strategy.min_finalists - done)
        left = None if cap is None else cap - done
        if left is not None and left <= 0:
            return
        if not must:
            loop.deadline = deadline
            if loop.past_deadline():
                return
        chosen = [n for n in strategy.finalists(loop.study, loop.ctx, batch) if n not in tried]
        chosen = chosen[: must or batch][:left]
        if not chosen:
            return
        if not started:
            started = True
            loop.phase, loop.durations = "final", []
            loop.recorder.records_runs = True
            loop.bar.reset(total=None)
        _finalise(loop, runner, chosen, deadline=None if must else deadline)
        if len(_finalised(loop.study)) == done:
            return  # none could run (the budget ended in the runner): never loop idle


def _finalised(study: optuna.Study) -> set[int]:
    """The scored trials whose finalists finished, in any state (a failed one is not
    tried again)."""
    return {
        int(t.user_attrs[keys.FINALIST_OF])
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(keys.PHASE) == "final"
        and t.state.is_finished()
        and t.user_attrs.get(keys.FINALIST_OF) is not None
    }


def _finalise(
    loop: SearchLoop, runner: Runner, numbers: list[int], *, deadline: float | None
) -> None:
    for number in numbers:
        loop.study.enqueue_trial(
            trial_at(loop.study, number).params,
            user_attrs={keys.PHASE: "final", keys.FINALIST_OF: number},
        )
    loop.remaining, loop.deadline = len(numbers), deadline
    runner.run(loop)


def _open_tracker(cfg: DictConfig, uri: str, out_dir: Path) -> Tracker:
    check_reachable(
        uri,
        name=f"mlflow.tracking_uri={uri!r}",
        hint="start one with `mlflow server --host 127.0.0.1 --port PORT` or use a sqlite:/// URI",
    )
    try:
        return Tracker(
            tracking_uri=uri,
            experiment=cfg.mlflow.experiment,
            artifact_root=out_dir / "mlartifacts",
        )
    except Exception as e:
        raise ConfigError(
            f"mlflow.tracking_uri={uri!r} cannot be used: {one_line(e, 200)}"
        ) from None
