"""Getting a model out of a search: one MLflow trial run -> a deployable folder.

:func:`export_run` takes the run of a trial (normally a front member, tag
``pareto=true``) and writes into ``out``:

- ``model.dsz``: the compressed artifact (downloaded from the run's MLflow artifacts,
  or, for a run that never joined the front, found where the search wrote it);
- ``model.onnx``: the deployable ONNX model, int8 (ONNX Runtime static QDQ, calibrated
  on the search's training data) only where that measured faster than fp32; both
  variants stay in ``onnx/fp32/`` and ``onnx/int8/``;
- ``metrics.json`` and ``README.md``: run, study, accuracies, sizes, latencies,
  architecture, compression, and the ONNX models' agreement with ``model.dsz``.

The data come from the search's own config (its parent run's ``config.yaml``, or for
older searches its flattened params), split with the search's seed, so the test
split is the same held-out one the search never selected on.

Bad input (an unknown run, an unreachable tracking server, a run without an
artifact, an unwritable folder) raises :class:`nas.config._schema.ConfigError` with one line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nas.config import ConfigError, DatasetConfig

__all__ = ["ExportResult", "configs_from_params", "default_tracking_uri", "export_run"]

_CALIBRATION_SAMPLES = 256
_AGREEMENT_FLOOR = 0.99  # fp32 ONNX vs model.dsz predictions on the test split


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else the database a search launched here writes."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return env or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def configs_from_params(params: Mapping[str, Any], input_shape: tuple[int, ...]) -> list[Any]:
    """The ``compress`` configs of an artifact header's ``meta["compression"]``, in apply order.

    One mapping for search and export alike: :func:`nas.pipeline._candidate.compression_configs`.
    """
    from nas.pipeline import compression_configs

    return compression_configs(dict(params), tuple(input_shape))


# -- what the search recorded -------------------------------------------------------------


@dataclass
class SearchRecord:
    """What export needs of the search a trial belongs to."""

    study_name: str
    parent_run_id: str
    dataset: DatasetConfig
    seed: int
    train: dict[str, Any]
    finetune_epochs: int
    finetune_lr: float
    hw: dict[str, Any] | None
    source: str  # "config.yaml" or "params"
    config: dict[str, Any] | None = None  # the search's whole config, from config.yaml


@dataclass
class ExportResult:
    out: Path
    metrics: dict[str, Any] = field(default_factory=dict)


def export_run(
    run_id: str,
    out: str | os.PathLike[str],
    *,
    tracking_uri: str | None = None,
    retrain_epochs: int = 0,
    trial: int | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export the trial run ``run_id`` (or trial ``trial`` of the search ``run_id``) to ``out``.

    Args:
        retrain_epochs: When > 0, first retrain the candidate from scratch for this
            many epochs with the search's training settings, compress it the same
            way, fine-tune, and export that instead.
        threads: torch threads (default: the search's ``train.threads``).
        log: Progress sink (default: one line each to stderr).

    Raises:
        ConfigError: One line, for anything the user's input got wrong.
    """
    say = log or (lambda msg: print(f"export: {msg}", file=sys.stderr, flush=True))
    uri = tracking_uri or default_tracking_uri()
    out_dir = Path(out).expanduser().resolve()
    if retrain_epochs < 0:
        raise ConfigError(f"--retrain-epochs={retrain_epochs} must be >= 0")
    _check_out_path(out_dir)

    client = _connect(uri)
    run = _resolve_run(client, run_id, trial, uri)
    rid = run.info.run_id
    tags, metrics = dict(run.data.tags), dict(run.data.metrics)
    number = int(tags.get("nas.trial", "-1"))
    if tags.get("pareto") != "true":
        say(f"warning: run {rid} (trial {number}) is not on the search's Pareto front")
    parent_id = tags.get("mlflow.parentRunId")
    if not parent_id:
        raise ConfigError(f"run {rid} has no parent search run (tag mlflow.parentRunId)")
    record = _search_record(client, parent_id)
    _check_writable(out_dir)
    searched = out_dir / ("searched.dsz" if retrain_epochs else "model.dsz")
    if not retrain_epochs:
        (out_dir / "searched.dsz").unlink(missing_ok=True)  # left by an earlier --retrain-epochs
    source = _fetch_artifact(client, run, record, searched, uri)
    import compress

    size = compress.size_bytes(searched)
    say(f"artifact {source} -> {searched.name} ({size:,} bytes)")
    if "size_bytes" in metrics and int(metrics["size_bytes"]) != size:
        say(
            f"warning: {searched.name} has {size:,} bytes, the run recorded "
            f"{int(metrics['size_bytes']):,}"
        )

    import torch

    torch.set_num_threads(int(threads or record.train.get("threads") or 1))
    from nas.pipeline._data import load_splits

    say(f"data: {record.dataset.name} (seed {record.seed}, config from {record.source})")
    splits = load_splits(record.dataset, seed=record.seed)
    try:
        meta = compress.read_meta(searched)
    except ValueError as e:
        raise ConfigError(f"{source} is not a valid artifact: {_one_line(e)}") from None
    input_shape = (
        1,
        int(meta["spec"]["in_chans"]),
        int(meta["spec"]["image_size"]),
        int(meta["spec"]["image_size"]),
    )

    try:
        scored = _score_artifact(searched, splits)
    except ValueError as e:  # e.g. a user's search space whose --plugin was not given
        raise ConfigError(f"{_one_line(e)} (a user search space needs --plugin MODULE)") from None
    if "val_accuracy" in metrics and abs(scored["val_accuracy"] - metrics["val_accuracy"]) > 1e-6:
        say(
            f"warning: val accuracy {scored['val_accuracy']:.4f} differs from the run's "
            f"{metrics['val_accuracy']:.4f}; is the data the search's?"
        )
    final_path, final = searched, scored
    retrain: dict[str, Any] | None = None
    if retrain_epochs:
        final_path = out_dir / "model.dsz"
        retrain = _retrain(
            meta, record, splits, number, retrain_epochs, final_path, input_shape, say
        )
        final = _score_artifact(final_path, splits)
        retrain.update(
            before={k: scored[k] for k in ("val_accuracy", "test_accuracy")},
            after={k: final[k] for k in ("val_accuracy", "test_accuracy")},
            size_bytes_before=size,
            size_bytes_after=compress.size_bytes(final_path),
        )
        say(
            f"retrained: val {scored['val_accuracy']:.4f} -> {final['val_accuracy']:.4f}, "
            f"test {scored['test_accuracy']:.4f} -> {final['test_accuracy']:.4f}"
        )

    latency_threads = int((record.hw or {}).get("threads") or 1)
    onnx = _export_onnx(
        final_path, final, splits, out_dir, input_shape, record.seed, latency_threads, say
    )
    norm = _normalization(record.dataset, splits)

    result: dict[str, Any] = {
        "run_id": rid,
        "parent_run_id": parent_id,
        "study_name": record.study_name,
        "trial": number,
        "pareto": tags.get("pareto") == "true",
        "tracking_uri": uri,
        "artifact_source": source,
        "config_source": record.source,
        "search": {
            "val_accuracy": metrics.get("val_accuracy"),
            "test_accuracy": metrics.get("test_accuracy"),
            "size_bytes": metrics.get("size_bytes"),
            "latency_ms": metrics.get("latency_ms"),
            "latency_kind": _latency_kind(record.hw),
            "peak_memory_bytes": metrics.get("peak_memory_bytes"),
            "params": metrics.get("params"),
            "nonzero_params": metrics.get("nonzero_params"),
            "macs": metrics.get("macs"),
        },
        "dsz": {
            "file": final_path.name,
            "size_bytes": compress.size_bytes(final_path),
            "val_accuracy": final["val_accuracy"],
            "test_accuracy": final["test_accuracy"],
        },
        "retrain": retrain,
        "onnx": onnx,
        "arch": meta.get("arch"),
        "compression": meta.get("compression"),
        "space": meta.get("space"),
        "dataset": asdict(record.dataset),
        "seed": record.seed,
        "input": {"shape": list(input_shape), **norm},
    }
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out_dir / "README.md").write_text(_readme(result))
    say(f"wrote {out_dir} (model.dsz, model.onnx = {onnx['chosen']}, README.md, metrics.json)")
    return ExportResult(out_dir, result)


