"""The study's name: a hash of everything that changes what a trial computes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nas.config._schema import DEFAULT_ENERGY_TABLE

__all__ = ["search_hash"]


def search_hash(cfg: DictConfig) -> str:
    """A short hash of everything that changes what a trial computes.

    Budgets (n_trials, timeout), storage and tracking are left out on purpose, so
    that the same search can be continued with a larger budget.
    """
    keys = ("dataset", "search_space", "sampler", "train", "compress", "hw")
    relevant = {
        k: None if cfg[k] is None else OmegaConf.to_container(cfg[k], resolve=True) for k in keys
    }
    relevant["seed"] = cfg.search.seed
    _drop_neutral(relevant)
    strategy = cfg.get("strategy")
    if strategy is not None and strategy.name != "scratch":
        # Left out for scratch, so that studies made before strategies existed resume.
        relevant["strategy"] = OmegaConf.to_container(strategy, resolve=True)
    if cfg.get("devices"):
        # Only when set, so that single-device studies keep their names and resume.
        devices: dict[str, Any] = OmegaConf.to_container(cfg.devices, resolve=True)  # type: ignore[assignment]
        for profile in devices.values():
            _drop_neutral({"hw": profile})
        relevant["devices"] = devices
        relevant["device_constraint"] = cfg.search.get("device_constraint", "round_robin")
    cost = cfg.search.get("cost", "size_bytes")
    if cost != "size_bytes":
        # Only when set, like devices: the default axis keeps the names studies had.
        relevant["cost"] = cost
    blob = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


_ANY = object()
"""A neutral value that matches every value: the key never counts."""

# Keys added after studies existed, dropped from the hash at values that compute what
# the studies before them computed (so those resume): where a trial runs never counts,
# nor a hypervolume's reference (it scores a front, it changes no trial).
_NEUTRAL: dict[str, dict[str, Any]] = {
    "train": {"device": _ANY, "precision": "auto"},
    "dataset": {"num_workers": _ANY, "augment": False, "hv_ref_energy_uj": _ANY},
    "hw": {
        "batch_size": 1,
        "device": "cpu",
        "energy_table": DEFAULT_ENERGY_TABLE,
        "energy_budget_uj": None,
    },
}


def _drop_neutral(relevant: dict[str, Any]) -> None:
    for group, keys in _NEUTRAL.items():
        node = relevant.get(group)
        if not isinstance(node, dict):
            continue
        for key, neutral in keys.items():
            if key in node and (neutral is _ANY or node[key] == neutral):
                del node[key]
