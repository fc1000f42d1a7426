"""Typed configuration: one dataclass schema per Hydra group, validated at start-up.

Everything here imports only Hydra and OmegaConf, never torch, so that a bad
command line fails in about a second with one clear line (see :func:`compose`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import socket
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from compress._bits import BITS
from search_spaces import list_search_spaces, search_space_config

__all__ = [
    "CompressSearchConfig",
    "Config",
    "ConfigError",
    "DatasetConfig",
    "EarlyStopConfig",
    "HwConfig",
    "MlflowConfig",
    "RunnerConfig",
    "SamplerConfig",
    "SearchConfig",
    "TrainConfig",
    "compose",
    "hw_profile_path",
    "search_hash",
]

LATENCY_METHODS = ("measure", "predict", "none")
SAMPLERS = ("tpe", "nsga2", "random", "gp")
EARLY_STOPPERS = ("none", "moasha")
PRUNE_SCOPES = ("global", "layer")
PRUNE_KINDS = ("unstructured", "structured")
TEACHERS = ("largest",)  # or "timm:<model name>" with compress.teacher_checkpoint


class ConfigError(ValueError):
    """A user's configuration is wrong; the message is one line for the user."""


@dataclass
class DatasetConfig:
    """Where the images come from and how they are split (stratified, seeded)."""

    name: str = MISSING
    root: str | None = None
    n_test: int = 1000
    n_val: int = 500
    # None: every image not in test or val trains.
    n_train: int | None = None
    # None keeps the native resolution; set it to resize (imagefolder needs it).
    image_size: int | None = None
    in_chans: int | None = None
    # Hypervolume reference point (worst accuracy, largest size) for this data set.
    hv_ref_accuracy: float = 0.5
    hv_ref_size_bytes: int = 4_000_000


@dataclass
class SamplerConfig:
    name: str = MISSING
    n_startup_trials: int = 10
    population_size: int = 16
    # Proposals screened by a model of the hw constraints fitted on past trials
    # (nas._study.ConstraintModelSampler); 0 leaves the sampler's proposals as they are.
    feasibility_candidates: int = 0


@dataclass
class EarlyStopConfig:
    """Multi-objective early stopping of training (``nas._early_stop``).

    moasha: asynchronous successive halving on the Pareto rank of (val accuracy, size)
    at rungs of ``min_epochs * reduction_factor**k`` epochs; none: every feasible
    candidate trains for all of ``train.epochs``.
    """

    name: str = MISSING
    # r_min: epochs trained before the first rung.
    min_epochs: int = 1
    # eta: each rung keeps the top 1/eta of the results recorded there.
    reduction_factor: int = 3
    # The first `grace_trials` results at each rung always continue.
    grace_trials: int = 0


@dataclass
class TrainConfig:
    """The one training loop's budget; compression fine-tuning reuses it."""

    epochs: int = 5
    batch_size: int = 128
    # Peak learning rate; null takes the search space's default_lr.
    lr: float | None = None
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    # torch intra-op threads for training and evaluation.
    threads: int = 2


@dataclass
class CompressSearchConfig:
    """Searched compression ranges, sampled jointly with the architecture."""

    name: str = MISSING
    bits: list[int] = field(default_factory=lambda: [2, 3, 4, 6, 8, 16, 32])
    sparsity_min: float = 0.0
    sparsity_max: float = 0.9
    prune_scopes: list[str] = field(default_factory=lambda: ["global", "layer"])
    # Epochs of masked, quantization-aware fine-tuning after pruning.
    finetune_epochs: int = 1
    finetune_lr: float = 0.002
    # Pruning kinds a trial chooses from: "unstructured" (weight masks, `sparsity_*`) and
    # "structured" (channels removed by torch-pruning, `channel_ratio_*`).
    prune_kinds: list[str] = field(default_factory=lambda: ["unstructured"])
    channel_ratio_min: float = 0.0
    channel_ratio_max: float = 0.5
    # Low-rank factorization: rank ratios to choose from; 1.0 leaves the layers whole.
    rank_ratios: list[float] = field(default_factory=lambda: [1.0])
    # Knowledge distillation: on/off choices, and the ranges of T and alpha.
    distill: list[bool] = field(default_factory=lambda: [False])
    distill_temperature_min: float = 2.0
    distill_temperature_max: float = 8.0
    distill_alpha_min: float = 0.3
    distill_alpha_max: float = 0.9
    # "largest": the space's largest model, trained once per search and cached on disk;
    # "timm:<name>": a timm model loaded from `teacher_checkpoint` (never downloaded).
    teacher: str = "largest"
    teacher_checkpoint: str | None = None
    # Epochs the "largest" teacher trains for; null takes 3x train.epochs. A teacher
    # trained as briefly as its students teaches little: on mnist5k a 5-epoch teacher
    # (test 0.973) left 5-epoch students where they were, a 15-epoch one (0.982) lifted
    # them (scripts/bench_distill.py, README "Distillation").
    teacher_epochs: int | None = None


