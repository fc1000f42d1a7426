"""The search's configuration: Hydra group schemas, composition, validation, registries.

Light on purpose (Hydra and OmegaConf, never torch): a bad command line fails in
about a second with one line that names the value and what is allowed.
"""

from __future__ import annotations

from nas.config._compose import compose, conf_dir, expand_device_list, register_schemas
from nas.config._hash import search_hash
from nas.config._registry import Registry
from nas.config._schema import (
    COSTS,
    DEFAULT_ENERGY_TABLE,
    DEVICE_CHOICES,
    DEVICE_SPEC,
    GROUP_SCHEMAS,
    MEASURE_DEVICE_SPEC,
    PRECISIONS,
    PRUNE_KINDS,
    PRUNE_SCOPES,
    CompressSearchConfig,
    Config,
    ConfigError,
    DatasetConfig,
    EarlyStopConfig,
    HwConfig,
    MlflowConfig,
    RunnerConfig,
    SamplerConfig,
    SearchConfig,
    StrategyConfig,
    TrainConfig,
    as_plain,
    check_device_spec,
    device_profiles,
    hw_profile_path,
    is_finite,
    is_multi_device,
    min_accuracy,
    one_line,
)
from nas.config._validate import GROUP_CHECKS, validate

__all__ = [
    "COSTS",
    "DEFAULT_ENERGY_TABLE",
    "DEVICE_CHOICES",
    "DEVICE_SPEC",
    "GROUP_CHECKS",
    "MEASURE_DEVICE_SPEC",
    "PRECISIONS",
    "GROUP_SCHEMAS",
    "PRUNE_KINDS",
    "PRUNE_SCOPES",
    "CompressSearchConfig",
    "Config",
    "ConfigError",
    "DatasetConfig",
    "EarlyStopConfig",
    "HwConfig",
    "MlflowConfig",
    "Registry",
    "RunnerConfig",
    "SamplerConfig",
    "SearchConfig",
    "StrategyConfig",
    "TrainConfig",
    "as_plain",
    "check_device_spec",
    "compose",
    "conf_dir",
    "device_profiles",
    "expand_device_list",
    "hw_profile_path",
    "is_finite",
    "is_multi_device",
    "min_accuracy",
    "one_line",
    "register_schemas",
    "search_hash",
    "validate",
]
