"""## Default search: the recorded default run's front, set against fp32 LeNet-5
(default_run.json, baseline_lenet.json)."""

from __future__ import annotations

from typing import Any

from ._format import (
    _int,
    _n,
    _opt,
    _pct,
    _table,
)
from ._records import DEFAULT_RUN, Bench


def section(b: Bench) -> list[str]:
    d = b.load(DEFAULT_RUN)
    base = _lenet5_baseline(b)
    # The LeNet-5 comparison only holds on the data the baseline was trained on.
    compare = d.get("dataset", base["dataset"]) == base["dataset"]
    trained = d["n_trials"] - d["n_infeasible"] - d["n_failed"]
    minutes, seconds = divmod(round(d["wall_seconds"]), 60)
    on = f" on `{d['dataset']}`" if d.get("dataset") else ""
    machine = f" on {d['machine']}" if d.get("machine") else ""
    timeout = f" within `search.timeout_s={d['timeout_s']}`" if "timeout_s" in d else ""
    epochs = ""
    if "train_epochs" in d and "finetune_epochs" in d:
        epochs = (
            f" ({_n(d['train_epochs'], 'epoch')}, then {_n(d['finetune_epochs'], 'epoch')} of"
            " masked, quantization-aware fine-tuning)"
        )
    failed = "none failed" if d["n_failed"] == 0 else f"{d['n_failed']} failed"
    hw = d.get("hw") or {}
    latency = "latency_ms"
    if hw.get("latency") == "predict":
        latency += f" ({hw.get('predictor', hw.get('name'))}, predicted)"
    elif hw.get("latency") == "measure":
        latency += " (measured on the host)"
    header = ["trial", "val_accuracy", "test_accuracy", "size_bytes", latency, "bits", "sparsity"]
    rows = [
        [
            str(r["trial"]),
            f"{r['val_accuracy']:.3f}",
            _opt(r.get("test_accuracy"), "{:.3f}"),
            _int(r["size_bytes"]),
            _opt(r.get("latency_ms"), "{:.3f}"),
            _opt(r.get("bits"), "{}"),
            _opt(r.get("sparsity"), "{:.2f}"),
        ]
        for r in d["front"]
    ]
    versus = _versus_lenet5(d, base, header, rows) if compare else ""
    ref = d.get("hv_reference")
    ref_text = (
        f" (reference: accuracy {ref['accuracy']}, {_int(ref['size_bytes'])} bytes)" if ref else ""
    )
    return [
        "## Default search",
        "",
        f"Figures from: {d.get('source', 'not recorded')}.",
        "",
        f"`{d['command']}`{on}, run from {d.get('where', 'an empty directory')}{machine}: "
        f"{minutes} min"
        f" {seconds} s wall time. It proposed {d['n_trials']} candidates{timeout}, rejected"
        f" {d['n_infeasible']} ({_pct(d['n_infeasible'] / d['n_trials'])}) before training for"
        f" breaking the budgets, {failed}, and fully trained {trained}{epochs}. The front,"
        " each member scored after loading its artifact in a fresh process (val selects;"
        " test was never used to select):",
        "",
        *_table(header, rows),
        "",
        f"Hypervolume {d['hypervolume']:.3f}{ref_text}.{versus}",
        "",
        "To refresh: run the command in an empty directory, then `python"
        " scripts/record_default_run.py DIR --command '...'` and `python"
        " scripts/make_results.py`.",
    ]


def _versus_lenet5(
    d: dict[str, Any], base: dict[str, Any], header: list[str], rows: list[list[str]]
) -> str:
    """Adds the columns that set each front member against fp32 LeNet-5; their note."""
    header += ["smaller than fp32 LeNet-5", "test vs LeNet-5 (points)"]
    for row, r in zip(rows, d["front"], strict=True):
        row.append(f"{base['size_bytes'] / r['size_bytes']:.0f}x")
        row.append(
            _opt(r.get("test_accuracy"), lambda t: f"{100 * (t - base['test_accuracy']):+.1f}")
        )
    return (
        " The last two columns set each member against the fp32 LeNet-5 of [fp32"
        f" baselines](#fp32-baselines) ({_int(base['size_bytes'])} bytes, test"
        f" {base['test_accuracy']:.3f}, trained with the search's own loop for"
        f" {_n(base['epochs'], 'epoch')} on the same split)."
    )


def _lenet5_baseline(b: Bench) -> dict[str, Any]:
    rows = b.load("baseline_lenet.json")["rows"]
    return next(r for r in rows if r["model"] == "LeNet-5")
