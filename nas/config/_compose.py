"""Composing the config: Hydra's defaults and overrides, then validation.

Hydra's and OmegaConf's errors are translated into one line that names the bad value
and what is allowed (an unknown option lists the group's options; an unknown key
lists the section's keys).
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nas.config._schema import (
    GROUP_SCHEMAS,
    Config,
    ConfigError,
    MlflowConfig,
    SearchConfig,
)
from nas.config._validate import validate
from search_spaces import list_search_spaces, search_space_config

__all__ = ["compose", "conf_dir", "register_schemas"]


def register_schemas() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, node in GROUP_SCHEMAS.items():
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

    register_schemas()
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
    schema: Any = {"": Config, "search": SearchConfig, "mlflow": MlflowConfig, **GROUP_SCHEMAS}.get(
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