# -- MLflow ---------------------------------------------------------------------------------


def _connect(uri: str) -> Any:
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
    elif uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).read()
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise ConfigError(f"--tracking-uri {uri} is unreachable ({_one_line(e)})") from None
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient(tracking_uri=uri)
    except Exception as e:
        raise ConfigError(f"--tracking-uri {uri} cannot be used: {_one_line(e)}") from None


def _resolve_run(client: Any, run_id: str, trial: int | None, uri: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as e:
        if "RESOURCE_DOES_NOT_EXIST" in str(e.error_code) or "not found" in str(e).lower():
            raise ConfigError(f"run {run_id!r} not found at {uri}") from None
        raise ConfigError(f"run {run_id!r}: {_one_line(e)}") from None
    except Exception as e:  # a server that went away, a broken database
        raise ConfigError(f"run {run_id!r} cannot be read from {uri}: {_one_line(e)}") from None
    role = run.data.tags.get("nas.role")
    if role == "search":
        children = client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'",
            max_results=5000,
        )
        if trial is None:
            front = sorted(
                int(r.data.tags.get("nas.trial", -1))
                for r in children
                if r.data.tags.get("pareto") == "true"
            )
            raise ConfigError(
                f"run {run_id} is a search (study {run.data.tags.get('nas.study_name')}), not a "
                f"trial; pick one with --trial N (front: {', '.join(map(str, front)) or 'empty'})"
            )
        match = [r for r in children if r.data.tags.get("nas.trial") == str(trial)]
        if not match:
            raise ConfigError(f"search run {run_id} has no trial {trial}")
        return match[0]
    if trial is not None:
        raise ConfigError(f"--trial {trial} needs a search's parent run id; {run_id} is a trial")
    if role != "trial":
        raise ConfigError(f"run {run_id} is not a trial of a nas.search study (tag nas.role)")
    return run


