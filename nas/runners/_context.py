"""Builds a :class:`~nas.pipeline.TrialContext` from a config: once per search locally,
once per worker process under Ray (a context holds tensors and a child process, so it
is rebuilt where the trials run rather than shipped)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from nas.config import ConfigError, device_profiles, is_multi_device
from nas.hw import HardwareModel
from nas.pipeline import (
    STRATEGIES,
    ArtifactEvaluator,
    Device,
    Placement,
    TrialContext,
    load_splits,
    make_teacher,
    select_device,
    space_from_cfg,
)
from nas.study import make_early_stop

__all__ = ["make_context", "strategy_name", "usable_bits"]


def usable_bits(cfg: DictConfig) -> list[int]:
    """The bit-widths searched: the compress group's, narrowed to the device's kernels
    (with several devices, to the union of theirs: each device's own set decides
    whether a candidate is feasible for it)."""
    profiles = device_profiles(cfg)
    if not profiles:
        return sorted(cfg.compress.bits)
    kernels = set().union(*(set(h.bits) for h in profiles.values()))
    return sorted(set(cfg.compress.bits) & kernels)


def make_context(
    cfg: DictConfig,
    *,
    out_dir: Path,
    study_name: str,
    plugins: Sequence[str] = (),
    evaluator: bool = True,
    place: bool | None = None,
) -> TrialContext:
    """Everything trials of ``cfg`` need.

    Args:
        out_dir: absolute output directory (artifacts go under ``outputs/<study_name>``).
        evaluator: start the fresh-process artifact evaluator now; the driver of a Ray
            search, which trains nothing itself, passes False.
        place: resolve ``train.device`` and ``train.precision`` here; None: when
            ``evaluator`` is (a Ray task that only trains, the supernet's, passes True).
    """
    seed = int(cfg.search.seed)
    torch.set_num_threads(int(cfg.train.threads))
    space, space_cfg = space_from_cfg(cfg.search_space)
    hw, devices = _hardware(cfg)
    # Where trials train: resolved where they run. A Ray driver trains nothing, and its
    # machine may have no GPU while the workers do; each worker resolves its own.
    placement = _placement(cfg) if (evaluator if place is None else place) else None
    device, precision = (placement.device, placement.precision) if placement else ("cpu", "fp32")
    splits = load_splits(cfg.dataset, seed=seed)
    dataset: dict[str, Any] = OmegaConf.to_container(cfg.dataset, resolve=True)  # type: ignore[assignment]
    return TrialContext(
        space=space,
        space_cfg=space_cfg,
        splits=splits,
        compress_cfg=cfg.compress,
        train_cfg=cfg.train,
        bits=usable_bits(cfg),
        hw=hw,
        hw_cfg=cfg.hw,
        evaluator=ArtifactEvaluator(
            dataset=dataset, seed=seed, threads=1, plugins=plugins, device=device
        )
        if evaluator
        else None,
        artifact_dir=out_dir / "outputs" / study_name,
        seed=seed,
        trial_timeout_s=cfg.search.trial_timeout_s,
        teacher=make_teacher(
            cfg,
            space=space,
            space_cfg=space_cfg,
            splits=splits,
            cache_dir=out_dir / "outputs" / "teachers",
            device=device,
            precision=precision,
        ),
        early_stop=make_early_stop(cfg, out_dir=out_dir, study_name=study_name),
        strategy=STRATEGIES.get(strategy_name(cfg))(cfg.get("strategy")),
        devices=devices,
        device_constraint=str(cfg.search.get("device_constraint", "round_robin")),
        placement=placement,
        front_ref=(float(cfg.dataset.hv_ref_accuracy), float(cfg.dataset.hv_ref_size_bytes)),
        cost=str(cfg.search.get("cost", "size_bytes")),
    )


def _hardware(cfg: DictConfig) -> tuple[HardwareModel | None, list[Device]]:
    """The search's one device (``+hw=NAME``) or its several (``+hw=[a,b]``); a profile
    whose predictor, GPU or energy table cannot be had is refused in one line."""
    try:
        hw = HardwareModel(cfg.hw) if cfg.hw is not None else None
        devices = [
            Device(name, h, HardwareModel(h))
            for name, h in device_profiles(cfg).items()
            if is_multi_device(cfg)
        ]
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return hw, devices


def _placement(cfg: DictConfig) -> Placement:
    try:
        return select_device(
            str(cfg.train.get("device", "auto")), str(cfg.train.get("precision", "auto"))
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None


def strategy_name(cfg: DictConfig) -> str:
    """The ``strategy=`` option (``scratch`` for a config made before strategies)."""
    node = cfg.get("strategy")
    return "scratch" if node is None else str(node.name)
