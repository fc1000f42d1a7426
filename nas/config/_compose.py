"""Composing the config: Hydra's defaults and overrides, then validation.

Hydra's and OmegaConf's errors are translated into one line that names the bad value
and what is allowed: an unknown option lists the group's options, an unknown key the
section's keys, a value of the wrong type the type and the range the value must be in,
``hw=mobile`` (a group with no default) suggests ``+hw=mobile``.

The composition is the one ``python -m nas.search`` (a Hydra app) runs, search path
included: the packaged ``conf/`` (or ``config_path``), then ``config_dir`` (Hydra's
``--config-dir``), then the schemas in Hydra's ConfigStore.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from nas.config._schema import (
    GROUP_SCHEMAS,
    OPTION_SCHEMAS,
    Config,
    ConfigError,
    MlflowConfig,
    SearchConfig,
)
from nas.config._validate import validate
from search_spaces import list_search_spaces, search_space_config

__all__ = ["compose", "conf_dir", "expand_device_list", "register_schemas"]

# An out-of-range stand-in for a value of the wrong type: the range check it fails
# says what the range is (``search.n_trials=... must be an integer >= 1``).
_SENTINEL = -1_000_000_000
_EXPECTED = {
    "to Integer": "an integer",
    "to Float": "a number",
    "valid bool": "true or false",
    "to string": "a string",
    "is not a ListConfig": "a list, like [a,b]",
}


def register_schemas() -> None:
    """Store the config's schemas in Hydra's ConfigStore (``config_schema``, ``<group>_schema``)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, node in GROUP_SCHEMAS.items():
        cs.store(group=group, name=f"{group}_schema", node=node)
    for (group, option), node in OPTION_SCHEMAS.items():
        cs.store(group=group, name=f"{option}_schema", node=node)
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


def compose(
    overrides: Sequence[str],
    *,
    config_name: str = "config",
    config_dir: str | None = None,
    config_path: str | None = None,
) -> DictConfig:
    """Compose and validate the config; raise ConfigError with one line on bad input.

    Args:
        overrides: Hydra overrides (``group=option``, ``+hw=NAME``, ``key=value``).
        config_name: the primary config (Hydra's ``--config-name``).
        config_dir: a directory searched too (Hydra's ``--config-dir``).
        config_path: a directory that replaces the packaged ``conf/``.
    """
    overrides = expand_device_list(overrides)

    def attempt(ovs: list[str]) -> DictConfig:
        return _compose(ovs, config_name, config_dir, config_path)

    cfg = _translated(attempt, overrides, config_name)
    _check_added_keys(cfg, overrides)
    validate(cfg)
    return cfg


def expand_device_list(overrides: Sequence[str]) -> list[str]:
    """``+hw=[mobile,raspi4]`` as one package per device: ``+hw@devices.mobile=mobile
    +hw@devices.raspi4=raspi4``.

    Hydra merges the options of a multi-selected group into one node, so three flat
    ``conf/hw/*.yaml`` would become one mixed profile; each device gets its own
    ``devices.<name>`` node instead (Hydra's ``group@package=option``, which may also
    be written by hand). A one-element list is ``+hw=NAME``: a single-device search,
    same study. Raises ConfigError on a device named twice, an empty list, a list
    without ``+`` and a sweep over lists.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    out: list[str] = []
    for text in overrides:
        try:
            (o,) = parser.parse_overrides([text])
        except OverrideParseException:
            out.append(text)  # compose names the override it cannot parse
            continue
        if o.key_or_group != "hw" or o.package is not None:
            out.append(text)
            continue
        if o.is_sweep_override():
            if any(isinstance(v, list) for v in o.sweep_iterator()):
                raise ConfigError(
                    f"{text}: a sweep over device lists is not supported; run one "
                    "command per list, or sweep single devices: -m +hw=mobile,mcu"
                )
            out.append(text)
            continue
        names = o.value()
        if not isinstance(names, list):
            out.append(text)
            continue
        _check_device_list(text, names, added=o.is_add())
        if len(names) == 1:
            out.append(f"+hw={names[0]}")
        else:
            out.extend(f"+hw@devices.{name}={name}" for name in names)
    return out


def _check_device_list(text: str, names: list[Any], *, added: bool) -> None:
    if not added:
        raise ConfigError(f"{text}: hw has no default; add the devices with +{text}")
    if not names:
        raise ConfigError(f"{text} names no device; give one or more: +hw=[mobile,raspi4]")
    for name in names:
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(
                f"{text}: {name!r} is not a device name; give hw options, e.g. "
                "+hw=[mobile,raspi4,mcu]"
            )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{text} names {', '.join(twice)} twice; name each device once")


def _translated(
    attempt: Callable[[list[str]], DictConfig], overrides: list[str], config_name: str
) -> DictConfig:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return attempt(overrides)
    except HydraException as e:
        raise ConfigError(_hydra_message(e, overrides, attempt, config_name)) from None
    except OmegaConfBaseException as e:
        raise ConfigError(_omegaconf_message(e)) from None
    except AssertionError:
        # Hydra asserts when a key of an unselected optional group (hw) is set.
        raise ConfigError(_unselected_group_message(overrides)) from None


def _compose(
    overrides: list[str], config_name: str, config_dir: str | None, config_path: str | None
) -> DictConfig:
    """Hydra's composition, with the search path that ``nas.search``'s Hydra app uses."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    register_schemas()
    search_path = create_config_search_path(str(Path(config_path or conf_dir()).resolve()))
    if config_dir is not None:
        path = Path(config_dir).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"--config-dir={config_dir!r} is not a directory")
        search_path.prepend(
            provider="command-line",
            path=f"file://{path}",
            anchor=SearchPathQuery(provider="schema"),
        )
    GlobalHydra.instance().clear()
    try:
        hydra = Hydra.create_main_hydra2(task_name="search", config_search_path=search_path)
        cfg = hydra.compose_config(
            config_name, overrides, run_mode=RunMode.RUN, with_log_configuration=False
        )
    finally:
        GlobalHydra.instance().clear()
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return cfg