def _search_record(client: Any, parent_id: str) -> SearchRecord:
    from omegaconf import OmegaConf

    parent = client.get_run(parent_id)
    study = parent.data.tags.get("nas.study_name", "")
    names = {a.path for a in client.list_artifacts(parent_id)}
    if "config.yaml" in names:
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(parent_id, "config.yaml", tmp)
            cfg: dict[str, Any] = OmegaConf.to_container(OmegaConf.load(local))  # type: ignore[assignment]
        source = "config.yaml"
    else:
        cfg = _config_from_params(dict(parent.data.params))
        source = "params"
    try:
        data = OmegaConf.merge(OmegaConf.structured(DatasetConfig), cfg["dataset"])
        dataset = DatasetConfig(**OmegaConf.to_container(data))  # type: ignore[arg-type]
    except Exception as e:
        raise ConfigError(
            f"search run {parent_id}: its dataset config is unusable ({_one_line(e)})"
        ) from None
    comp = cfg.get("compress") or {}
    hw = cfg.get("hw")
    return SearchRecord(
        study_name=study or str(parent.data.params.get("study_name", "")),
        parent_run_id=parent_id,
        dataset=dataset,
        seed=int((cfg.get("search") or {}).get("seed", 0)),
        train=dict(cfg.get("train") or {}),
        finetune_epochs=int(comp.get("finetune_epochs", 1)),
        finetune_lr=float(comp.get("finetune_lr", 0.002)),
        hw=dict(hw) if isinstance(hw, Mapping) else None,
        source=source,
        config=cfg if source == "config.yaml" else None,
    )


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
            n: _param_value(params[f"{section}.{n}"]) for n in names if f"{section}.{n}" in params
        }
        cfg[section] = found or None
    if "dataset.name" not in params:
        raise ConfigError("the search run has neither config.yaml nor dataset.* params")
    return cfg


def _param_value(s: str) -> Any:
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


