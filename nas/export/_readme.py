"""Write: the export's record, as ``metrics.json`` and as a ``README.md`` for people.

:func:`metrics_record` gathers everything into one dict (the ``metrics.json``
schema); :func:`readme` renders it, one function per section.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.config import DatasetConfig
    from nas.export._fetch import Artifact
    from nas.export._resolve import TrialRun
    from nas.pipeline import Splits

__all__ = ["metrics_record", "readme", "write_record"]

_SEARCH_METRICS = (
    "val_accuracy",
    "test_accuracy",
    "size_bytes",
    "latency_ms",
    "latency_kind",
    "peak_memory_bytes",
    "params",
    "nonzero_params",
    "macs",
)


def metrics_record(
    trial: TrialRun,
    artifact: Artifact,
    *,
    uri: str,
    dsz: dict[str, Any],
    retrain: dict[str, Any] | None,
    onnx: dict[str, Any],
    splits: Splits,
) -> dict[str, Any]:
    """The ``metrics.json`` of an export.

    Args:
        dsz: the final ``model.dsz``: ``file``, ``size_bytes``, ``val_accuracy``,
            ``test_accuracy``.
        retrain: what retraining did (None: the searched artifact is exported).
        onnx: :func:`nas.export._onnx.export_onnx`'s summary.
    """
    record, meta, m = trial.record, artifact.meta, trial.metrics
    search: dict[str, Any] = {k: m.get(k) for k in _SEARCH_METRICS}
    search["latency_kind"] = _latency_kind(record.hw)
    return {
        "run_id": trial.run_id,
        "parent_run_id": record.parent_run_id,
        "study_name": record.study_name,
        "trial": trial.number,
        "pareto": trial.pareto,
        "device": trial.device,
        "tracking_uri": uri,
        "artifact_source": artifact.source,
        "config_source": record.source,
        "search": search,
        "dsz": dsz,
        "retrain": retrain,
        "onnx": onnx,
        "arch": meta.get("arch"),
        "compression": meta.get("compression"),
        "space": meta.get("space"),
        "dataset": asdict(record.dataset),
        "seed": record.seed,
        "input": {
            "shape": list(artifact.input_shape),
            **_normalization(record.dataset, splits),
        },
    }


def write_record(out_dir: Path, r: dict[str, Any]) -> None:
    """Write ``metrics.json`` and ``README.md`` of the record ``r`` into ``out_dir``."""
    (out_dir / "metrics.json").write_text(json.dumps(r, indent=2, default=str) + "\n")
    (out_dir / "README.md").write_text(readme(r))


def readme(r: dict[str, Any]) -> str:
    """The ``README.md`` of the record ``r`` (:func:`metrics_record`)."""
    lines = [
        *_title(r),
        *_search_section(r),
        *_retrain_section(r),
        *_files_section(r),
        *_input_section(r),
    ]
    return "\n".join(lines)


# -- README sections ----------------------------------------------------------------------


def _title(r: dict[str, Any]) -> list[str]:
    return [
        f"# Trial {r['trial']} of {r['study_name']}",
        "",
        f"Exported by `python -m nas.export {r['run_id']}` from MLflow run `{r['run_id']}` "
        f"(search run `{r['parent_run_id']}`, {r['tracking_uri']}); "
        + (f"for device {r['device']}, " if r.get("device") else "")
        + ("on the Pareto front." if r["pareto"] else "**not** on the Pareto front."),
        "",
    ]


def _search_section(r: dict[str, Any]) -> list[str]:
    s = r["search"]
    return [
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


def _retrain_section(r: dict[str, Any]) -> list[str]:
    t = r["retrain"]
    if not t:
        return []
    before, after = t["before"], t["after"]
    return [
        f"## Retrained ({t['epochs']} epochs, lr {t['lr']:g}, then "
        f"{t['finetune_epochs']} epoch(s) of compressed fine-tuning)",
        "",
        "| | val_accuracy | test_accuracy | size_bytes |",
        "|---|---|---|---|",
        f"| searched (`searched.dsz`) | {_fmt(before['val_accuracy'])} | "
        f"{_fmt(before['test_accuracy'])} | {t['size_bytes_before']:,} |",
        f"| retrained (`model.dsz`) | {_fmt(after['val_accuracy'])} | "
        f"{_fmt(after['test_accuracy'])} | {t['size_bytes_after']:,} |",
        "",
    ]


def _files_section(r: dict[str, Any]) -> list[str]:
    d, o = r["dsz"], r["onnx"]
    int8 = o["variants"].get("int8", {})
    lines = [
        "## Files",
        "",
        "| file | bytes | test_accuracy | agreement with model.dsz | latency_ms (host, "
        f"batch 1, {o['latency_threads']} thread) |",
        "|---|---|---|---|---|",
        f"| `model.dsz` (compressed artifact; `compress.load`) | {d['size_bytes']:,} | "
        f"{_fmt(d['test_accuracy'])} | 1 | - |",
    ]
    for kind, info in (("fp32", o["variants"]["fp32"]), ("int8", int8)):
        lines += _onnx_row(kind, info)
    why = (
        "int8 measured faster than fp32"
        if o["chosen"] == "int8"
        else "int8 was not faster than fp32"
        if "latency_ms" in int8
        else "int8 export failed"
    )
    return lines + [
        "",
        f"`model.onnx` is the **{o['chosen']}** variant ({why}); {o['size_bytes']:,} bytes, "
        "every file it needs counted. ONNX stores float (or int8) weights, so it is larger "
        "than `model.dsz`, which packs the k-bit codes and sparsity. Latencies are ONNX "
        "Runtime CPU on the exporting host (median of 100 after 20 warm-up runs), not the "
        "search's device figure above.",
        "",
    ]


def _onnx_row(kind: str, info: dict[str, Any]) -> list[str]:
    if "error" in info:
        return [f"| `onnx/{kind}/model.onnx` | failed: {info['error'][:120]} | | | |"]
    if not info:
        return []
    extra = f", {info['int8_mac_share']:.0%} of MACs in int8 kernels" if kind == "int8" else ""
    return [
        f"| `onnx/{kind}/model.onnx` ({kind}{extra}) | {info['size_bytes']:,} | "
        f"{_fmt(info['test_accuracy'])} | {_fmt(info['agreement_with_dsz'])} | "
        f"{_fmt(info.get('latency_ms'))} "
        f"(IQR/median {_fmt(info.get('latency_spread'), '.2f')}) |"
    ]


def _input_section(r: dict[str, Any]) -> list[str]:
    mean, std = r["input"].get("mean"), r["input"].get("std")
    if mean is not None:
        how = (
            f"Pixels on the data loader's [0, 1] scale, then `(x - {mean}) / {std}` "
            "(the training split's mean and std)."
        )
    else:
        how = (
            "Pixels normalized as `nas.pipeline.load_splits` does (mean and std of the "
            "training split)."
        )
    return [
        "## Input",
        "",
        f"`input`: float32 `{r['input']['shape']}` (NCHW, batch 1), output `output`: logits.",
        how,
        "",
        "```python",
        "import onnxruntime as ort",
        'sess = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])',
        'logits = sess.run(None, {"input": x})[0]   # x: np.float32, shape as above',
        "```",
        "",
    ]


# -- values -------------------------------------------------------------------------------


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


def _normalization(dataset: DatasetConfig, splits: Splits) -> dict[str, Any]:
    """The input normalization ``(x - mean) / std`` the model expects: ``load_splits``
    normalizes by the training split's pixel mean and std (the loader's [0, 1] scale)."""
    del dataset  # kept for the call's shape: the splits carry their own statistics
    return {"mean": round(float(splits.mean), 6), "std": round(float(splits.std), 6)}
