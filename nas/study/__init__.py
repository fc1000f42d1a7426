"""A search's records: the Optuna study (storage, samplers, resume), the one trial
recorder, MLflow tracking, the Pareto front, early stopping and the budgets.

Names load lazily (Optuna, MLflow). Record keys are constants in :mod:`nas.study.keys`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_getattr
from nas.study import keys  # plain constants: no import cost

if TYPE_CHECKING:
    from nas.study._budgets import (
        check_budgets_reachable,
        nearest_candidates,
        smallest_achievable,
        unreachable_budget,
        unreachable_devices,
    )
    from nas.study._constraint_sampler import ConstraintModelSampler
    from nas.study._early_stop import (
        EARLY_STOPPERS,
        MOASHA,
        StudyLink,
        continues,
        crowding_distance,
        make_early_stop,
        nondominated_ranks,
        rungs,
    )
    from nas.study._front import Front, FrontState, front_rows
    from nas.study._pareto import (
        Point,
        hypervolume,
        pareto_front,
        write_csv,
        write_devices_png,
        write_html,
        write_png,
    )
    from nas.study._population import (
        PopulationSummary,
        kendall_tau,
        population_rows,
        summarize_population,
    )
    from nas.study._recorder import (
        Started,
        State,
        TrialOutcome,
        TrialRecorder,
        end_finished_run,
        result_of,
        run_and_record,
    )
    from nas.study._report import (
        EXIT_INTERRUPTED,
        EXIT_NO_FEASIBLE,
        DeviceFront,
        SearchOutcome,
        format_front,
        format_nearest,
        runs_url,
    )
    from nas.study._samplers import (
        DIRECTIONS,
        SAMPLERS,
        list_samplers,
        make_sampler,
        register_sampler,
    )
    from nas.study._signals import sigint_deferred, sigint_ignored
    from nas.study._storage import (
        JournalFile,
        counted_trials,
        end_interrupted_trials,
        make_storage,
        open_study,
        requeue_interrupted,
        study_attr,
        trial_at,
    )
    from nas.study._tracking import Tracker, check_reachable, flatten, redact_secrets

_NAMES = {
    **dict.fromkeys(
        ["check_budgets_reachable", "nearest_candidates", "smallest_achievable",
         "unreachable_budget", "unreachable_devices"],
        "nas.study._budgets",
    ),
    "ConstraintModelSampler": "nas.study._constraint_sampler",
    **dict.fromkeys(
        ["EARLY_STOPPERS", "MOASHA", "StudyLink", "continues", "crowding_distance",
         "make_early_stop", "nondominated_ranks", "rungs"],
        "nas.study._early_stop",
    ),
    **dict.fromkeys(["Front", "FrontState", "front_rows"], "nas.study._front"),
    **dict.fromkeys(
        ["PopulationSummary", "kendall_tau", "population_rows", "summarize_population"],
        "nas.study._population",
    ),
    **dict.fromkeys(
        ["Point", "hypervolume", "pareto_front", "write_csv", "write_devices_png", "write_html",
         "write_png"],
        "nas.study._pareto",
    ),
    **dict.fromkeys(
        ["Started", "State", "TrialOutcome", "TrialRecorder", "end_finished_run", "result_of",
         "run_and_record"],
        "nas.study._recorder",
    ),
    **dict.fromkeys(
        ["EXIT_INTERRUPTED", "EXIT_NO_FEASIBLE", "DeviceFront", "SearchOutcome", "format_front",
         "format_nearest", "runs_url"],
        "nas.study._report",
    ),
    **dict.fromkeys(
        ["DIRECTIONS", "SAMPLERS", "list_samplers", "make_sampler", "register_sampler"],
        "nas.study._samplers",
    ),
    **dict.fromkeys(["sigint_deferred", "sigint_ignored"], "nas.study._signals"),
    **dict.fromkeys(
        ["JournalFile", "counted_trials", "end_interrupted_trials", "make_storage",
         "open_study", "requeue_interrupted", "study_attr", "trial_at"],
        "nas.study._storage",
    ),
    **dict.fromkeys(
        ["Tracker", "check_reachable", "flatten", "redact_secrets"], "nas.study._tracking"
    ),
}  # fmt: skip

__all__ = [
    "ConstraintModelSampler",
    "DIRECTIONS",
    "EARLY_STOPPERS",
    "EXIT_INTERRUPTED",
    "EXIT_NO_FEASIBLE",
    "DeviceFront",
    "Front",
    "FrontState",
    "JournalFile",
    "MOASHA",
    "Point",
    "PopulationSummary",
    "SAMPLERS",
    "SearchOutcome",
    "Started",
    "State",
    "StudyLink",
    "Tracker",
    "TrialOutcome",
    "TrialRecorder",
    "check_budgets_reachable",
    "unreachable_budget",
    "unreachable_devices",
    "check_reachable",
    "continues",
    "counted_trials",
    "crowding_distance",
    "end_finished_run",
    "end_interrupted_trials",
    "flatten",
    "format_front",
    "format_nearest",
    "front_rows",
    "hypervolume",
    "kendall_tau",
    "keys",
    "list_samplers",
    "make_early_stop",
    "make_sampler",
    "make_storage",
    "nearest_candidates",
    "nondominated_ranks",
    "open_study",
    "pareto_front",
    "population_rows",
    "redact_secrets",
    "register_sampler",
    "requeue_interrupted",
    "study_attr",
    "trial_at",
    "result_of",
    "runs_url",
    "run_and_record",
    "rungs",
    "sigint_deferred",
    "sigint_ignored",
    "smallest_achievable",
    "summarize_population",
    "write_csv",
    "write_devices_png",
    "write_html",
    "write_png",
]

__getattr__ = lazy_getattr(__name__, _NAMES)
