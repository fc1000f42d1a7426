"""Range checks the schemas cannot express: one check per group, one line per problem.

The schema (types, unknown keys) is Hydra's and OmegaConf's job; what is left is
ranges and combinations. Each group has its own check in :data:`GROUP_CHECKS`, so a
new group adds one function. Names of registered things (samplers, runners, ...) are
checked against their registries by ``nas.driver.preflight``, which knows them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from compress import BITS
from nas.config._schema import (
    COSTS,
    DEVICE_CONSTRAINTS,
    MEASURE_DEVICE_SPEC,
    PRECISIONS,
    PRUNE_KINDS,
    PRUNE_SCOPES,
    SCHEDULES,
    ConfigError,
    check_device_spec,
    hw_profile_path,
)
from search_spaces import BUILTIN_MODULES, NESTED_SPACES, search_space_config

__all__ = ["GROUP_CHECKS", "validate"]


def validate(cfg: DictConfig) -> None:
    """Run every group's check on ``cfg``; raise :class:`ConfigError` at the first problem."""
    for group, check in GROUP_CHECKS.items():
        if cfg.get(group) is not None:
            check(cfg)
    _check_bits_overlap(cfg)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _at_least(section: str, node: Any, names: tuple[str, ...], low: float) -> None:
    for name in names:
        v = node[name]
        _require(v is None or v >= low, f"{section}.{name}={v} must be >= {low:g}")


def _check_search(cfg: DictConfig) -> None:
    s = cfg.search
    _require(s.n_trials >= 1, f"search.n_trials={s.n_trials} must be an integer >= 1")
    for name in ("timeout_s", "trial_timeout_s"):
        v = s[name]
        _require(v is None or v > 0, f"search.{name}={v} must be > 0 or null")
    grace = s.get("grace_s", 60.0)
    _require(grace is not None and grace >= 0, f"search.grace_s={grace} must be >= 0 (seconds)")
    dc = s.get("device_constraint", "round_robin")
    _require(
        dc in DEVICE_CONSTRAINTS,
        f"search.device_constraint={dc!r}; allowed {', '.join(DEVICE_CONSTRAINTS)}",
    )
    m = s.get("min_accuracy")
    _require(m is None or 0.0 <= m < 1.0, f"search.min_accuracy={m} is outside [0, 1) or null")
    _check_cost(cfg)


def _check_cost(cfg: DictConfig) -> None:
    cost = cfg.search.get("cost", "size_bytes")
    _require(cost in COSTS, f"search.cost={cost!r}; allowed {', '.join(COSTS)}")
    if cost == "size_bytes":
        return
    # The energy model is a device's (its table, activation bytes, sparse kernels), and
    # one front needs one figure per candidate.
    _require(
        not cfg.get("devices"),
        f"search.cost={cost} takes one device; +hw=[{','.join(cfg.get('devices') or [])}] "
        "has several (search each with its own +hw=NAME)",
    )
    _require(
        cfg.get("hw") is not None,
        f"search.cost={cost} needs a device to model energy on; add +hw=NAME (e.g. +hw=mobile)",
    )
    strategy = cfg.get("strategy")
    _require(
        strategy is None or strategy.name == "scratch",
        f"search.cost={cost}: strategy={strategy.name if strategy else ''} chooses its "
        "finalists by size; use strategy=scratch",
    )


def _check_train(cfg: DictConfig) -> None:
    t = cfg.train
    _at_least("train", t, ("epochs", "batch_size", "threads"), 1)
    _require(t.lr is None or t.lr > 0, f"train.lr={t.lr} must be > 0 or null")
    bad_device = check_device_spec(t.get("device", "auto"))
    _require(bad_device is None, str(bad_device))
    precision = t.get("precision", "auto")
    _require(
        precision in PRECISIONS,
        f"train.precision={precision!r} is not one of {', '.join(PRECISIONS)}",
    )


