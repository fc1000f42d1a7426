"""The table of ``scripts/bench_compress.py`` (Deep Compression-style), from its record.

Imported as ``from _compress_table import ...`` (``scripts/`` is first on ``sys.path``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["markdown"]


def markdown(
    rows: list[dict[str, Any]], latency: list[dict[str, Any]], meta: dict[str, Any]
) -> str:
    lines = [
        "Deep Compression-style table on mnist5k (every row of a model: the same "
        "epochs, dense + fine-tuning; accuracy of the artifact loaded back, mean +- "
        "std over seeds):",
        "",
        "| model | method | size_bytes | ratio | test_accuracy | std | val_accuracy | "
        "sparsity | bits | seeds | epochs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['method']} | {r['size_bytes']:,} | "
            f"{r['ratio']:.1f}x | {r['test_accuracy']:.4f} | "
            f"{r['test_accuracy_std']:.4f} | {r['val_accuracy']:.4f} | "
            f"{r['sparsity']:.3f} | {r['bits']} | {r['seeds']} | {r['epochs']} |"
        )
    lines += [
        "",
        "ONNX Runtime 1 thread, batch 1, 224 px, random weights; ms = median "
        "thread CPU time over rounds (p10-p90); speedup vs dense fp32 (p10-p90 over "
        "rounds):",
        "",
        "| model | variant | ms | p10-p90 | wall ms | speedup | speedup p10-p90 | "
        "vs same fp32 | MACs | int8 MAC share | top-1 agree | max logit err |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in latency:
        err = (
            f"{e['max_abs_logit_diff']:.2g} / {e['max_abs_logit']:.2g}"
            if "max_abs_logit_diff" in e
            else "-"
        )
        agree = f"{e['top1_agreement']:.2f}" if "top1_agreement" in e else "-"
        lo, hi = e["speedup_p10_p90"]
        lines.append(
            f"| {e['model']} | {e['variant']} | {e['ms']:.2f} | {e['p10_ms']:.2f}-"
            f"{e['p90_ms']:.2f} | {e['wall_ms']:.2f} | {e['speedup']:.2f}x | {lo:.2f}-{hi:.2f} "
            f"| {e['speedup_vs_same_fp32']:.2f}x | {e['macs'] / 1e6:.1f}M | "
            f"{e['int8_mac_share']:.1%} | {agree} | {err} |"
        )
    la = meta["load_average"]
    # The benchmark itself keeps one CPU busy; more than that is someone else's load.
    busy = la[0] > 1.5 or la[1] > 1.5
    lines += [
        "",
        f"{meta['seconds']:.0f} s; load average {la[0]:.1f} / {la[1]:.1f} / "
        f"{la[2]:.1f} on {meta['cpus']} CPUs at the end"
        + (" (other jobs shared the machine: re-measure on a quiet one)." if busy else "."),
    ]
    if meta.get("only"):
        lines.append(
            f"This run measured only the {meta['only']}; the other part is kept "
            "from the previous run of the same file."
        )
    return "\n".join(lines) + "\n"
