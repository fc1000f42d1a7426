"""A candidate: sampled as data, and everything known of it before training.

:func:`propose` draws an architecture and its compression from the Optuna trial (or
any :class:`~search_spaces.Suggest`), then computes what the budgets constrain (size,
latency, peak memory, modelled energy per inference) on the untrained model, so an
infeasible candidate is refused in milliseconds. What happens to a feasible one is the
search strategy's business (``nas.pipeline.Strategy``).
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

import compress
from nas.config import CompressSearchConfig, HwConfig
from nas.hw import count_macs
from nas.pipeline._context import Proposal, TrialContext, TrialResult
from search_spaces import Arch, SearchSpace, Suggest, artifact_meta

if TYPE_CHECKING:
    from nas.hw import HardwareModel

__all__ = [
    "AIMED_DEVICE",
    "ANY_DEVICE",
    "Proposal",
    "TrialResult",
    "any_device_constraint",
    "build_candidate",
    "candidate_meta",
    "compression_configs",
    "hw_constraints",
    "infeasible_result",
    "propose",
    "sample_compression",
    "space_from_cfg",
    "structural_copy",
]


def sample_compression(
    suggest: Suggest, cfg: CompressSearchConfig, bits: list[int]
) -> dict[str, Any]:
    """Draw the compression part of a candidate as plain params (see :func:`compression_configs`).

    Parameters a choice makes irrelevant are not drawn (a structured trial draws no
    sparsity), so the samplers see the real, conditional space.
    """

    def choose(name: str, options: list[Any]) -> Any:
        return suggest.suggest_categorical(name, options) if len(options) > 1 else options[0]

    params: dict[str, Any] = {}
    kind = choose("prune_kind", list(cfg.prune_kinds))
    params["prune_kind"] = kind
    if kind == "structured":
        ratio = 0.0
        if cfg.channel_ratio_max > 0:
            ratio = suggest.suggest_float(
                "channel_ratio", cfg.channel_ratio_min, cfg.channel_ratio_max
            )
        params["channel_ratio"] = round(ratio, 4)
    else:
        sparsity = 0.0
        if cfg.sparsity_max > 0:
            sparsity = suggest.suggest_float("sparsity", cfg.sparsity_min, cfg.sparsity_max)
        params["sparsity"] = round(sparsity, 4)
        params["prune_scope"] = choose("prune_scope", list(cfg.prune_scopes))
    params["rank_ratio"] = float(choose("rank_ratio", sorted(float(r) for r in cfg.rank_ratios)))
    params["bits"] = int(choose("bits", sorted(bits)))
    distill = bool(choose("distill", sorted(bool(d) for d in cfg.distill)))
    params["distill"] = distill
    if distill:
        params["distill_temperature"] = round(
            suggest.suggest_float(
                "distill_temperature", cfg.distill_temperature_min, cfg.distill_temperature_max
            ),
            3,
        )
        params["distill_alpha"] = round(
            suggest.suggest_float("distill_alpha", cfg.distill_alpha_min, cfg.distill_alpha_max),
            3,
        )
    return params


def compression_configs(params: dict[str, Any], input_shape: tuple[int, ...]) -> list[Any]:
    """The ``compress`` configs a candidate's params describe, in the order they apply.

    Structural techniques come first (they change shapes), then masks, then
    quantization, which ``compress.apply`` and the size estimate require.
    """
    cfgs: list[Any] = []
    if params.get("prune_kind") == "structured" and params.get("channel_ratio", 0.0) > 0:
        cfgs.append(
            compress.ChannelPruneConfig(ratio=params["channel_ratio"], input_shape=input_shape)
        )
    if params.get("rank_ratio", 1.0) < 1.0:
        cfgs.append(compress.LowRankConfig(rank_ratio=params["rank_ratio"]))
    if params.get("sparsity", 0.0) > 0:
        cfgs.append(
            compress.PruneConfig(
                sparsity=params["sparsity"], scope=params.get("prune_scope", "global")
            )
        )
    if params.get("bits", 32) != 32:
        cfgs.append(compress.QuantConfig(bits=params["bits"]))
    return cfgs


def structural_copy(model: nn.Module, cfgs: list[Any]) -> nn.Module:
    """A copy of ``model`` with only the shape-changing configs applied.

    Its layer shapes are those of the final model (the channel counts removed and
    the ranks kept follow from the ratios alone, not the weights), so latency and
    peak memory are known before training.
    """
    structural = [
        c for c in cfgs if isinstance(c, compress.ChannelPruneConfig | compress.LowRankConfig)
    ]
    if not structural:
        return model
    return compress.apply(copy.deepcopy(model), structural)


def hw_constraints(
    hw: HwConfig,
    *,
    size_bytes: float,
    latency_ms: float,
    peak_memory_bytes: float,
    energy_uj: float | None = None,
) -> dict[str, float]:
    """Optuna-style constraint values (feasible when <= 0), relative to each budget.

    Relative values keep the constraints on one scale for the samplers.
    """
    out: dict[str, float] = {}
    for key, value, budget in (
        ("size_bytes", size_bytes, hw.size_budget_bytes),
        ("latency_ms", latency_ms, hw.latency_budget_ms),
        ("peak_memory_bytes", peak_memory_bytes, hw.peak_memory_budget_bytes),
        ("energy_uj", energy_uj, getattr(hw, "energy_budget_uj", None)),
    ):
        if budget is not None and value is not None:
            out[key] = float(value) / float(budget) - 1.0
    return out


def space_from_cfg(node: Any) -> tuple[SearchSpace, dict[str, Any]]:
    """The search space a ``search_space`` config node describes, and its plain ranges."""
    from omegaconf import OmegaConf

    from search_spaces import get_search_space, search_space_config

    ranges: dict[str, Any] = dict(OmegaConf.to_container(node, resolve=True))  # type: ignore[arg-type]
    name = str(ranges.pop("name"))
    return get_search_space(name, search_space_config(name)(**ranges)), ranges


def build_candidate(ctx: TrialContext, arch: Arch, number: int) -> nn.Module:
    """The untrained model of trial ``number``; seeded, so any worker builds the same one."""
    torch.manual_seed(ctx.seed + number)
    return ctx.space.build(arch, ctx.splits.spec)


def candidate_meta(ctx: TrialContext, arch: Arch, compression: dict[str, Any]) -> dict[str, Any]:
    """The artifact header of a candidate (``search_spaces.artifact_meta``)."""
    return artifact_meta(ctx.space, ctx.space_cfg, arch, ctx.splits.spec, compression)


def propose(suggest: Suggest, ctx: TrialContext, *, number: int) -> Proposal:
    """Sample a candidate and everything a budget constrains, before any training.

    Constraints go to ``suggest.set_constraint`` when it has one (an Optuna trial),
    so the samplers learn where the feasible region is.
    """
    start = time.monotonic()
    arch = ctx.space.sample(suggest)
    comp = sample_compression(suggest, ctx.compress_cfg, ctx.bits)
    cfgs = compression_configs(comp, ctx.input_shape)
    model = build_candidate(ctx, arch, number)
    est_size = compress.estimate_size_bytes(model, cfgs, meta=candidate_meta(ctx, arch, comp))
    shaped = structural_copy(model, cfgs)
    metrics: dict[str, float] = {
        "size_bytes_estimate": float(est_size),
        "params": float(compress.stats(shaped)["params"]),
        "macs": float(count_macs(shaped, ctx.input_shape)),
    }
    constraints: dict[str, float] = {}
    per_device: dict[str, dict[str, float]] = {}
    if ctx.devices:
        per_device = _device_figures(ctx, shaped, comp, est_size, metrics)
        if ctx.device_constraint == "any":
            constraints = {ANY_DEVICE: any_device_constraint(per_device)}
        else:  # round_robin: each device gets its share of the samplers' attention
            aimed = ctx.devices[number % len(ctx.devices)].name
            constraints = {AIMED_DEVICE: max(per_device[aimed].values())}
        set_constraint = getattr(suggest, "set_constraint", None)
        if set_constraint is not None:
            for key, value in constraints.items():
                set_constraint(key, value)
    elif ctx.hw is not None and ctx.hw_cfg is not None:
        figures, constraints = _figures(ctx.hw, ctx.hw_cfg, shaped, comp, est_size, ctx)
        metrics.update(figures)
        set_constraint = getattr(suggest, "set_constraint", None)
        if set_constraint is not None:
            for key, value in constraints.items():
                set_constraint(key, value)
    metrics["feasibility_seconds"] = time.monotonic() - start
    return Proposal(number, arch, comp, metrics, constraints, device_constraints=per_device)


AIMED_DEVICE = "aimed_device"
"""The one constraint the samplers see in a multi-device search (the default
``search.device_constraint=round_robin``): trial n's is that of device n mod k."""
ANY_DEVICE = "any_device"
"""Its ``any`` form: <= 0 when the candidate fits some device."""


