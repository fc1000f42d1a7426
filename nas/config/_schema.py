"""The config schema: one dataclass per Hydra group, stored in Hydra's ConfigStore.

Imports only OmegaConf (never torch), so that a bad command line fails in about a
second with one clear line.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

__all__ = [
    "DEVICE_CHOICES",
    "DEVICE_SPEC",
    "MEASURE_DEVICE_SPEC",
    "check_device_spec",
    "PRECISIONS",
    "COSTS",
    "CompressSearchConfig",
    "Config",
    "DEFAULT_ENERGY_TABLE",
    "ConfigError",
    "DatasetConfig",
    "GROUP_SCHEMAS",
    "OPTION_SCHEMAS",
    "SCHEDULES",
    "SupernetStrategyConfig",
    "PRUNE_KINDS",
    "PRUNE_SCOPES",
    "EarlyStopConfig",
    "HwConfig",
    "MlflowConfig",
    "device_profiles",
    "is_multi_device",
    "min_accuracy",
    "RunnerConfig",
    "SamplerConfig",
    "SearchConfig",
    "StrategyConfig",
    "TrainConfig",
    "as_plain",
    "hw_profile_path",
    "is_finite",
    "one_line",
]

PRUNE_SCOPES = ("global", "layer")
PRUNE_KINDS = ("unstructured", "structured")


class ConfigError(ValueError):
    """A user's configuration is wrong; the message is one line for the user."""


def one_line(e: BaseException, n: int = 300) -> str:
    """An error as one line of at most ``n`` characters, for a user or a record."""
    return " ".join(str(e).split())[:n] or type(e).__name__


DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
DEVICE_SPEC = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
"""``train.device``: checked here, before torch is imported; resolved by ``nas.pipeline``."""
MEASURE_DEVICE_SPEC = re.compile(r"^(cpu|cuda(:\d+)?)$")
"""``hw.device``: where a measured latency is taken; CUDA availability is ``nas.hw``'s."""


def check_device_spec(spec: object) -> str | None:
    """Why ``spec`` is not a valid ``train.device`` (None when it is); no torch needed."""
    if not DEVICE_SPEC.match(str(spec)):
        return f"train.device={spec!r} is not one of {DEVICE_CHOICES}"
    return None


PRECISIONS = ("auto", "bf16", "fp16", "fp32")
COSTS = ("size_bytes", "energy_uj")
"""``search.cost``: the front's cost axis, against val accuracy."""
DEFAULT_ENERGY_TABLE = "pkg://nas.hw/data/energy_horowitz45.json"


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
    # Streamed sets (imagefolder): DataLoader worker processes that decode images.
    num_workers: int = 2
    # Training augmentation (random-resized crop and flip, on the training device);
    # val and test never get it.
    augment: bool = False
    # Hypervolume reference point (worst accuracy, largest size) for this data set.
    hv_ref_accuracy: float = 0.5
    hv_ref_size_bytes: int = 4_000_000
    # Its energy with search.cost=energy_uj (uJ per inference, nas.hw's model).
    hv_ref_energy_uj: float = 1000.0


@dataclass
class SamplerConfig:
    name: str = MISSING
    n_startup_trials: int = 10
    population_size: int = 16
    # Proposals screened by a model of the hw constraints fitted on past trials
    # (nas.study.ConstraintModelSampler); 0 leaves the sampler's proposals as they are.
    feasibility_candidates: int = 0