def _check_range(section: str, node: Any, low_name: str, high_name: str) -> None:
    for name in (low_name, high_name):
        _require(0.0 <= node[name] < 1.0, f"{section}.{name}={node[name]} is outside [0, 1)")
    _require(
        node[low_name] <= node[high_name],
        f"{section}.{low_name}={node[low_name]} exceeds {section}.{high_name}={node[high_name]}",
    )


def _check_choices(key: str, values: Any, allowed: tuple[Any, ...], empty_hint: str) -> None:
    _require(len(values) > 0, f"{key} is empty; {empty_hint}")
    for v in values:
        _require(v in allowed, f"{key} has {v!r}; allowed {allowed}")


def _check_compress(cfg: DictConfig) -> None:
    c = cfg.compress
    for b in c.bits:
        _require(b in BITS, f"compress.bits contains {b}, which is not one of {BITS}")
    _require(len(c.bits) > 0, f"compress.bits is empty; choose from {BITS}")
    _check_range("compress", c, "sparsity_min", "sparsity_max")
    _check_choices("compress.prune_scopes", c.prune_scopes, PRUNE_SCOPES, "use [global]")
    _require(c.finetune_epochs >= 0, f"compress.finetune_epochs={c.finetune_epochs} must be >= 0")
    _check_choices("compress.prune_kinds", c.prune_kinds, PRUNE_KINDS, f"choose from {PRUNE_KINDS}")
    _check_range("compress", c, "channel_ratio_min", "channel_ratio_max")
    _require(len(c.rank_ratios) > 0, "compress.rank_ratios is empty; use [1.0] for no low-rank")
    for r in c.rank_ratios:
        _require(0.0 < r <= 1.0, f"compress.rank_ratios has {r}, outside (0, 1]")
    _check_distill(c)


def _check_distill(c: Any) -> None:
    _require(len(c.distill) > 0, "compress.distill is empty; use [false], [true] or both")
    _require(
        0 < c.distill_temperature_min <= c.distill_temperature_max,
        f"compress.distill_temperature_min/max={c.distill_temperature_min}/"
        f"{c.distill_temperature_max} must satisfy 0 < min <= max",
    )
    _require(
        0 <= c.distill_alpha_min <= c.distill_alpha_max <= 1,
        f"compress.distill_alpha_min/max={c.distill_alpha_min}/{c.distill_alpha_max} "
        "must satisfy 0 <= min <= max <= 1",
    )
    if str(c.teacher).startswith("timm:") and True in c.distill:
        ckpt = c.teacher_checkpoint
        _require(
            ckpt is not None and Path(ckpt).expanduser().is_file(),
            f"compress.teacher_checkpoint={ckpt!r} must be an existing local file for "
            f"compress.teacher={c.teacher!r} (teachers are never downloaded)",
        )
    _require(
        c.teacher_epochs is None or c.teacher_epochs >= 1,
        f"compress.teacher_epochs={c.teacher_epochs} must be >= 1 or null",
    )


def _check_runner(cfg: DictConfig) -> None:
    r = cfg.runner
    _at_least("runner", r, ("max_concurrent",), 1)
    _require(r.cpus_per_trial > 0, f"runner.cpus_per_trial={r.cpus_per_trial} must be > 0")
    _at_least("runner", r, ("gpus_per_trial", "max_failures"), 0)
    _require(
        r.num_cpus is None or r.num_cpus >= r.cpus_per_trial,
        f"runner.num_cpus={r.num_cpus} must be null or >= runner.cpus_per_trial={r.cpus_per_trial}",
    )
    _at_least("runner", r, ("object_store_mb",), 80)
    _at_least("runner", r, ("num_gpus",), 0)
    gpus, per = r.get("num_gpus"), float(r.gpus_per_trial)
    if gpus is not None:
        _require(per <= gpus, f"runner.gpus_per_trial={per:g} exceeds runner.num_gpus={gpus:g}")