def any_device_constraint(per_device: dict[str, dict[str, float]]) -> float:
    """One constraint value that is <= 0 exactly when some device's constraints all are:
    the smallest, over devices, of each device's largest (relative) violation.

    Optuna calls a trial feasible when every constraint is <= 0, so giving it each
    device's constraints would mean "feasible on all devices"; a candidate is worth
    training when it serves any one of them.
    """
    worst = [max(c.values(), default=-1.0) for c in per_device.values()]
    return float(min(worst, default=-1.0))


def _device_figures(
    ctx: TrialContext,
    shaped: nn.Module,
    comp: dict[str, Any],
    size_bytes: float,
    metrics: dict[str, float],
) -> dict[str, dict[str, float]]:
    """Each device's latency, peak memory, energy and constraints (into ``metrics``,
    suffixed ``.<device>``). A device whose kernels lack the sampled bit-width gets a ``bits``
    constraint of 1 (infeasible): the search samples the union of the devices' sets."""
    out: dict[str, dict[str, float]] = {}
    for dev in ctx.devices:
        figures, cons = _figures(dev.model, dev.cfg, shaped, comp, size_bytes, ctx)
        metrics.update({f"{key}.{dev.name}": value for key, value in figures.items()})
        cons["bits"] = 0.0 if comp["bits"] in dev.cfg.bits else 1.0
        out[dev.name] = cons
    return out