def _hydra_message(
    e: Exception, overrides: list[str], attempt: Callable[[list[str]], DictConfig], name: str
) -> str:
    from hydra.errors import OverrideParseException

    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    if isinstance(e, OverrideParseException):
        return _parse_message(overrides)
    if first.startswith("Multiple values for "):
        group = first.removeprefix("Multiple values for ").split(".")[0]
        given = " ".join(o for o in overrides if _key_of(o) == group)
        return f"{group} is selected twice ({given}); give it once"
    if "Cannot find primary config" in first:
        return (
            f"--config-name={name}: no such config in the config path (the packaged one, "
            "or --config-path); the packaged config is 'config'"
        )
    # Hydra says "Could not find 'dataset/foo'" and lists the options on later lines.
    if "Could not find '" in first:
        return _unknown_option_message(text, overrides) or _joined(text)
    if "No match in the defaults list" in first:
        return _no_default_message(first, overrides)
    if first.startswith("Error merging override "):
        return _merge_message(e, first.removeprefix("Error merging override "), overrides, attempt)
    if "Could not override '" in text or ("Key '" in text and "not in struct" in text):
        return _unknown_key_message(e, text, overrides)
    if first.startswith("Ambiguous value for argument "):
        bad = first.split("'")[1]
        return (
            f"{bad}: a comma makes a sweep; add -m/--multirun to run one search per value, "
            "write key=[a,b] for a list, or quote it: key='a,b'"
        )
    if first.startswith("Could not append to config. An item is already at "):
        key = first.split("'")[1]
        return f"{key} already exists; set it without '+': {key}=VALUE"
    return _joined(text)


def _parse_message(overrides: list[str]) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for o in overrides:
        try:
            parser.parse_overrides([o])
        except OverrideParseException as err:
            lines = [ln for ln in str(err).splitlines()[1:] if "hydra.cc/docs" not in ln]
            lines = lines or str(err).splitlines()[:1]
            why = " ".join(ln.strip() for ln in lines).replace("missing EQUAL", "missing '='")
            return (
                f"{o!r} is not an override ({why}); write key=value, group=option, "
                "+hw=NAME or key=[a,b]"
            )
    return "an override cannot be parsed; write key=value, group=option, +hw=NAME or key=[a,b]"


def _joined(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "hydra.cc/docs" not in ln]
    return " ".join(lines)[:400]


def _key_of(override: str) -> str:
    return override.lstrip("+~").split("=")[0]


def _unknown_option_message(text: str, overrides: list[str]) -> str | None:
    first = text.splitlines()[0]
    missing = first.split("'")[-2] if "'" in first else ""
    group, _, option = missing.partition("/")
    # Hydra lists the options it found on every search path (--config-dir's too), one
    # per tab-indented line after "Available options in 'group':"; the schemas are not.
    listed = text.partition(f"Available options in '{group}':")[2].lstrip("\n").splitlines()
    found = list(itertools.takewhile(lambda ln: ln.startswith("\t"), listed))
    options = [o.strip() for o in found if not o.strip().endswith("_schema")]
    options = options or _group_options(group)
    if not options:
        return None
    if group == "hw" and any(_key_of(o) == f"hw@devices.{option}" for o in overrides):
        return (
            f"device {option!r} of +hw=[...] is not a known hw option; choose from: "
            f"{', '.join(options)}"
        )
    # The last override of the group is the one Hydra used (and could not find).
    matching = [o for o in overrides if _key_of(o) == group]
    bad = matching[-1] if matching else f"{group}={option}"
    return f"{bad} is not a known option; choose one of: {', '.join(options)}"