def _check_sampler(cfg: DictConfig) -> None:
    _at_least("sampler", cfg.sampler, ("feasibility_candidates",), 0)


def _check_early_stop(cfg: DictConfig) -> None:
    e = cfg.early_stop
    _at_least("early_stop", e, ("min_epochs",), 1)
    _at_least("early_stop", e, ("reduction_factor",), 2)
    _at_least("early_stop", e, ("grace_trials",), 0)


def _check_strategy(cfg: DictConfig) -> None:
    s = cfg.strategy
    if s.name != "supernet":
        return
    _at_least("strategy", s, ("epochs", "bn_calib_images", "finalists", "finetune_patience"), 1)
    _at_least("strategy", s, ("warmup_epochs", "random_subnets", "finetune_epochs"), 0)
    _require(
        s.warmup_epochs <= s.epochs,
        f"strategy.warmup_epochs={s.warmup_epochs} must be <= strategy.epochs={s.epochs}",
    )
    _require(
        0.0 <= s.shift < 0.5,
        f"strategy.shift={s.shift} must be in [0, 0.5): a fraction of the image's side",
    )
    _require(
        0.0 <= s.finalise_share < 1.0,
        f"strategy.finalise_share={s.finalise_share} must be in [0, 1)",
    )
    _require(
        s.max_finalists is None or s.max_finalists >= s.finalists,
        f"strategy.max_finalists={s.max_finalists} must be >= strategy.finalists={s.finalists}",
    )
    _require(
        s.schedule in SCHEDULES,
        f"strategy.schedule={s.schedule!r} is not one of {', '.join(SCHEDULES)}",
    )
    for name in ("lr", "distill_temperature", "finetune_lr"):
        _require(s[name] is None or s[name] > 0, f"strategy.{name}={s[name]} must be > 0")
    _require(
        s.sparsity_max is None or 0 <= s.sparsity_max < 1,
        f"strategy.sparsity_max={s.sparsity_max} must be in [0, 1)",
    )
    space = cfg.search_space.name
    _require(
        space not in BUILTIN_MODULES or space in NESTED_SPACES,
        f"strategy=supernet needs a space whose architectures nest in one supernet; "
        f"search_space={space} has none (use {' or '.join(NESTED_SPACES)}, or strategy=scratch)",
    )
    # What the supernet strategy cannot honour is refused, never silently ignored.
    _require(
        cfg.early_stop.name == "none",
        f"early_stop={cfg.early_stop.name} stops trainings between epochs, and "
        "strategy=supernet scores candidates without training them; use early_stop=none",
    )
    _require(
        cfg.sampler.name != "gp",
        "sampler=gp refits a Gaussian process on every trial (cubic in trials) and cannot "
        "keep up with strategy=supernet's thousands of candidates; use tpe, nsga2 or random",
    )
    c = cfg.compress
    unsupported = [
        f"compress.{name}={list(c[name])} ({why})"
        for name, bad, why in (
            ("prune_kinds", "structured" in c.prune_kinds,
             "the supernet's width is the structured choice"),
            ("rank_ratios", any(float(r) != 1.0 for r in c.rank_ratios),
             "low-rank factors are not inherited"),
            ("distill", any(bool(d) for d in c.distill),
             "every finalist is distilled from the largest sub-network"),
        )
        if bad
    ]  # fmt: skip
    _require(
        not unsupported,
        f"strategy=supernet cannot honour {'; '.join(unsupported)}: "
        "use compress=joint, or strategy=scratch",
    )


def _check_search_space(cfg: DictConfig) -> None:
    space = dict(OmegaConf.to_container(cfg.search_space, resolve=True))  # type: ignore[arg-type]
    space_name = space.pop("name")
    try:
        search_space_config(space_name)(**space)
    except ValueError as e:
        raise ConfigError(f"search_space={space_name}: {e}") from None


