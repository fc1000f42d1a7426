"""Resolve: which trial to export, and what its search recorded.

Nothing is opened before :func:`check_request` accepts the request (numbers, run id,
output folder). Then :func:`connect` opens MLflow, and :func:`resolve_trial` turns a
run id (a trial's, or a search's with ``--trial``) into the trial's run and the
search's record: data, seed, training budget and hw profile, from the parent run's
``config.yaml`` (older searches: its flattened params).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.config import ConfigError, DatasetConfig, one_line
from nas.study import keys

if TYPE_CHECKING:
    from nas.pipeline import Recipe

__all__ = [
    "SearchRecord",
    "TrialRun",
    "check_out_path",
    "check_request",
    "connect",
    "default_tracking_uri",
    "resolve_trial",
    "param_value",
    "search_record",
]

_RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class SearchRecord:
    """What export needs of the search a trial belongs to."""

    study_name: str
    parent_run_id: str
    dataset: DatasetConfig
    seed: int
    train: Mapping[str, Any]  # the search's ``train`` section, read by :meth:`recipe`
    compress: Mapping[str, Any]  # its ``compress`` section (the fine-tuning budget)
    hw: dict[str, Any] | None
    source: str  # "config.yaml" or "params"
    config: dict[str, Any] | None = None  # the search's whole config, from config.yaml

    @property
    def threads(self) -> int:
        """The search's torch threads (``train.threads``)."""
        return int(self.train.get("threads") or 1)

    @property
    def latency_threads(self) -> int:
        """The threads the search measured latency with (``hw.threads``)."""
        return int((self.hw or {}).get("threads") or 1)

    def recipe(self, *, default_lr: float, epochs: int) -> Recipe:
        """The search's training recipe, for ``epochs`` epochs (the space's lr by default)."""
        from nas.pipeline import Recipe

        return Recipe.from_config(self.train, self.compress, default_lr=default_lr, epochs=epochs)


@dataclass(frozen=True)
class TrialRun:
    """The MLflow run of the trial to export, and the search it belongs to."""

    run: Any  # mlflow.entities.Run
    number: int
    record: SearchRecord
    # The device exported for, of a multi-device search (its profile is record.hw).
    device: str | None = None

    @property
    def run_id(self) -> str:
        return str(self.run.info.run_id)

    @property
    def pareto(self) -> bool:
        """On the front (of :attr:`device`'s, for a multi-device search)."""
        tag = (
            keys.TAG_PARETO
            if self.device is None
            else keys.device_tag(keys.TAG_PARETO, self.device)
        )
        return self.run.data.tags.get(tag) == "true"

    @property
    def metrics(self) -> dict[str, float]:
        """The run's metrics; of a multi-device search, :attr:`device`'s figures under
        the plain names (``latency_ms.raspi4`` as ``latency_ms``)."""
        m = dict(self.run.data.metrics)
        if self.device is not None:
            suffix = f".{self.device}"
            m.update({k.removesuffix(suffix): v for k, v in m.items() if k.endswith(suffix)})
        return m


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else the database a search launched here writes."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return env or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def check_request(
    run_id: str,
    out_dir: Path,
    *,
    retrain_epochs: int,
    trial: int | None,
    threads: int | None,
) -> None:
    """Refuse a bad request before anything is opened, read or written.

    Raises:
        ConfigError: One line naming the value and what is allowed.
    """
    if retrain_epochs < 0:
        raise ConfigError(f"--retrain-epochs={retrain_epochs} must be >= 0")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads={threads} must be >= 1")
    if trial is not None and trial < 0:
        raise ConfigError(f"--trial={trial} must be >= 0 (a trial number of the search)")
    if not _RUN_ID.fullmatch(run_id):
        raise ConfigError(
            f"run id {run_id!r} is not an MLflow run id: those are 32 hex characters "
            "(0-9, a-f), as `python -m nas.search` prints them"
        )
    check_out_path(out_dir)


def check_out_path(out_dir: Path) -> None:
    """Refuse an ``--out`` that cannot be a folder, before anything is read or written."""
    probe = out_dir
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--out {out_dir}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out_dir} is not writable (no write permission on {probe})")