@dataclass
class RunnerConfig:
    """Where trials run: ``local`` (this process) or ``ray`` (Ray Tune; conf/runner/ray.yaml)."""

    name: str = MISSING
    # Ray only. Empty/null: start a local Ray in this process; "auto": the cluster in
    # RAY_ADDRESS or the one started on this machine; "host:port": a head's GCS address.
    address: str | None = None
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    # Tune restarts a trial whose worker or node died this many times (0: never).
    max_failures: int = 1
    # A local Ray's CPUs (null: max_concurrent * cpus_per_trial) and object store.
    num_cpus: int | None = None
    object_store_mb: int = 200


@dataclass
class HwConfig:
    """A hardware profile: its budgets and how latency is obtained."""

    name: str = MISSING
    description: str = ""
    # measure: on this machine; predict: per-op model `predictor`; none: not constrained.
    latency: str = "predict"
    predictor: str | None = None
    latency_budget_ms: float | None = None
    size_budget_bytes: int | None = None
    peak_memory_budget_bytes: int | None = None
    # Bit-widths with kernels on the device; the search samples only these.
    bits: list[int] = field(default_factory=lambda: [2, 3, 4, 6, 8, 16, 32])
    # Bytes per activation element for peak memory (4: fp32, 1: int8 on MCUs).
    activation_bytes: int = 4
    threads: int = 1
    # A device profile JSON (python -m nas.calibrate_hw / nas.profile_hw) whose predictor
    # replaces `predictor`; "pkg://nas.hw/data/<file>" names one shipped with the package.
    profile: str | None = None
    # Whether unstructured sparsity makes the device faster. False for dense kernels (every
    # profile here): zeros cost as much as any weight, so only structured pruning, which
    # makes the model itself smaller, lowers latency.
    sparse_speedup: bool = False


@dataclass
class SearchConfig:
    n_trials: int = 27
    timeout_s: float | None = 250.0
    # None: derived from a hash of the search-relevant config.
    study_name: str | None = None
    # None: a journal file `<study_name>.journal` in the output directory; else an RDB URL.
    storage: str | None = None
    seed: int = 0
    trial_timeout_s: float | None = 180.0
    # None: the launch directory.
    output_dir: str | None = None
    progress: bool = True


@dataclass
class MlflowConfig:
    # None: sqlite:///<output_dir>/mlflow.db
    tracking_uri: str | None = None
    experiment: str = "downsize"


