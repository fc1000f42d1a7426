"""The keys of what a search records, in one place.

Optuna trial user attrs (the study is the source of truth; a resumed search reads
them back) and MLflow run tags (what a user filters on in the UI). Change a value
here and old studies stop resuming cleanly: these strings are stored.
"""

from __future__ import annotations

__all__ = [
    "ARCH",
    "ARTIFACT",
    "COMPRESSION",
    "CONFIG_HASH",
    "DEVICE_CONSTRAINTS",
    "ERROR",
    "EXPERIMENT_KIND",
    "FEASIBLE",
    "FINALIST_OF",
    "INTERRUPTED",
    "METRICS",
    "PARTIAL",
    "PHASE",
    "RETRY_OF",
    "ROLE_SEARCH",
    "ROLE_TRIAL",
    "RUNNER",
    "RUN_ID",
    "STOPPED",
    "STRATEGY_PLAN",
    "TAG_ARCH",
    "TAG_CONFIG_HASH",
    "TAG_COST",
    "TAG_ERROR",
    "TAG_DEVICES",
    "TAG_EXPERIMENT_KIND",
    "TAG_FEASIBLE",
    "TAG_FRONT_EMPTY",
    "TAG_OFF_FRONT",
    "TAG_PARENT",
    "TAG_PARETO",
    "TAG_ROLE",
    "TAG_STATE",
    "TAG_STOPPED",
    "TAG_STUDY",
    "TAG_SUPERNET",
    "TAG_TRIAL",
    "TEST_ACCURACY",
    "WORKER",
    "device_tag",
]

# -- Optuna trial user attrs -------------------------------------------------------------
RUN_ID = "mlflow_run_id"
"""The trial's MLflow child run (absent for a trial that is scored only)."""
FEASIBLE = "feasible"
"""Whether the candidate met every hw budget (an infeasible one is never trained)."""
ARCH = "arch"
METRICS = "metrics"
COMPRESSION = "compression"
"""The derived compression params, so a run ended on resume logs what a normal end does."""
ARTIFACT = "artifact"
"""Path of the trial's ``.dsz`` artifact."""
TEST_ACCURACY = "test_accuracy"
"""Measured for every trained trial, reported only for front members; never selected on."""
ERROR = "error"
STOPPED = "stopped"
INTERRUPTED = "interrupted"
"""A trial that a crash or Ctrl-C cut short; it does not count toward ``search.n_trials``."""
PARTIAL = "partial"
"""Early stopping's per-epoch results of a trial (``nas.study`` MO-ASHA)."""
RUNNER = "runner"
WORKER = "nas.worker"
"""Where the trial was evaluated: ``{"host", "pid"}``, and ``"node"`` (the Ray node id)
under ``runner=ray`` (there, absent for a proposal refused as infeasible in the driver)."""
PHASE = "nas.phase"
"""``"final"`` for a strategy's finalist (absent: a trial of the scoring phase)."""
FINALIST_OF = "nas.finalist_of"
"""A finalist's scored trial number."""
RETRY_OF = "nas.retry_of"
"""The interrupted trial whose candidate this one runs again (queued on resume)."""
DEVICE_CONSTRAINTS = "device_constraints"
"""A multi-device search: each device's constraints ``{device: {key: value}}`` (feasible
for a device when all its values are <= 0)."""
CONFIG_HASH = "config_hash"
"""Study user attr: the hash of the config that made it (a resume must match it)."""
STRATEGY_PLAN = "strategy_plan"
"""Study user attr: the ``strategy`` values its first start fitted to the budget
(``Strategy.plan``; {} for none), which every resume applies again."""

# -- MLflow run tags ---------------------------------------------------------------------
TAG_ROLE = "nas.role"
ROLE_SEARCH = "search"
ROLE_TRIAL = "trial"
TAG_STUDY = "nas.study_name"
TAG_TRIAL = "nas.trial"
TAG_CONFIG_HASH = "nas.config_hash"
TAG_PARENT = "mlflow.parentRunId"
TAG_PARETO = "pareto"
TAG_FEASIBLE = "feasible"
TAG_ARCH = "arch"
TAG_ERROR = "error"
TAG_STOPPED = "stopped"
TAG_STATE = "state"
TAG_COST = "nas.cost"
"""Parent run: the front's cost axis (``search.cost``: ``size_bytes`` or ``energy_uj``),
which the ``pareto`` tags, the hypervolume and the plots follow."""
TAG_DEVICES = "nas.devices"
"""Parent run of a multi-device search: its devices, comma-separated, in order."""
TAG_FRONT_EMPTY = "front_empty"
"""Parent run, per device (``front_empty.<device>``): why that device's front is empty."""
TAG_OFF_FRONT = "off_front"
"""Why a trained, feasible trial is kept off every front (below ``search.min_accuracy``)."""
TAG_SUPERNET = "nas.supernet"
"""Parent run of a weight-sharing search: the file of its shared weights
(``nas.export --adaptive`` derives its operating points from them)."""
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
"""MLflow 3's UI opens an experiment on its GenAI overview unless this says otherwise."""
EXPERIMENT_KIND = "custom_model_development"


def device_tag(tag: str, device: str) -> str:
    """A per-device run tag or metric of a multi-device search: ``pareto.mobile``.
    MLflow's filter syntax needs backticks around it: tags.`pareto.mobile` = 'true'."""
    return f"{tag}.{device}"