def _figures(
    hw: HardwareModel,
    hw_cfg: HwConfig,
    shaped: nn.Module,
    comp: dict[str, Any],
    size_bytes: float,
    ctx: TrialContext,
) -> tuple[dict[str, float], dict[str, float]]:
    """One device's figures of a candidate (latency, peak memory, modelled energy per
    inference) and its constraints against the device's budgets."""
    bits, sparsity = comp["bits"], comp.get("sparsity", 0.0)
    latency = hw.latency_ms(shaped, ctx.input_shape, bits=bits, sparsity=sparsity)
    peak = hw.peak_memory_bytes(shaped, ctx.input_shape)
    energy = hw.energy(
        shaped, ctx.input_shape, bits=bits, sparsity=sparsity, peak_memory_bytes=peak
    ).total_uj
    constraints = hw_constraints(
        hw_cfg, size_bytes=size_bytes, latency_ms=latency, peak_memory_bytes=peak, energy_uj=energy
    )
    figures = {
        "latency_ms_estimate": latency,
        "peak_memory_bytes": float(peak),
        "energy_uj": energy,
    }
    return figures, constraints


def infeasible_result(p: Proposal) -> TrialResult:
    """An infeasible proposal's record: never trained, scored at zero accuracy."""
    metrics = dict(p.metrics, val_accuracy=0.0, size_bytes=p.metrics["size_bytes_estimate"])
    return TrialResult(
        False, p.arch, p.compression, metrics, p.constraints,
        device_constraints=p.device_constraints,
    )  # fmt: skip
