"""Downsize's search: joint architecture + compression search under hardware budgets.

The public API, lazily imported (``import nas`` costs nothing; torch loads only when
a name that needs it is used)::

    import nas

    cfg = nas.compose(["+hw=mobile", "search.n_trials=10"])  # validated; ConfigError
    outcome = nas.run_search(cfg)                             # the front, hypervolume...
    nas.export_run(outcome.front[0]["run_id"], "exported/")   # model.dsz + model.onnx

One trial by hand (``propose`` draws a candidate and checks the budgets before
training; the strategy scores a feasible one)::

    ctx = nas.make_context(cfg, out_dir=Path("out"), study_name="by-hand")
    proposal = nas.propose(optuna_trial_or_suggest, ctx, number=0)
    result = nas.run_trial(optuna_trial_or_suggest, ctx, number=0)

Subpackages, in layer order (each imports only those after it): ``nas.driver``,
``nas.export``, ``nas.runners``, ``nas.study``, ``nas.pipeline``, ``nas.hw``,
``nas.config``. ``docs/design.md`` shows one trial's data flow and the seams.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_getattr

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from nas.config import ConfigError, Registry, conf_dir, search_hash
    from nas.driver import preflight, run_search, study_name_of
    from nas.export import ExportResult, export_run
    from nas.hw import HardwareModel, deployed_latency_ms
    from nas.pipeline import (
        STRATEGIES,
        Proposal,
        Recipe,
        Strategy,
        TrialContext,
        TrialResult,
        load_artifact,
        load_splits,
        propose,
        run_trial,
        train_compressed,
    )
    from nas.runners import RUNNERS, get_runner, make_context
    from nas.study import SAMPLERS, SearchOutcome, TrialRecorder, keys, make_sampler

_NAMES = {
    **dict.fromkeys(["ConfigError", "Registry", "conf_dir", "search_hash"], "nas.config"),
    **dict.fromkeys(["preflight", "run_search", "study_name_of"], "nas.driver"),
    **dict.fromkeys(["ExportResult", "export_run"], "nas.export"),
    **dict.fromkeys(["HardwareModel", "deployed_latency_ms"], "nas.hw"),
    **dict.fromkeys(
        ["STRATEGIES", "Proposal", "Recipe", "Strategy", "TrialContext", "TrialResult",
         "load_artifact", "load_splits", "propose", "run_trial", "train_compressed"],
        "nas.pipeline",
    ),
    **dict.fromkeys(["RUNNERS", "get_runner", "make_context"], "nas.runners"),
    **dict.fromkeys(
        ["SAMPLERS", "SearchOutcome", "TrialRecorder", "keys", "make_sampler"], "nas.study"
    ),
}  # fmt: skip

__all__ = [
    "ConfigError",
    "ExportResult",
    "HardwareModel",
    "Proposal",
    "RUNNERS",
    "Recipe",
    "Registry",
    "SAMPLERS",
    "STRATEGIES",
    "SearchOutcome",
    "Strategy",
    "TrialContext",
    "TrialRecorder",
    "TrialResult",
    "compose",
    "conf_dir",
    "deployed_latency_ms",
    "export_run",
    "get_runner",
    "keys",
    "load_artifact",
    "load_splits",
    "make_context",
    "make_sampler",
    "preflight",
    "propose",
    "run_search",
    "run_trial",
    "search_hash",
    "study_name_of",
    "train_compressed",
]

__getattr__ = lazy_getattr(__name__, _NAMES)


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose the search config from Hydra overrides and validate all of it.

    The schema, every group's ranges, and every named option against its registry
    (a Ray cluster's address is probed too). Imports no torch.

    Raises:
        ConfigError: one line naming the bad value and what is allowed.
    """
    from nas.config import compose as compose_config
    from nas.driver import preflight

    cfg = compose_config(list(overrides or []))
    preflight(cfg)
    return cfg
