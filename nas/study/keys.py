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
    "ERROR",
    "FEASIBLE",
    "FINALIST_OF",
    "INTERRUPTED",
    "METRICS",
    "PARTIAL",
    "PHASE",
    "ROLE_SEARCH",
    "ROLE_TRIAL",
    "RUNNER",
    "RUN_ID",
    "STOPPED",
    "TAG_ARCH",
    "TAG_CONFIG_HASH",
    "TAG_ERROR",
    "TAG_FEASIBLE",
    "TAG_PARENT",
    "TAG_PARETO",
    "TAG_ROLE",
    "TAG_STATE",
    "TAG_STOPPED",
    "TAG_STUDY",
    "TAG_TRIAL",
    "TEST_ACCURACY",
    "WORKER",
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
CONFIG_HASH = "config_hash"
"""Study user attr: the hash of the config that made it (a resume must match it)."""

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