def _check_dataset(cfg: DictConfig) -> None:
    d = cfg.dataset
    _at_least("dataset", d, ("n_test", "n_val"), 1)
    _at_least("dataset", d, ("num_workers",), 0)
    _require(
        0.0 <= d.hv_ref_accuracy < 1.0,
        f"dataset.hv_ref_accuracy={d.hv_ref_accuracy} is outside [0, 1)",
    )
    if d.root is not None and not Path(d.root).expanduser().exists():
        raise ConfigError(f"dataset.root={d.root!r} does not exist; give an existing directory")


def _check_hw(cfg: DictConfig) -> None:
    _check_profile(cfg.hw, "hw")


def _check_devices(cfg: DictConfig) -> None:
    """``+hw=[a,b,...]``: every device's profile, and never beside a single ``+hw``."""
    devices = cfg.devices
    if not devices:
        return
    if cfg.get("hw") is not None:
        raise ConfigError(
            f"hw is selected twice (+hw={cfg.hw.name} and +hw=[{','.join(devices)}]); give "
            "one +hw: a name for one device, a list for several"
        )
    for name, h in devices.items():
        _check_profile(h, f"devices.{name}")


def _check_profile(h: DictConfig, at: str) -> None:
    for b in h.bits:
        _require(b in BITS, f"{at}.bits contains {b}, which is not one of {BITS}")
    budgets = ("latency_budget_ms", "size_budget_bytes", "peak_memory_budget_bytes")
    for name in (*budgets, "energy_budget_uj"):
        v = h.get(name)
        _require(v is None or v > 0, f"{at}.{name}={v} must be > 0 or null")
    _require(
        h.activation_bytes in (1, 2, 4),
        f"{at}.activation_bytes={h.activation_bytes}; allowed 1, 2, 4",
    )
    batch_size, device = h.get("batch_size", 1), str(h.get("device", "cpu"))
    _require(batch_size >= 1, f"{at}.batch_size={batch_size} must be an integer >= 1")
    _require(
        MEASURE_DEVICE_SPEC.match(device) is not None,
        f"{at}.device={device!r} is not one of cpu, cuda, cuda:N",
    )
    _require(
        h.latency == "measure" or (device == "cpu" and batch_size == 1),
        f"{at}.device={device} and {at}.batch_size={batch_size} set how a latency is measured, "
        f"but {at}.latency={h.latency!r}; add {at}.latency=measure",
    )
    if h.profile is not None:
        _require(
            h.latency == "predict",
            f"{at}.profile is set, so {at}.latency must be 'predict', not {h.latency!r}",
        )
        path = hw_profile_path(h.profile)
        _require(
            path.is_file(),
            f"{at}.profile={h.profile!r}: no such file ({path}); write one with "
            "python -m nas.calibrate_hw or python -m nas.profile_hw",
        )
    table = h.get("energy_table")
    _require(
        table is not None and hw_profile_path(str(table)).is_file(),
        f"{at}.energy_table={table!r}: no such file; give a JSON energy table "
        "(nas/hw/data/energy_horowitz45.json shows the fields)",
    )


def _check_bits_overlap(cfg: DictConfig) -> None:
    c = cfg.compress
    profiles = {"hw": cfg.hw} if cfg.get("hw") is not None else {}
    profiles.update({f"devices.{n}": h for n, h in (cfg.get("devices") or {}).items()})
    for at, h in profiles.items():
        _require(
            len(set(c.bits) & set(h.bits)) > 0,
            f"compress.bits={list(c.bits)} and {at}.bits={list(h.bits)} share no bit-width",
        )


GROUP_CHECKS: dict[str, Callable[[DictConfig], None]] = {
    "search": _check_search,
    "train": _check_train,
    "compress": _check_compress,
    "runner": _check_runner,
    "sampler": _check_sampler,
    "early_stop": _check_early_stop,
    "search_space": _check_search_space,
    "dataset": _check_dataset,
    "hw": _check_hw,
    "devices": _check_devices,
    "strategy": _check_strategy,
}
"""The check of each config section, run in this order."""