def connect(uri: str) -> Any:
    """An ``MlflowClient`` of ``uri``, once its database exists or its server answers."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        if not db.is_file():
            raise ConfigError(
                f"--tracking-uri {uri}: no MLflow database at {db} "
                "(run from the search's directory or pass --tracking-uri)"
            )
    from mlflow.tracking import MlflowClient

    from nas.study import check_reachable  # imports MLflow: after the checks that need none

    check_reachable(uri, name=f"--tracking-uri {uri}")
    try:
        return MlflowClient(tracking_uri=uri)
    except Exception as e:
        raise ConfigError(f"--tracking-uri {uri} cannot be used: {one_line(e, 200)}") from None


def resolve_trial(
    client: Any,
    run_id: str,
    trial: int | None,
    uri: str,
    say: Callable[[str], None],
    device: str | None = None,
) -> TrialRun:
    """The trial run ``run_id`` (or trial ``trial`` of the search ``run_id``) and its search.

    ``device``: the device to export for. A search's run id with ``device`` and no
    ``trial`` picks the most accurate member of that device's front. A multi-device
    search needs it unless the trial is on exactly one device's front.

    Raises:
        ConfigError: The run is unknown, not a trial of a search, or has no parent; the
            device is not one of the search's, or is needed and not given.
    """
    run = _find_trial(client, run_id, trial, uri, device)
    tags = run.data.tags
    number = int(tags.get(keys.TAG_TRIAL, "-1"))
    parent_id = tags.get(keys.TAG_PARENT)
    if not parent_id:
        raise ConfigError(f"run {run.info.run_id} has no parent search run (tag {keys.TAG_PARENT})")
    record = search_record(client, parent_id, uri)
    device = _device_of(record, run, number, device, say)
    if device is not None:
        profile = ((record.config or {}).get("devices") or {}).get(device)
        record = replace(record, hw=dict(profile) if isinstance(profile, Mapping) else None)
    found = TrialRun(run, number, record, device)
    if device is not None and tags.get(keys.device_tag(keys.TAG_FEASIBLE, device)) == "false":
        say(f"warning: trial {number} does not meet {device}'s budgets")
    if not found.pareto:
        where = f"{device}'s Pareto front" if device else "the search's Pareto front"
        say(f"warning: run {run.info.run_id} (trial {number}) is not on {where}")
    return found


def _device_of(
    record: SearchRecord, run: Any, number: int, device: str | None, say: Callable[[str], None]
) -> str | None:
    """The device to export for: ``device`` checked against the search's, or the one
    whose front the trial is on (None for a search with one device or none)."""
    devices = list(((record.config or {}).get("devices") or {}).keys())
    if not devices:
        name = (record.hw or {}).get("name")
        if device is not None and device != name:
            have = f"only for hw={name}" if name else "without a hw profile"
            raise ConfigError(f"--device {device}: the search ran {have}; drop --device")
        return None
    if device is not None:
        if device not in devices:
            raise ConfigError(
                f"--device {device} is not a device of the search; choose one of: "
                f"{', '.join(devices)}"
            )
        return device
    tags = run.data.tags
    fronts = [d for d in devices if tags.get(keys.device_tag(keys.TAG_PARETO, d)) == "true"]
    if len(fronts) == 1:
        say(f"trial {number} is on {fronts[0]}'s front only: exporting for {fronts[0]}")
        return fronts[0]
    on = f"on the fronts of {', '.join(fronts)}" if fronts else "on no device's front"
    raise ConfigError(
        f"trial {number} is of a search for {', '.join(devices)} and {on}; choose with "
        f"--device {'|'.join(fronts or devices)}"
    )


# -- the run ------------------------------------------------------------------------------


def _find_trial(client: Any, run_id: str, trial: int | None, uri: str, device: str | None) -> Any:
    run = _get_run(client, run_id, uri)
    role = run.data.tags.get(keys.TAG_ROLE)
    if role == keys.ROLE_SEARCH:
        return _trial_of_search(client, run, trial, device)
    if trial is not None:
        raise ConfigError(f"--trial {trial} needs a search's parent run id; {run_id} is a trial")
    if role != keys.ROLE_TRIAL:
        raise ConfigError(
            f"run {run_id} is not a trial of a nas.search study (tag {keys.TAG_ROLE})"
        )
    return run


def _get_run(client: Any, run_id: str, uri: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as e:
        if "RESOURCE_DOES_NOT_EXIST" in str(e.error_code) or "not found" in str(e).lower():
            raise ConfigError(f"run {run_id!r} not found at {uri}") from None
        raise ConfigError(f"run {run_id!r}: {one_line(e, 200)}") from None
    except Exception as e:  # a server that went away, a broken database
        raise ConfigError(f"run {run_id!r} cannot be read from {uri}: {one_line(e, 200)}") from None


def _trial_of_search(client: Any, search: Any, trial: int | None, device: str | None) -> Any:
    run_id = search.info.run_id
    children = client.search_runs(
        [search.info.experiment_id],
        filter_string=f"tags.`{keys.TAG_PARENT}` = '{run_id}'",
        max_results=5000,
    )
    devices = [d for d in search.data.tags.get(keys.TAG_DEVICES, "").split(",") if d]
    if device is not None and devices and device not in devices:
        raise ConfigError(
            f"--device {device} is not a device of the search; choose one of: {', '.join(devices)}"
        )
    if trial is None and device is not None and device in devices:
        tag = keys.device_tag(keys.TAG_PARETO, device)
        members = [r for r in children if r.data.tags.get(tag) == "true"]
        if not members:
            raise ConfigError(f"--device {device}: its front is empty in search run {run_id}")
        # The most accurate member: every one meets the device's budgets.
        return max(members, key=lambda r: (r.data.metrics.get("val_accuracy", 0.0),
                                           -r.data.metrics.get("size_bytes", 0.0)))  # fmt: skip
    if trial is None:
        fronts = {None: keys.TAG_PARETO} if not devices else {
            d: keys.device_tag(keys.TAG_PARETO, d) for d in devices
        }  # fmt: skip
        listed = []
        for d, tag in fronts.items():
            front = sorted(
                int(r.data.tags.get(keys.TAG_TRIAL, -1))
                for r in children
                if r.data.tags.get(tag) == "true"
            )
            shown = ", ".join(map(str, front)) or "empty"
            listed.append(f"front: {shown}" if d is None else f"{d}'s front: {shown}")
        how = "--trial N" if not devices else "--trial N, or --device NAME for its best"
        raise ConfigError(
            f"run {run_id} is a search (study {search.data.tags.get(keys.TAG_STUDY)}), not a "
            f"trial; pick one with {how} ({'; '.join(listed)})"
        )
    match = [r for r in children if r.data.tags.get(keys.TAG_TRIAL) == str(trial)]
    if not match:
        raise ConfigError(f"search run {run_id} has no trial {trial}")
    return match[0]


# -- the search's record ------------------------------------------------------------------


def search_record(client: Any, parent_id: str, uri: str) -> SearchRecord:
    parent = _get_run(client, parent_id, uri)
    cfg, source = _search_config(client, parent)
    comp, hw = cfg.get("compress"), cfg.get("hw")
    study = parent.data.tags.get(keys.TAG_STUDY, "")
    return SearchRecord(
        study_name=study or str(parent.data.params.get("study_name", "")),
        parent_run_id=parent_id,
        dataset=_dataset(cfg, parent_id),
        seed=int((cfg.get("search") or {}).get("seed", 0)),
        train=dict(cfg.get("train") or {}),
        compress=dict(comp) if isinstance(comp, Mapping) else {},
        hw=dict(hw) if isinstance(hw, Mapping) else None,
        source=source,
        config=cfg if source == "config.yaml" else None,
    )


def _search_config(client: Any, parent: Any) -> tuple[dict[str, Any], str]:
    """The search's config and where it came from: ``config.yaml``, else its params."""
    from omegaconf import OmegaConf

    parent_id = parent.info.run_id
    names = {a.path for a in client.list_artifacts(parent_id)}
    if "config.yaml" not in names:
        return _config_from_params(dict(parent.data.params)), "params"
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(parent_id, "config.yaml", tmp)
        cfg: dict[str, Any] = OmegaConf.to_container(OmegaConf.load(local))  # type: ignore[assignment]
    return cfg, "config.yaml"