@dataclass
class Config:
    defaults: list[Any] = field(
        default_factory=lambda: [
            {"dataset": "mnist5k"},
            {"search_space": "mbconv"},
            {"sampler": "tpe"},
            {"train": "default"},
            {"compress": "joint"},
            {"runner": "local"},
            {"early_stop": "none"},
            "_self_",
        ]
    )
    dataset: DatasetConfig = MISSING
    search_space: Any = MISSING
    sampler: SamplerConfig = MISSING
    train: TrainConfig = MISSING
    compress: CompressSearchConfig = MISSING
    runner: RunnerConfig = MISSING
    early_stop: EarlyStopConfig = MISSING
    search: SearchConfig = field(default_factory=SearchConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    hw: HwConfig | None = None


_GROUPS: dict[str, type[Any]] = {
    "dataset": DatasetConfig,
    "sampler": SamplerConfig,
    "train": TrainConfig,
    "compress": CompressSearchConfig,
    "runner": RunnerConfig,
    "early_stop": EarlyStopConfig,
    "hw": HwConfig,
}


def _register_schemas() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, node in _GROUPS.items():
        cs.store(group=group, name=f"{group}_schema", node=node)
    # A search space's schema is its own config dataclass plus the `name` key.
    for name in list_search_spaces():
        space_cfg = search_space_config(name)
        schema = dataclasses.make_dataclass(
            f"{space_cfg.__name__}Schema", [("name", str, field(default=name))], bases=(space_cfg,)
        )
        cs.store(group="search_space", name=f"{name}_schema", node=schema)


def conf_dir() -> Path:
    """The packaged `conf/` directory (installed as `nas.conf`)."""
    return Path(str(resources.files("nas.conf")))


def compose(overrides: list[str]) -> DictConfig:
    """Compose and validate the config; raise ConfigError with one line on bad input."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    _register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=overrides)
    except HydraException as e:
        raise ConfigError(_hydra_message(e, overrides)) from None
    except OmegaConfBaseException as e:
        raise ConfigError(_omegaconf_message(e)) from None
    validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> None:
    """Range checks the schemas cannot express; one clear line per problem."""
    s = cfg.search
    _require(s.n_trials >= 1, f"search.n_trials={s.n_trials} must be an integer >= 1")
    if s.timeout_s is not None:
        _require(s.timeout_s > 0, f"search.timeout_s={s.timeout_s} must be > 0 or null")
    if s.trial_timeout_s is not None:
        _require(
            s.trial_timeout_s > 0, f"search.trial_timeout_s={s.trial_timeout_s} must be > 0 or null"
        )
    t = cfg.train
    _require(t.epochs >= 1, f"train.epochs={t.epochs} must be >= 1")
    _require(t.batch_size >= 1, f"train.batch_size={t.batch_size} must be >= 1")
    _require(t.lr is None or t.lr > 0, f"train.lr={t.lr} must be > 0 or null")
    _require(t.threads >= 1, f"train.threads={t.threads} must be >= 1")
    c = cfg.compress
    for b in c.bits:
        _require(b in BITS, f"compress.bits contains {b}, which is not one of {BITS}")
    _require(len(c.bits) > 0, f"compress.bits is empty; choose from {BITS}")
    for name in ("sparsity_min", "sparsity_max"):
        v = c[name]
        _require(0.0 <= v < 1.0, f"compress.{name}={v} is outside [0, 1)")
    _require(
        c.sparsity_min <= c.sparsity_max,
        f"compress.sparsity_min={c.sparsity_min} exceeds compress.sparsity_max={c.sparsity_max}",
    )
    for scope in c.prune_scopes:
        _require(
            scope in PRUNE_SCOPES, f"compress.prune_scopes has {scope!r}; allowed {PRUNE_SCOPES}"
        )
    _require(c.finetune_epochs >= 0, f"compress.finetune_epochs={c.finetune_epochs} must be >= 0")
    _require(len(c.prune_kinds) > 0, f"compress.prune_kinds is empty; choose from {PRUNE_KINDS}")
    for kind in c.prune_kinds:
        _require(kind in PRUNE_KINDS, f"compress.prune_kinds has {kind!r}; allowed {PRUNE_KINDS}")
    for name in ("channel_ratio_min", "channel_ratio_max"):
        _require(0.0 <= c[name] < 1.0, f"compress.{name}={c[name]} is outside [0, 1)")
    _require(
        c.channel_ratio_min <= c.channel_ratio_max,
        f"compress.channel_ratio_min={c.channel_ratio_min} exceeds "
        f"compress.channel_ratio_max={c.channel_ratio_max}",
    )
    _require(len(c.rank_ratios) > 0, "compress.rank_ratios is empty; use [1.0] for no low-rank")
    for r in c.rank_ratios:
        _require(0.0 < r <= 1.0, f"compress.rank_ratios has {r}, outside (0, 1]")
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
    _require(
        c.teacher in TEACHERS or c.teacher.startswith("timm:"),
        f"compress.teacher={c.teacher!r}; allowed 'largest' or 'timm:<model name>'",
    )
    if c.teacher.startswith("timm:") and True in c.distill:
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
    _validate_runner(cfg.runner)
    _require(cfg.sampler.name in SAMPLERS, f"sampler.name={cfg.sampler.name!r}; allowed {SAMPLERS}")
    _require(
        cfg.sampler.feasibility_candidates >= 0,
        f"sampler.feasibility_candidates={cfg.sampler.feasibility_candidates} must be >= 0",
    )
    _validate_early_stop(cfg.early_stop)
    space = dict(OmegaConf.to_container(cfg.search_space, resolve=True))  # type: ignore[arg-type]
    space_name = space.pop("name")
    try:
        search_space_config(space_name)(**space)
    except ValueError as e:
        raise ConfigError(f"search_space={space_name}: {e}") from None
    d = cfg.dataset
    for name in ("n_test", "n_val"):
        _require(d[name] >= 1, f"dataset.{name}={d[name]} must be >= 1")
    _require(
        0.0 <= d.hv_ref_accuracy < 1.0,
        f"dataset.hv_ref_accuracy={d.hv_ref_accuracy} is outside [0, 1)",
    )
    if d.root is not None and not Path(d.root).expanduser().exists():
        raise ConfigError(f"dataset.root={d.root!r} does not exist; give an existing directory")
    if cfg.hw is not None:
        h = cfg.hw
        _require(
            h.latency in LATENCY_METHODS, f"hw.latency={h.latency!r}; allowed {LATENCY_METHODS}"
        )
        for b in h.bits:
            _require(b in BITS, f"hw.bits contains {b}, which is not one of {BITS}")
        for name in ("latency_budget_ms", "size_budget_bytes", "peak_memory_budget_bytes"):
            v = h[name]
            _require(v is None or v > 0, f"hw.{name}={v} must be > 0 or null")
        _require(
            h.activation_bytes in (1, 2, 4),
            f"hw.activation_bytes={h.activation_bytes}; allowed 1, 2, 4",
        )
        if h.profile is not None:
            _require(
                h.latency == "predict",
                f"hw.profile is set, so hw.latency must be 'predict', not {h.latency!r}",
            )
            path = hw_profile_path(h.profile)
            _require(
                path.is_file(),
                f"hw.profile={h.profile!r}: no such file ({path}); write one with "
                "python -m nas.calibrate_hw or python -m nas.profile_hw",
            )
        usable = sorted(set(c.bits) & set(h.bits))
        _require(
            len(usable) > 0,
            f"compress.bits={list(c.bits)} and hw.bits={list(h.bits)} share no bit-width",
        )


def _validate_early_stop(e: DictConfig) -> None:
    _require(e.name in EARLY_STOPPERS, f"early_stop.name={e.name!r}; allowed {EARLY_STOPPERS}")
    _require(e.min_epochs >= 1, f"early_stop.min_epochs={e.min_epochs} must be >= 1")
    _require(
        e.reduction_factor >= 2, f"early_stop.reduction_factor={e.reduction_factor} must be >= 2"
    )
    _require(e.grace_trials >= 0, f"early_stop.grace_trials={e.grace_trials} must be >= 0")


RAY_ADDRESS_FORMS = "empty (start a local Ray), 'auto', or a head's 'host:port'"


def ray_address_kind(address: str | None) -> str:
    """``local``, ``auto`` or ``hostport`` for a valid ``runner.address``; else ConfigError."""
    value = (address or "").strip()
    if value in ("", "local"):
        return "local"
    if value == "auto":
        return "auto"
    if value.startswith("ray://"):
        raise ConfigError(
            f"runner.address={address!r}: Ray Client (ray://) is not supported (Tune would run "
            "the search loop on the head node, away from the study); run nas.search on a "
            "cluster node with runner.address=auto or the head's GCS 'host:port'"
        )
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"runner.address={address!r} is not an address; allowed {RAY_ADDRESS_FORMS}"
        )
    return "hostport"


RAY_PROBE_TIMEOUT_S = 3.0
"""How long the check waits for a Ray head's GCS port to accept a connection."""


def resolve_ray_address(address: str | None) -> str | None:
    """The GCS ``host:port`` that ``runner.address`` names; None to start a local Ray.

    ``auto`` reads RAY_ADDRESS, else the address the last ``ray start --head`` on this
    machine wrote to ``/tmp/ray/ray_current_cluster``. Imports nothing from Ray.
    """
    kind = ray_address_kind(address)
    if kind == "local":
        return None
    if kind == "hostport":
        return str(address).strip()
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env not in ("auto", "local"):
        found, origin = env, "RAY_ADDRESS"
    else:
        current = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
        try:
            found, origin = current.read_text().strip(), str(current)
        except OSError:
            found, origin = "", ""
    if not found:
        raise ConfigError(
            "runner.address=auto found no Ray cluster (RAY_ADDRESS is unset and no "
            "`ray start --head` ran on this machine); start one (scripts/ray_cluster.sh up), "
            f"or set runner.address to {RAY_ADDRESS_FORMS}"
        )
    try:
        ray_address_kind(found)
    except ConfigError:
        raise ConfigError(
            f"runner.address=auto: {origin} holds {found!r}, which is not a head's "
            f"'host:port'; allowed {RAY_ADDRESS_FORMS}"
        ) from None
    return found


def probe_ray_address(address: str, value: str | None) -> None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_PROBE_TIMEOUT_S):
            pass
    except OSError as e:
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        shown = repr(value) if value == address else f"{value!r} ({address})"
        raise ConfigError(
            f"runner.address={shown} is unreachable ({reason}); give a running cluster's "
            f"head 'host:port' (as `ray start --head` printed it), 'auto', or leave it "
            "empty to start a local Ray"
        ) from None