def _no_default_message(first: str, overrides: list[str]) -> str:
    group = first.split("'")[1]
    matching = [o for o in overrides if _key_of(o) == group]
    bad = matching[-1] if matching else group
    options = ", ".join(_group_options(group))
    if bad.startswith("~"):
        return f"{bad}: no {group} is selected, so there is none to remove"
    return f"{bad}: {group} has no default to override; add it with +{bad} (options: {options})"


def _unselected_group_message(overrides: list[str]) -> str:
    if any(_key_of(o).startswith("hw@devices.") for o in overrides):
        bad = next((o for o in overrides if _key_of(o).startswith("hw.")), None)
        if bad is not None:
            rest = bad.lstrip("+~").removeprefix("hw.")
            return (
                f"{bad}: with several devices (+hw=[...]) each has its own profile; "
                f"set it per device: devices.<name>.{rest}"
            )
    for o in overrides:
        group = _key_of(o).split(".")[0]
        selected = any(_key_of(x) == group for x in overrides)
        if "." in _key_of(o) and _group_options(group) and not selected:
            options = ", ".join(_group_options(group))
            return f"{o}: no {group} is selected; add one first: +{group}=NAME ({options})"
    return f"cannot compose the config from {' '.join(overrides)}"


def _unknown_key_message(e: Exception, text: str, overrides: list[str]) -> str:
    marker = "Could not override '" if "Could not override '" in text else "Key '"
    key = text.split(marker)[1].split("'")[0]
    path = next((_key_of(o) for o in overrides if key in o), key)
    full_key = getattr(e.__cause__, "full_key", None)
    section = str(full_key if full_key is not None else path).rpartition(".")[0]
    schema = getattr(e.__cause__, "object_type", None)
    known = _fields(schema) if dataclasses.is_dataclass(schema) else _known_keys(section)
    allowed = f"; {section or 'the config'} has: {', '.join(known)}"
    return f"unknown config key {path!r}{allowed if known else ''}"


def _merge_message(
    e: Exception, override: str, overrides: list[str], attempt: Callable[[list[str]], DictConfig]
) -> str:
    """A value OmegaConf refused for its key: its type, and the range it must be in."""
    cause = e.__cause__
    msg = str(getattr(cause, "msg", "") or "").splitlines()
    expected = next((v for k, v in _EXPECTED.items() if msg and k in msg[0]), None)
    full_key = str(getattr(cause, "full_key", "") or _key_of(override))
    if expected is None:
        return f"{override}: {msg[0] if msg else _joined(str(e))}"
    key, _, index = full_key.partition("[")
    value = override.split("=", 1)[1] if "=" in override else ""
    if index:
        expected = f"a list of {expected.removeprefix('an ').removeprefix('a ')}s"
        # The element OmegaConf could not convert: "Value 'a' of type 'str' could not...".
        value = msg[0].split("'")[1] if msg[0].startswith("Value '") else value
    message = f"{override}: expected {expected}"
    if expected.startswith(("an integer", "a number", "a list of")):
        rule = _range_rule(key, override, value, overrides, attempt, as_list=bool(index))
        if rule:
            message += f"; {rule}"
    return message


def _range_rule(
    key: str,
    override: str,
    value: str,
    overrides: list[str],
    attempt: Callable[[list[str]], DictConfig],
    *,
    as_list: bool,
) -> str | None:
    """What the range check of ``key`` says of an out-of-range value, or None."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    probe = f"{key}=[{_SENTINEL}]" if as_list else f"{key}={_SENTINEL}"
    try:
        validate(attempt([probe if o == override else o for o in overrides]))
    except ConfigError as err:
        rule = str(err)
    except (HydraException, OmegaConfBaseException, AssertionError):
        return None
    else:
        return None
    if not rule.startswith(key):
        return None
    for text in (f"{float(_SENTINEL)}", f"{_SENTINEL}"):
        rule = rule.replace(f"{key}={text} ", f"{key} ").replace(text, value)
    return rule.replace(" is outside ", " must be in ")


def _check_added_keys(cfg: DictConfig, overrides: list[str]) -> None:
    """``+section.key=v`` passes Hydra even where the schema has no such key: refuse it."""
    for o in overrides:
        if not o.startswith("+") or "=" not in o:
            continue
        key = _key_of(o)
        if key.startswith("hydra") or ("." not in key and _group_options(key)):
            continue
        section, _, name = key.rpartition(".")
        node = OmegaConf.select(cfg, section) if section else cfg
        schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
        if dataclasses.is_dataclass(schema) and name not in _fields(schema):
            known = ", ".join(_fields(schema))
            raise ConfigError(f"unknown config key {key!r}; {section or 'the config'} has: {known}")


def _fields(schema: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(schema) if f.name != "defaults"]


def _known_keys(section: str) -> list[str]:
    schemas = {"": Config, "search": SearchConfig, "mlflow": MlflowConfig, **GROUP_SCHEMAS}
    schema = schemas.get(section)
    return [] if schema is None else _fields(schema)


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