def _dataset(cfg: dict[str, Any], parent_id: str) -> DatasetConfig:
    from omegaconf import OmegaConf

    try:
        data = OmegaConf.merge(OmegaConf.structured(DatasetConfig), cfg["dataset"])
        return DatasetConfig(**OmegaConf.to_container(data))  # type: ignore[arg-type]
    except Exception as e:
        raise ConfigError(
            f"search run {parent_id}: its dataset config is unusable ({one_line(e, 200)})"
        ) from None


def _config_from_params(params: dict[str, str]) -> dict[str, Any]:
    """The scalar keys of the config sections export needs, from flattened params."""
    from nas.config import TrainConfig

    cfg: dict[str, Any] = {}
    for section, names in (
        ("dataset", [f.name for f in fields(DatasetConfig)]),
        ("train", [f.name for f in fields(TrainConfig)]),
        ("compress", ["finetune_epochs", "finetune_lr"]),
        ("search", ["seed"]),
        ("hw", ["name", "description", "latency", "threads"]),
    ):
        found = {
            n: param_value(params[f"{section}.{n}"]) for n in names if f"{section}.{n}" in params
        }
        cfg[section] = found or None
    if "dataset.name" not in params:
        raise ConfigError("the search run has neither config.yaml nor dataset.* params")
    return cfg


def param_value(s: str) -> Any:
    """A logged parameter's text as the value it was (None, bool, int, float, or text)."""
    if s in ("null", "None"):
        return None
    if s in ("True", "False"):
        return s == "True"
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s
