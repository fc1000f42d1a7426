"""MLflow records of a search: one parent run per study, one child run per trial.

Uses ``MlflowClient`` with explicit run ids rather than the fluent API's global
"active run", so a resumed search reattaches to the same parent and a worker on
another node can log a child run by id.
"""

from __future__ import annotations

import functools
import logging
import math
import platform
import re
import subprocess
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from nas._stop import writing
from nas.study import keys
from nas.study._signals import sigint_deferred

__all__ = ["Tracker", "check_reachable", "flatten", "redact_secrets"]

_PACKAGES = ("downsize", "torch", "torchvision", "timm", "optuna", "mlflow", "hydra-core", "ray")


class _Uninterruptible:
    """A proxy whose method calls run under :func:`sigint_deferred`, and whose full disk
    is a :class:`~nas._stop.DiskFull` naming ``store``."""

    def __init__(self, target: Any, store: str) -> None:
        self._target = target
        self._store = store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with sigint_deferred(), writing(self._store):
                return attr(*args, **kwargs)

        return call


class Tracker:
    """The parent run of one study and the child runs of its trials."""

    def __init__(self, *, tracking_uri: str, experiment: str, artifact_root: Path | None) -> None:
        # MLflow logs a database error with its whole traceback before raising it; the
        # error is raised all the same (a full disk: one line, nas._stop.DiskFull).
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        store = tracking_uri.removeprefix("sqlite:///")  # a file's path, else the server
        self.client: Any = _Uninterruptible(MlflowClient(tracking_uri=tracking_uri), store)
        self.tracking_uri = tracking_uri
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            location = artifact_root.resolve().as_uri() if artifact_root is not None else None
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=location
            )
        else:
            self.experiment_id = exp.experiment_id
        if exp is None or exp.tags.get(keys.TAG_EXPERIMENT_KIND) != keys.EXPERIMENT_KIND:
            # So MLflow 3's UI opens it on its training runs, not the GenAI overview.
            self.client.set_experiment_tag(
                self.experiment_id, keys.TAG_EXPERIMENT_KIND, keys.EXPERIMENT_KIND
            )
        self.parent_id = ""

    # -- parent ---------------------------------------------------------------------
    def open_parent(
        self, *, study_name: str, params: Mapping[str, Any], tags: Mapping[str, str]
    ) -> bool:
        """Create the study's parent run, or reattach to it; True when resumed."""
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.`{keys.TAG_STUDY}` = '{study_name}' "
                f"and tags.`{keys.TAG_ROLE}` = '{keys.ROLE_SEARCH}'"
            ),
            max_results=1,
        )
        if found:
            self.parent_id = found[0].info.run_id
            self.client.update_run(self.parent_id, status="RUNNING")
            known = found[0].data.params
            new = {k: v for k, v in params.items() if k not in known}
            self._log(self.parent_id, params=new, tags=tags)
            return True
        run = self.client.create_run(
            self.experiment_id,
            run_name=study_name,
            tags={
                keys.TAG_ROLE: keys.ROLE_SEARCH,
                keys.TAG_STUDY: study_name,
                **tags,
                **_provenance(),
            },
        )
        self.parent_id = run.info.run_id
        self._log(self.parent_id, params=params)
        return False

    def close_parent(self, status: str) -> None:
        if self.parent_id:
            self.client.set_terminated(self.parent_id, status=status)

    def log_parent(
        self,
        *,
        metrics: Mapping[str, float] | None = None,
        step: int = 0,
        artifacts: list[Path] | None = None,
    ) -> None:
        self._log(self.parent_id, metrics=metrics, step=step)
        for path in artifacts or []:
            self.client.log_artifact(self.parent_id, str(path))

    # -- trials -----------------------------------------------------------------------
    def start_trial(self, number: int, study_name: str) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{number:04d}",
            tags={
                keys.TAG_PARENT: self.parent_id,
                keys.TAG_ROLE: keys.ROLE_TRIAL,
                keys.TAG_STUDY: study_name,
                keys.TAG_TRIAL: str(number),
            },
        )
        return run.info.run_id

    def finish_trial(
        self,
        run_id: str,
        *,
        status: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._log(run_id, params=params, metrics=metrics, tags=tags)
        self.client.set_terminated(run_id, status=status)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._log(run_id, tags=tags)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        self._log(run_id, metrics=metrics, step=step)

    def log_artifact(self, run_id: str, path: Path) -> None:
        self.client.log_artifact(run_id, str(path))

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """Write ``text`` as the run's artifact ``artifact_file`` (e.g. ``config.yaml``)."""
        self.client.log_text(run_id, text, artifact_file)

    def run_status(self, run_id: str) -> str:
        return str(self.client.get_run(run_id).info.status)

    def _log(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        step: int = 0,
    ) -> None:
        now = int(time.time() * 1000)
        ps = [Param(k, _param_str(v)) for k, v in (params or {}).items()]
        ms = [
            Metric(k, float(v), now, step)
            for k, v in (metrics or {}).items()
            if v is not None and math.isfinite(float(v))
        ]
        ts = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        # MLflow caps one batch at 100 params / 1000 metrics; configs stay below that per call.
        for i in range(0, max(len(ps), 1), 100):
            chunk = ps[i : i + 100]
            self.client.log_batch(
                run_id, params=chunk, metrics=ms if i == 0 else [], tags=ts if i == 0 else []
            )


_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@/\s]+@")


def redact_secrets(obj: Any) -> Any:
    """A copy of ``obj`` with passwords in URLs (``postgresql://u:secret@h``) masked, so
    a storage or tracking URL never lands in MLflow with its password."""
    if isinstance(obj, Mapping):
        return {k: redact_secrets(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(redact_secrets(v) for v in obj)
    if isinstance(obj, str):
        return _URL_PASSWORD.sub(r"\g<head>***@", obj)
    return obj


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists to flat scalar keys: {"a": {"b": [1, 2]}} -> a.b_1, a.b_2."""
    out: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj, 1):
            out.update(flatten(v, f"{prefix}_{i}"))
    else:
        out[prefix] = obj
    return out


def _param_str(v: Any) -> str:
    s = "null" if v is None else str(v)
    return s[:6000]


def _provenance() -> dict[str, str]:
    tags = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            tags[f"version.{pkg}"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    try:
        root = Path(__file__).resolve().parents[2]
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        tags["git.commit"] = commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        tags["git.commit"] = "unknown"
    return tags


def check_reachable(uri: str, *, name: str, hint: str = "") -> None:
    """Refuse an ``http(s)://`` tracking server that does not answer its health check.

    Args:
        name: how the user gave the URI (``mlflow.tracking_uri='...'``, ``--tracking-uri
            ...``); it opens the one-line error.
        hint: what to do about it, appended after a semicolon.
    """
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    from nas.config import ConfigError, one_line

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).read()
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ConfigError(
            f"{name} is unreachable ({one_line(e, 200)})" + (f"; {hint}" if hint else "")
        ) from None