def _fetch_artifact(client: Any, run: Any, record: SearchRecord, dst: Path, uri: str) -> str:
    """Copy the run's ``.dsz`` to ``dst``; returns where it came from."""
    rid = run.info.run_id
    try:
        logged = [a.path for a in client.list_artifacts(rid) if a.path.endswith(".dsz")]
    except Exception:
        logged = []
    if logged:
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(rid, logged[0], tmp)
            shutil.copyfile(local, dst)
        return f"mlflow:{logged[0]}"
    # Not logged (it never joined the front): where the search wrote it, if still there.
    params = dict(run.data.params)
    number = run.data.tags.get("nas.trial")
    candidates = [Path(p) for p in (params.get("artifact"), run.data.tags.get("artifact")) if p]
    if number is not None and number.isdigit():
        roots = []
        parent_params = client.get_run(record.parent_run_id).data.params
        if parent_params.get("search.output_dir") not in (None, "null"):
            roots.append(Path(parent_params["search.output_dir"]).expanduser())
        if uri.startswith("sqlite:///"):
            roots.append(Path(uri[len("sqlite:///") :]).parent)
        roots.append(Path.cwd())
        name = f"trial_{int(number):05d}.dsz"
        candidates += [root / "outputs" / record.study_name / name for root in roots]
    expected = run.data.metrics.get("size_bytes")
    for path in candidates:
        if path.is_file() and (expected is None or path.stat().st_size == int(expected)):
            shutil.copyfile(path, dst)
            return str(path)
    raise ConfigError(
        f"run {rid} (trial {number}) has no .dsz artifact in MLflow and none is left where "
        "the search wrote it; only trained trials have one (front members are logged)"
    )


# -- models -----------------------------------------------------------------------------------


def _score_artifact(path: Path, splits: Any) -> dict[str, Any]:
    """The artifact, loaded as a fresh process would, and its predictions on val and test."""
    from nas.pipeline._evaluator import load_artifact
    from nas.pipeline._train import predict

    model = load_artifact(path)
    out: dict[str, Any] = {"model": model}
    for name in ("val", "test"):
        x, y = getattr(splits, f"x_{name}"), getattr(splits, f"y_{name}")
        pred = predict(model, x)
        out[f"{name}_pred"] = pred
        out[f"{name}_accuracy"] = float((pred == y).float().mean())
    return out


def _search_teacher(
    record: SearchRecord,
    space: Any,
    space_cfg: dict[str, Any],
    splits: Any,
    out_dir: Path,
    say: Callable[[str], None],
) -> Any:
    """The search's distillation teacher, or None without the search's config.

    It is the one the search used: loaded from the search's teacher cache when that is
    on this machine, else trained the same way (same data, budget and seed) and cached
    under ``out_dir/teachers``.
    """
    if record.config is None:
        return None
    from omegaconf import OmegaConf

    from nas.pipeline._teacher import make_teacher

    cfg = OmegaConf.create(record.config)
    searched = Path(str(OmegaConf.select(cfg, "search.output_dir", default="."))).expanduser()
    cache = searched / "outputs" / "teachers"
    if not cache.is_dir():
        cache = out_dir / "teachers"
    source = make_teacher(cfg, space=space, space_cfg=space_cfg, splits=splits, cache_dir=cache)
    if source is None:
        return None
    say(f"teacher: {source.describe()}, cache {cache}")
    return source.get()