def _validate_runner(r: Any) -> None:
    _require(r.max_concurrent >= 1, f"runner.max_concurrent={r.max_concurrent} must be >= 1")
    _require(r.cpus_per_trial > 0, f"runner.cpus_per_trial={r.cpus_per_trial} must be > 0")
    _require(r.gpus_per_trial >= 0, f"runner.gpus_per_trial={r.gpus_per_trial} must be >= 0")
    _require(r.max_failures >= 0, f"runner.max_failures={r.max_failures} must be >= 0")
    _require(
        r.num_cpus is None or r.num_cpus >= r.cpus_per_trial,
        f"runner.num_cpus={r.num_cpus} must be null or >= runner.cpus_per_trial={r.cpus_per_trial}",
    )
    _require(r.object_store_mb >= 80, f"runner.object_store_mb={r.object_store_mb} must be >= 80")
    ray_address_kind(r.address)
    if r.name == "ray":
        # Reachability too, so that an unreachable cluster is refused in about a second.
        address = resolve_ray_address(r.address)
        if address is not None:
            probe_ray_address(address, r.address)


def hw_profile_path(value: str) -> Path:
    """The file ``hw.profile`` names: a path, or ``pkg://<package>/<file>`` for one shipped.

    Resolved without importing the package (``nas.hw`` imports torch).
    """
    prefix = "pkg://"
    if not value.startswith(prefix):
        return Path(value).expanduser()
    package, _, rest = value[len(prefix) :].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return Path(value)
    return Path(next(iter(spec.submodule_search_locations))) / rest


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
    blob = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _hydra_message(e: Exception, overrides: list[str]) -> str:
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    # Hydra says "Could not find 'dataset/foo'" and lists the options on later lines.
    if first.startswith("In 'config': Could not find") or "Could not find '" in first:
        missing = first.split("'")[-2] if "'" in first else ""
        group, _, option = missing.partition("/")
        options = _group_options(group)
        # The last override of the group is the one Hydra used (and could not find).
        matching = [o for o in overrides if o.lstrip("+~").split("=")[0] == group]
        bad = matching[-1] if matching else f"{group}={option}"
        if options:
            return f"{bad} is not a known option; choose one of: {', '.join(options)}"
    if "Could not override '" in text or ("Key '" in text and "not in struct" in text):
        marker = "Could not override '" if "Could not override '" in text else "Key '"
        key = text.split(marker)[1].split("'")[0]
        path = next((o.lstrip("+~").split("=")[0] for o in overrides if key in o), key)
        known = _known_keys(path.rpartition(".")[0])
        allowed = f"; {path.rpartition('.')[0] or 'the config'} has: {', '.join(known)}"
        return f"unknown config key {path!r}{allowed if known else ''}"
    return " ".join(line.strip() for line in text.splitlines() if line.strip())[:400]


def _known_keys(section: str) -> list[str]:
    schema: Any = {"": Config, "search": SearchConfig, "mlflow": MlflowConfig, **_GROUPS}.get(
        section
    )
    if schema is None:
        return []
    return [f.name for f in dataclasses.fields(schema) if f.name != "defaults"]


def _omegaconf_message(e: Exception) -> str:
    msg = getattr(e, "msg", str(e)).splitlines()[0]
    key = getattr(e, "full_key", None)
    if key:
        return f"{key}: {msg}"
    return msg


def _group_options(group: str) -> list[str]:
    d = conf_dir() / group
    if not group or not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.yaml"))


def as_plain(cfg: Any) -> Any:
    """A plain-container copy of a (sub)config, for logging and hashing."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def is_finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
