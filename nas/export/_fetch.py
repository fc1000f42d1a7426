"""Fetch: the trial's ``.dsz`` artifact into the output folder, its header checked.

A front member's artifact is logged to its MLflow run; a trial that never joined the
front has one only where the search wrote it (``outputs/<study>/trial_NNNNN.dsz``
under the search's output folder, the database's folder, or here).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.config import ConfigError, one_line
from nas.export._resolve import TrialRun, check_out_path
from nas.study import keys

__all__ = ["Artifact", "fetch_artifact", "prepare_out_dir", "read_header"]


@dataclass(frozen=True)
class Artifact:
    """A fetched ``.dsz`` artifact and its (checked) header."""

    path: Path
    source: str  # "mlflow:<artifact path>", or the file it was copied from
    size_bytes: int
    meta: dict[str, Any]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The model's input, batch 1: ``(1, C, H, W)``."""
        spec = self.meta["spec"]
        return (1, int(spec["in_chans"]), int(spec["image_size"]), int(spec["image_size"]))


def prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` and prove a file can be written there."""
    check_out_path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise ConfigError(f"--out {out_dir} is not writable ({e.strerror or e})") from None


def fetch_artifact(
    client: Any,
    trial: TrialRun,
    out_dir: Path,
    *,
    uri: str,
    retrain: bool,
    say: Callable[[str], None],
) -> Artifact:
    """Copy the trial's artifact to ``out_dir`` (``searched.dsz`` when it will be retrained,
    else ``model.dsz``) and read its header.

    Raises:
        ConfigError: The trial has no artifact, or its header is not one this
            process can build (a user search space needs ``--plugin``).
    """
    import compress

    dst = out_dir / ("searched.dsz" if retrain else "model.dsz")
    if not retrain:
        (out_dir / "searched.dsz").unlink(missing_ok=True)  # left by an earlier --retrain-epochs
    source = _copy_artifact(client, trial, dst, uri)
    size = compress.size_bytes(dst)
    say(f"artifact {source} -> {dst.name} ({size:,} bytes)")
    recorded = trial.metrics.get("size_bytes")
    if recorded is not None and int(recorded) != size:
        say(f"warning: {dst.name} has {size:,} bytes, the run recorded {int(recorded):,}")
    return Artifact(dst, source, size, read_header(dst, source))


def read_header(path: Path, source: str) -> dict[str, Any]:
    """The artifact's header, refused unless its space is registered and its input known."""
    import compress
    from search_spaces import list_search_spaces

    try:
        meta = compress.read_meta(path)
        spec = meta["spec"]
        int(spec["in_chans"]), int(spec["image_size"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{source} is not a valid artifact: {one_line(e, 200)}") from None
    space = meta.get("space")
    registered = list_search_spaces()
    if space not in registered:
        raise ConfigError(
            f"{source}: its search space {space!r} is not registered (registered: "
            f"{', '.join(registered)}); a user search space needs --plugin MODULE"
        )
    return dict(meta)


def _copy_artifact(client: Any, trial: TrialRun, dst: Path, uri: str) -> str:
    """Copy the trial's ``.dsz`` to ``dst``; returns where it came from."""
    logged = _logged_artifact(client, trial.run_id)
    if logged:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copyfile(client.download_artifacts(trial.run_id, logged, tmp), dst)
        return f"mlflow:{logged}"
    expected = trial.metrics.get("size_bytes")
    for path in _search_outputs(client, trial, uri):
        if path.is_file() and (expected is None or path.stat().st_size == int(expected)):
            shutil.copyfile(path, dst)
            return str(path)
    raise ConfigError(
        f"run {trial.run_id} (trial {trial.run.data.tags.get(keys.TAG_TRIAL)}) has no .dsz "
        "artifact in MLflow and none is left where the search wrote it; only trained "
        "trials have one (front members are logged)"
    )


def _logged_artifact(client: Any, run_id: str) -> str | None:
    try:
        logged = [a.path for a in client.list_artifacts(run_id) if a.path.endswith(".dsz")]
    except Exception:
        logged = []
    return logged[0] if logged else None


def _search_outputs(client: Any, trial: TrialRun, uri: str) -> list[Path]:
    """Where the search may have left the trial's artifact, most specific first."""
    run = trial.run
    candidates = [
        Path(p) for p in (run.data.params.get("artifact"), run.data.tags.get("artifact")) if p
    ]
    number = run.data.tags.get(keys.TAG_TRIAL)
    if number is None or not number.isdigit():
        return candidates
    roots = []
    parent_params = client.get_run(trial.record.parent_run_id).data.params
    if parent_params.get("search.output_dir") not in (None, "null"):
        roots.append(Path(parent_params["search.output_dir"]).expanduser())
    if uri.startswith("sqlite:///"):
        roots.append(Path(uri[len("sqlite:///") :]).parent)
    roots.append(Path.cwd())
    name = f"trial_{int(number):05d}.dsz"
    return candidates + [root / "outputs" / trial.record.study_name / name for root in roots]