def _retrain(
    meta: dict[str, Any],
    record: SearchRecord,
    splits: Any,
    number: int,
    epochs: int,
    dst: Path,
    input_shape: tuple[int, ...],
    say: Callable[[str], None],
) -> dict[str, Any]:
    import torch
    from tqdm.auto import tqdm

    import compress
    from nas.pipeline._data import Batches
    from nas.pipeline._train import train
    from search_spaces import build_from_meta, get_search_space, search_space_config

    name = meta["space"]
    space = get_search_space(name, search_space_config(name)(**meta["space_cfg"]))
    t = record.train
    lr = float(t.get("lr") or space.default_lr)
    comp = dict(meta.get("compression") or {})
    loss_fn, distilled = None, None
    if comp.get("distill"):
        teacher = _search_teacher(record, space, meta["space_cfg"], splits, dst.parent, say)
        if teacher is None:
            say(
                "warning: the candidate was distilled in the search, but the search run has "
                "no config.yaml to rebuild its teacher from; retraining uses cross-entropy"
            )
        else:
            from nas.pipeline import distiller

            temperature, alpha = float(comp["distill_temperature"]), float(comp["distill_alpha"])
            loss_fn = distiller(teacher, temperature=temperature, alpha=alpha)
            distilled = {"temperature": temperature, "alpha": alpha}
            say(f"distilling from the search's teacher (T={temperature:g}, alpha={alpha:g})")
    torch.manual_seed(record.seed + max(number, 0))
    model = build_from_meta(meta)
    batch_size = int(t.get("batch_size") or 128)
    batches = Batches(
        splits.x_train,
        splits.y_train,
        batch_size=batch_size,
        shuffle=True,
        seed=record.seed + max(number, 0),
    )
    start = time.monotonic()
    say(f"retraining trial {number}: {epochs} epochs at lr {lr:g}, batch {batch_size}")
    with tqdm(
        total=epochs, desc="retrain", unit="epoch", file=sys.stderr, disable=epochs < 3
    ) as bar:

        def tick(_epoch: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")

        train(
            model,
            batches,
            epochs=epochs,
            lr=lr,
            weight_decay=float(t.get("weight_decay") or 0.0),
            label_smoothing=float(t.get("label_smoothing") or 0.0),
            loss_fn=loss_fn,
            on_epoch=tick,
        )
    cfgs = configs_from_params(comp, input_shape)
    model = compress.apply(model, cfgs) or model
    if cfgs and record.finetune_epochs > 0:
        say(
            f"fine-tuning compressed model: {record.finetune_epochs} epochs at lr "
            f"{record.finetune_lr:g}"
        )
        train(
            model,
            batches,
            epochs=record.finetune_epochs,
            lr=record.finetune_lr,
            weight_decay=0.0,
            loss_fn=loss_fn,
        )
    new_meta = {**meta, "retrained": {"epochs": epochs, "from_trial": number}}
    compress.export(model, dst, meta=new_meta)
    return {
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "finetune_epochs": record.finetune_epochs if cfgs else 0,
        "finetune_lr": record.finetune_lr,
        "configs": [repr(c) for c in cfgs],
        "distilled": distilled,
        "seconds": round(time.monotonic() - start, 2),
    }


def _export_onnx(
    dsz: Path,
    scored: dict[str, Any],
    splits: Any,
    out_dir: Path,
    input_shape: tuple[int, ...],
    seed: int,
    threads: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Both ONNX variants, measured and checked against the ``.dsz`` model; picks one."""
    import torch

    import compress

    model = scored["model"]
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(splits.x_train), generator=g)[:_CALIBRATION_SAMPLES]
    calibration = splits.x_train[pick]
    variants: dict[str, dict[str, Any]] = {}
    for kind in ("fp32", "int8"):
        folder = out_dir / "onnx" / kind
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        path = folder / "model.onnx"
        say(
            f"onnx {kind}: exporting"
            + (
                f" (static QDQ, calibrated on {len(calibration)} training images)"
                if kind == "int8"
                else ""
            )
        )
        try:
            n = compress.export_onnx(
                model,
                path,
                input_shape=input_shape,
                int8=kind == "int8",
                calibration=calibration if kind == "int8" else None,
            )
        except Exception as e:  # int8 is optional: a model ORT cannot quantize stays fp32
            if kind == "fp32":
                raise
            say(f"onnx int8: failed ({_one_line(e)}); keeping fp32")
            variants[kind] = {"error": f"{type(e).__name__}: {_one_line(e)}"}
            shutil.rmtree(folder)
            continue
        info: dict[str, Any] = {"file": f"onnx/{kind}/model.onnx", "size_bytes": n}
        test_pred = _onnx_predict(path, splits.x_test, threads)
        info["test_accuracy"] = float((test_pred == splits.y_test).float().mean())
        info["agreement_with_dsz"] = float((test_pred == scored["test_pred"]).float().mean())
        if kind == "int8":
            info["int8_mac_share"] = compress.int8_mac_share(path)
        variants[kind] = info
    # Latency: alternate the variants and keep each one's best median, so a noisy moment
    # of a shared machine does not decide the choice.
    for _ in range(2):
        for info in variants.values():
            if "error" in info:
                continue
            ms, spread = compress.measure_onnx_latency_ms(
                out_dir / info["file"], input_shape, threads=threads, warmup=20, repeats=100
            )
            if ms < info.get("latency_ms", math.inf):
                info["latency_ms"], info["latency_spread"] = ms, spread
    fp32, int8 = variants["fp32"], variants.get("int8", {})
    chosen = "int8" if "latency_ms" in int8 and int8["latency_ms"] < fp32["latency_ms"] else "fp32"
    for kind, info in variants.items():
        if "latency_ms" in info:
            say(
                f"onnx {kind}: {info['size_bytes']:,} bytes, {info['latency_ms']:.4f} ms "
                f"(batch 1, {threads} thread), test accuracy {info['test_accuracy']:.4f}, "
                f"agreement with model.dsz {info['agreement_with_dsz']:.4f}"
            )
    if fp32["agreement_with_dsz"] < _AGREEMENT_FLOOR:
        say(
            f"warning: the fp32 ONNX model agrees with model.dsz on only "
            f"{fp32['agreement_with_dsz']:.4f} of the test split"
        )
    src = out_dir / "onnx" / chosen
    for stale in (out_dir / "model.onnx", out_dir / "model.onnx.data"):
        stale.unlink(missing_ok=True)
    for f in src.iterdir():  # model.onnx and its external data, if any, keep their names
        shutil.copyfile(f, out_dir / f.name)
    return {
        "chosen": chosen,
        "file": "model.onnx",
        "size_bytes": compress.size_bytes(out_dir / "model.onnx"),
        "latency_threads": threads,
        "variants": variants,
    }


def _onnx_predict(path: Path, x: Any, threads: int) -> Any:
    """Predicted classes of ONNX Runtime on each row of ``x`` (the graph has batch 1)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(os.fspath(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    data = x.numpy().astype(np.float32)
    preds = [int(sess.run(None, {name: data[i : i + 1]})[0].argmax(1)[0]) for i in range(len(data))]
    return torch.tensor(preds, dtype=torch.long)


def _normalization(dataset: DatasetConfig, splits: Any) -> dict[str, Any]:
    """The input normalization ``(x - mean) / std`` the model expects, when recoverable.

    ``load_splits`` normalizes with the mean and std of the training split's pixels
    (the loader's [0, 1] scale). Both are recovered by matching the sorted pixel
    values of the loader's data with those of the splits that cover it.
    """
    import numpy as np
    import torch

    from nas.pipeline._data import get_loader

    try:
        x, _, fixed = get_loader(dataset.name)(dataset)
        parts = [splits.x_train, splits.x_val] + ([splits.x_test] if fixed is None else [])
        if sum(len(p) for p in parts) != len(x) or x.size > 50_000_000:
            return {"mean": None, "std": None}
        raw = np.sort(np.asarray(x, dtype=np.float64).ravel())
        norm = np.sort(torch.cat(parts).numpy().astype(np.float64).ravel())
        std, mean = np.polyfit(norm, raw, 1)
        if np.max(np.abs(mean + std * norm - raw)) > 1e-4:
            return {"mean": None, "std": None}
        return {"mean": round(float(mean), 6), "std": round(float(std), 6)}
    except Exception:
        return {"mean": None, "std": None}


# -- the folder ---------------------------------------------------------------------------------


def _check_out_path(out_dir: Path) -> None:
    """Refuse an ``--out`` that cannot be a folder, before anything is read or written."""
    probe = out_dir
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--out {out_dir}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out_dir} is not writable (no write permission on {probe})")


def _check_writable(out_dir: Path) -> None:
    _check_out_path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise ConfigError(f"--out {out_dir} is not writable ({e.strerror or e})") from None


def _latency_kind(hw: dict[str, Any] | None) -> str:
    if not hw:
        return "none (the search had no hw profile)"
    name = hw.get("name", "?")
    desc = f" ({hw['description']})" if hw.get("description") else ""
    if hw.get("latency") == "measure":
        return f"measured on the search's host, profile {name}{desc}"
    if hw.get("latency") == "predict":
        return f"predicted for {name}{desc}"
    return f"not estimated (profile {name})"


def _fmt(v: Any, spec: str = ".4f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and spec == ",":
        return f"{int(v):,}"
    return format(v, spec)


def _readme(r: dict[str, Any]) -> str:
    s, d, o = r["search"], r["dsz"], r["onnx"]
    fp32, int8 = o["variants"]["fp32"], o["variants"].get("int8", {})
    lines = [
        f"# Trial {r['trial']} of {r['study_name']}",
        "",
        f"Exported by `python -m nas.export {r['run_id']}` from MLflow run `{r['run_id']}` "
        f"(search run `{r['parent_run_id']}`, {r['tracking_uri']}); "
        + ("on the Pareto front." if r["pareto"] else "**not** on the Pareto front."),
        "",
        "## In the search",
        "",
        "| metric | value |",
        "|---|---|",
        f"| val_accuracy | {_fmt(s['val_accuracy'])} |",
        f"| test_accuracy | {_fmt(s['test_accuracy'])} |",
        f"| size_bytes | {_fmt(s['size_bytes'], ',')} |",
        f"| latency_ms | {_fmt(s['latency_ms'])} ({s['latency_kind']}) |",
        f"| peak_memory_bytes | {_fmt(s['peak_memory_bytes'], ',')} |",
        f"| params / nonzero | {_fmt(s['params'], ',')} / {_fmt(s['nonzero_params'], ',')} |",
        f"| MACs | {_fmt(s['macs'], ',')} |",
        "",
        f"Space `{r['space']}`, architecture `{json.dumps(r['arch'])}`; "
        f"compression `{json.dumps(r['compression'])}`. Data: `{r['dataset']['name']}`, "
        f"seed {r['seed']} (the search's split; test was never selected on).",
        "",
    ]
    if r["retrain"]:
        t = r["retrain"]
        lines += [
            f"## Retrained ({t['epochs']} epochs, lr {t['lr']:g}, then "
            f"{t['finetune_epochs']} epoch(s) of compressed fine-tuning)",
            "",
            "| | val_accuracy | test_accuracy | size_bytes |",
            "|---|---|---|---|",
            f"| searched (`searched.dsz`) | {_fmt(t['before']['val_accuracy'])} | "
            f"{_fmt(t['before']['test_accuracy'])} | {t['size_bytes_before']:,} |",
            f"| retrained (`model.dsz`) | {_fmt(t['after']['val_accuracy'])} | "
            f"{_fmt(t['after']['test_accuracy'])} | {t['size_bytes_after']:,} |",
            "",
        ]
    lines += [
        "## Files",
        "",
        "| file | bytes | test_accuracy | agreement with model.dsz | latency_ms (host, "
        f"batch 1, {o['latency_threads']} thread) |",
        "|---|---|---|---|---|",
        f"| `model.dsz` (compressed artifact; `compress.load`) | {d['size_bytes']:,} | "
        f"{_fmt(d['test_accuracy'])} | 1 | - |",
    ]
    for kind, info in (("fp32", fp32), ("int8", int8)):
        if "error" in info:
            lines.append(f"| `onnx/{kind}/model.onnx` | failed: {info['error'][:120]} | | | |")
        elif info:
            extra = (
                f", {info['int8_mac_share']:.0%} of MACs in int8 kernels" if kind == "int8" else ""
            )
            lines.append(
                f"| `onnx/{kind}/model.onnx` ({kind}{extra}) | {info['size_bytes']:,} | "
                f"{_fmt(info['test_accuracy'])} | {_fmt(info['agreement_with_dsz'])} | "
                f"{_fmt(info.get('latency_ms'))} "
                f"(IQR/median {_fmt(info.get('latency_spread'), '.2f')}) |"
            )
    why = (
        "int8 measured faster than fp32"
        if o["chosen"] == "int8"
        else "int8 was not faster than fp32"
        if "latency_ms" in int8
        else "int8 export failed"
    )
    lines += [
        "",
        f"`model.onnx` is the **{o['chosen']}** variant ({why}); {o['size_bytes']:,} bytes, "
        "every file it needs counted. ONNX stores float (or int8) weights, so it is larger "
        "than `model.dsz`, which packs the k-bit codes and sparsity. Latencies are ONNX "
        "Runtime CPU on the exporting host (median of 100 after 20 warm-up runs), not the "
        "search's device figure above.",
        "",
        "## Input",
        "",
        f"`input`: float32 `{r['input']['shape']}` (NCHW, batch 1), output `output`: logits.",
    ]
    mean, std = r["input"].get("mean"), r["input"].get("std")
    if mean is not None:
        lines.append(
            f"Pixels on the data loader's [0, 1] scale, then `(x - {mean}) / {std}` "
            "(the training split's mean and std)."
        )
    else:
        lines.append(
            "Pixels normalized as `nas.pipeline._data.load_splits` does (mean and std of the "
            "training split)."
        )
    lines += [
        "",
        "```python",
        "import onnxruntime as ort",
        'sess = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])',
        'logits = sess.run(None, {"input": x})[0]   # x: np.float32, shape as above',
        "```",
        "",
    ]
    return "\n".join(lines)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]