@dataclass
class EarlyStopConfig:
    """Multi-objective early stopping of training (``nas.study.make_early_stop``).

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
    # auto: the GPU Ray assigned to the trial, else the first visible GPU, else the CPU;
    # or cpu, cuda, cuda:N (within the trial's visible GPUs), mps.
    device: str = "auto"
    # auto: fp32 on the CPU, bf16 on a GPU that has it; or bf16, fp16, fp32.
    precision: str = "auto"


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
    # them (scripts/bench_distill.py, docs/results.md "Distillation").
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
    # A local Ray's GPUs (null: those torch sees). More than the machine has is only
    # for tests: Ray then hands out logical GPU ids that no device backs.
    num_gpus: float | None = None
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
    # Where a measured latency (latency: measure) is taken: cpu, or cuda / cuda:N to
    # time the model on this machine's GPU with CUDA events; and at which batch size.
    device: str = "cpu"
    batch_size: int = 1
    # A device profile JSON (python -m nas.calibrate_hw / nas.profile_hw) whose predictor
    # replaces `predictor`; "pkg://nas.hw/data/<file>" names one shipped with the package.
    profile: str | None = None
    # Whether unstructured sparsity makes the device faster. False for dense kernels (every
    # profile here): zeros cost as much as any weight, so only structured pruning, which
    # makes the model itself smaller, lowers latency.
    sparse_speedup: bool = False
    # Energy per inference is modelled from this per-operation table (nas/hw/_energy.py;
    # default Horowitz, ISSCC 2014, 45 nm); a budget in uJ is checked before training.
    energy_table: str = DEFAULT_ENERGY_TABLE
    energy_budget_uj: float | None = None


@dataclass
class StrategyConfig:
    """How candidates get their accuracy (``nas.pipeline.STRATEGIES``).

    scratch: every feasible candidate is trained from scratch, compressed, fine-tuned
    and recorded as its own MLflow run.
    """

    name: str = MISSING


SCHEDULES = ("sandwich", "progressive")
DEVICE_CONSTRAINTS = ("any", "round_robin")


@dataclass
class SupernetStrategyConfig(StrategyConfig):
    """``strategy=supernet``: train one weight-sharing network, score candidates by
    inheriting its weights, finalise the best for real (conf/strategy/supernet.yaml).

    Attributes:
        epochs: epochs of supernet training, the warm-up included.
        warmup_epochs: the first epochs train the largest network alone; then its
            channels are sorted by importance and the sub-networks join.
        schedule: ``sandwich`` (BigNAS: largest, smallest and random sub-networks
            every step) or ``progressive`` (OFA: kernel, then depth, then
            expansion, then width become elastic in turn).
        random_subnets: random sub-networks per step, besides the largest and smallest.
        lr: peak learning rate (null: the space's default).
        distill_temperature: of the in-place distillation from the largest network.
        sparsity_max: the highest sparsity sampled in training (null: compress.sparsity_max).
        bn_calib_images: training images that re-estimate BatchNorm per candidate.
        shift: the supernet's training images shift by up to this fraction of their
            side (whole pixels; 0: none; ``dataset.augment`` replaces it; finalists
            fine-tune unshifted): conf/strategy/supernet.yaml says why.
        finalists: how many candidates are always finalised (K), time kept for them:
            the best predicted of each of K bins spanning the scored log sizes.
        max_finalists: the most finalised in all (null: as many as ``search.timeout_s``
            leaves time for, each next the one that adds the most hypervolume as
            predicted by the finalists so far: nas.pipeline._supernet_predict).
        finalise_share: of ``search.timeout_s``, the share kept for finalising (at
            least the K finalists' time); the supernet's training and the scoring
            split the rest.
        finetune_epochs: the most epochs a finalist trains (quantization-aware,
            distilled from the largest sub-network), from its inherited weights.
        finetune_patience: it trains in rounds of this many epochs, each a whole
            one-cycle schedule, and stops at the first round that ends below the best
            round's val accuracy, keeping the best round's weights (never the
            inherited ones: the first round always trains).
        finetune_lr: its peak learning rate.
        checkpoint: a supernet file to use instead of the cache (null: the cache).
    """

    name: str = "supernet"
    epochs: int = 30
    warmup_epochs: int = 3
    schedule: str = "sandwich"
    random_subnets: int = 2
    lr: float | None = None
    distill_temperature: float = 1.0
    sparsity_max: float | None = None
    bn_calib_images: int = 500
    shift: float = 0.07
    finalists: int = 6
    max_finalists: int | None = None
    finalise_share: float = 0.35
    finetune_epochs: int = 10
    finetune_patience: int = 2
    finetune_lr: float = 0.005
    checkpoint: str | None = None


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
    # A pre-emption notice (SIGUSR1, as Slurm's --signal=USR1@N sends): seconds the trial
    # in flight has to finish before it is interrupted; nothing new starts meanwhile.
    grace_s: float = 60.0
    # None: the launch directory.
    output_dir: str | None = None
    progress: bool = True
    # A trained candidate less accurate than this is never on a front (it is recorded,
    # tagged `off_front`). null: twice chance, 2 / classes, so a model that learnt
    # nothing (0.10 on 10 classes) is not reported as "the smallest worth having".
    min_accuracy: float | None = None
    # Several devices: the one constraint the samplers see. round_robin: trial n is aimed
    # at device n mod k, and the constraint is that device's; any: <= 0 when the
    # candidate fits some device. Either way a candidate is trained if it fits any device.
    # round_robin: in scripts/bench_devices.py (3 seeds) "any" starved the device with the
    # fewest kernels (raspi4: 0.48x a dedicated search's hypervolume, against 0.86x).
    device_constraint: str = "round_robin"
    # The front's cost axis (COSTS): the artifact's bytes, or the modelled energy.
    cost: str = "size_bytes"


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
    # Any: each strategy option has its own schema (scratch_schema, supernet_schema).
    strategy: Any = MISSING
    search: SearchConfig = field(default_factory=SearchConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    hw: HwConfig | None = None
    # Several hw profiles in one search (``+hw=[mobile,raspi4,mcu]``, which nas.config
    # turns into ``+hw@devices.mobile=mobile ...``): one front per device.
    devices: dict[str, HwConfig] = field(default_factory=dict)


GROUP_SCHEMAS: dict[str, type[Any]] = {
    "dataset": DatasetConfig,
    "sampler": SamplerConfig,
    "train": TrainConfig,
    "compress": CompressSearchConfig,
    "runner": RunnerConfig,
    "early_stop": EarlyStopConfig,
    "hw": HwConfig,
    "strategy": StrategyConfig,
}
"""Each Hydra group's schema; Hydra's ConfigStore holds it as ``<group>_schema``."""
OPTION_SCHEMAS: dict[tuple[str, str], type[Any]] = {
    ("strategy", "supernet"): SupernetStrategyConfig,
}
"""Schemas of options that add keys to their group's (``<option>_schema``)."""


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


def device_profiles(cfg: DictConfig) -> dict[str, Any]:
    """The search's hw profiles by device name: ``{hw.name: hw}`` for ``+hw=NAME``, the
    ``devices`` mapping for ``+hw=[a,b,...]``, ``{}`` without hw."""
    devices = cfg.get("devices")
    if devices:
        return dict(devices.items())
    hw = cfg.get("hw")
    return {} if hw is None else {str(hw.name): hw}


def is_multi_device(cfg: DictConfig) -> bool:
    """Whether ``cfg`` searches for several devices at once (``+hw=[a,b,...]``)."""
    return bool(cfg.get("devices"))


def min_accuracy(cfg: DictConfig, num_classes: int) -> float:
    """The front's accuracy floor: ``search.min_accuracy``, else twice chance."""
    value = cfg.search.get("min_accuracy")
    return float(value) if value is not None else 2.0 / max(int(num_classes), 1)


def as_plain(cfg: Any) -> Any:
    """A plain-container copy of a (sub)config, for logging and hashing."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def is_finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
