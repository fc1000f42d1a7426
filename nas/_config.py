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
    # Epochs the "largest" teacher trains for; null takes train.epochs.
    teacher_epochs: int | None = None


@dataclass
class RunnerConfig:
    name: str = MISSING


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
            "_self_",
        ]
    )
    dataset: DatasetConfig = MISSING
    search_space: Any = MISSING
    sampler: SamplerConfig = MISSING
    train: TrainConfig = MISSING
    compress: CompressSearchConfig = MISSING
    runner: RunnerConfig = MISSING
    search: SearchConfig = field(default_factory=SearchConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    hw: HwConfig | None = None


_GROUPS: dict[str, type[Any]] = {
    "dataset": DatasetConfig,
    "sampler": SamplerConfig,
    "train": TrainConfig,
    "compress": CompressSearchConfig,
    "runner": RunnerConfig,
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
    _require(cfg.sampler.name in SAMPLERS, f"sampler.name={cfg.sampler.name!r}; allowed {SAMPLERS}")
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
