"""How a trial can end early, short of a result: stopped (early stopping, its time
limit) or failed (a diverged loss). Light, and imported by every module that raises
them, the evaluator process's included."""

from __future__ import annotations

from nas.config import ConfigError

__all__ = ["NotLearning", "TrainFailed", "TrialStopped", "TrialTimeout"]


class TrialStopped(Exception):
    """Early stopping ended the trial after a partial result; it is recorded as PRUNED."""


class TrialTimeout(TrialStopped, TimeoutError):
    """The trial ran past ``search.trial_timeout_s``; it is recorded as stopped."""


class TrainFailed(RuntimeError):
    """Training diverged (NaN or inf loss); the trial is recorded as failed, diverged."""


class NotLearning(ConfigError):
    """A supernet whose loss is still at chance: the search stops before it scores noise
    (one line, exit 2: the data's labels or the recipe are what to look at)."""
