"""## Compression benchmark: sizes and accuracy per recipe, then latency of pruning and int8
(compress.json); why int8 MobileNetV3 is slower is templates/compression_why_int8.md."""

from __future__ import annotations

from typing import Any

from ._format import (
    _int,
    _met,
    _pct,
    _pm,
    _sig,
    _span,
    _table,
    _template,
)
from ._records import Bench
from ._targets import TARGETS


def section(b: Bench) -> list[str]:
    d = b.load("compress.json")
    meta = d["meta"]
    recipes = meta["recipes"]
    any_recipe = next(iter(recipes.values()))
    bits = "/".join(str(r["bits"]) for r in sorted(recipes.values(), key=lambda r: r["bits"]))

    def method(r: dict[str, Any]) -> str:
        return {
            "fp32": "fp32",
            "pruned": f"pruned {_pct(r['sparsity'])}",
            "pruned+quantized": f"+ {r['bits']}-bit",
            "pruned+quantized+distilled": "+ distilled",
        }.get(r["method"], r["method"])

    rows = [
        [
            r["model"],
            method(r),
            _int(r["size_bytes"]),
            f"{r['ratio']:.1f}x",
            _pm(r["test_accuracy"], r["test_accuracy_std"], 4),
        ]
        for r in d["rows"]
    ]
    models = list(dict.fromkeys(r["model"] for r in d["rows"]))
    best = {
        m: max((r for r in d["rows"] if r["model"] == m), key=lambda r: r["ratio"]) for m in models
    }
    fp32 = {r["model"]: r for r in d["rows"] if r["method"] == "fp32"}
    target = TARGETS["deep_compression_ratio"]
    ratios = " and ".join(f"{m} {best[m]['ratio']:.1f}x" for m in models)
    deltas = " and ".join(
        f"{100 * (best[m]['test_accuracy'] - fp32[m]['test_accuracy']):+.2f}" for m in models
    )
    passed = sum(best[m]["ratio"] >= target for m in models)
    return [
        "## Compression benchmark",
        "",
        "    .venv/bin/python scripts/bench_compress.py --out docs/bench/compress.json [--quick]",
        "",
        f"Rows: {' and '.join(models)} on `mnist5k`, {len(meta['seeds'])} seeds. Every row of a"
        f" model gets the same budget: {meta['dense_epochs']} dense epochs, then"
        f" {meta['finetune_epochs']} more epochs of fine-tuning. Pruning is gradual (Zhu &"
        " Gupta cubic schedule, global magnitude; `compress.GradualPruner`),"
        f" quantization-aware training uses {bits}-bit fake quantization, and the distilled"
        f" rows learn from the seed's fp32 model (T={any_recipe['temperature']:g},"
        f" alpha={any_recipe['alpha']:g}). Accuracy is measured on the model loaded back from"
        " the `compress.export` artifact; sparsity and bits were chosen on val.",
        "",
        *_table(["model", "method", "size_bytes", "ratio", "test_accuracy (± std)"], rows),
        "",
        f"Against Deep Compression's {target:.0f}x on LeNets ({passed} of {len(models)} pass):"
        f" the smallest artifacts reach {ratios}, at {deltas} points of test accuracy against"
        " their fp32 rows.",
        "",
        *_compression_latency(d, b.load_optional(INT8)),
    ]


def _compression_latency(d: dict[str, Any], int8: dict[str, Any] | None) -> list[str]:
    meta = d["meta"]
    lat = {(r["model"], r["variant"]): r for r in d["latency"]}
    rows = _latency_rows(d)
    r18_pruned, mb_pruned = (
        lat["resnet18", "pruned-fp32"],
        lat["mobilenetv3_small_050", "pruned-fp32"],
    )
    r18_int8, mb_int8 = lat["resnet18", "dense-int8"], lat["mobilenetv3_small_050", "dense-int8"]
    t_pruned, t_r18 = TARGETS["pruned_speedup"], TARGETS["int8_speedup_resnet18"]
    t_mb = TARGETS["int8_speedup_mobilenetv3"]
    mb_verdict = (
        "met" if mb_int8["speedup"] >= t_mb else f"missed by {_pct(1 - mb_int8['speedup'] / t_mb)}"
    )
    pruned_macs = [r["mac_ratio"] for r in d["latency"] if "pruned" in r["variant"]]
    rerun = (
        f"`--only {meta['only']}` reran this part, load average {meta['load_average'][0]:.1f}"
        f" on {meta['cpus']} CPUs at the end. "
        if meta.get("only") == "latency"
        else ""
    )
    return [
        "### Latency of structured pruning and int8",
        "",
        f"{rerun}ONNX Runtime, {meta['ort_threads']} thread, one image per batch, random"
        " weights; ms is the median CPU time of the inference thread (p10-p90 over"
        " interleaved rounds); int8 is static QDQ with `OnnxInt8Config(rewrite=True)`;"
        ' "pruned" is `ChannelPruneConfig` with `round_to` as `scripts/bench_compress.py`'
        f" sets it ({_span(pruned_macs, _pct)}"
        " of the MACs):",
        "",
        *_table(
            [
                "model",
                "variant",
                "ms (p10-p90)",
                "speedup vs dense fp32 (p10-p90)",
                "MACs",
                "int8 MACs",
                "int8 vs fp32 top-1 agree",
            ],
            rows,
        ),
        "",
        f"Structured pruning to {_pct(r18_pruned['mac_ratio'])} of resnet18's MACs runs"
        f" {r18_pruned['speedup']:.2f}x faster (target {t_pruned}x,"
        f" {_met(r18_pruned['speedup'] >= t_pruned)}), and MobileNetV3 at"
        f" {_pct(mb_pruned['mac_ratio'])} {mb_pruned['speedup']:.2f}x. The kept widths are"
        " rounded (`round_to`) because ORT's blocked fp32 kernels handle odd widths barely"
        " faster than the full width.",
        "",
        f"int8 resnet18 is {r18_int8['speedup']:.2f}x faster than fp32 (target {t_r18:g}x,"
        f" {_met(r18_int8['speedup'] >= t_r18)}). int8 MobileNetV3 is"
        f" {'**not** faster' if mb_int8['speedup'] < 1 else 'faster'}:"
        f" {mb_int8['speedup']:.2f}x (target {t_mb:.1f}x, {mb_verdict}), with"
        f" {_pct(mb_int8['int8_mac_share'])} of its MACs in int8 kernels.",
        "",
        *_template("compression_why_int8", rewrites=_int8_rewrites(int8)),
    ]


INT8 = "int8.json"
INT8_CMD = ".venv/bin/python scripts/bench_int8.py --out docs/bench/int8.json"


def _int8_rewrites(d: dict[str, Any] | None) -> str:
    """What the int8 graph rewrites buy (scripts/bench_int8.py): one paragraph for the
    template, with its table, or what is not recorded yet."""
    if d is None:
        return (
            "What the rewrites buy is measured by `scripts/bench_int8.py` (int8 with and"
            " without them against fp32, and how far the int8 logits stray), and not yet"
            f" recorded: run `{INT8_CMD}` on an idle machine."
        )
    names = {"fp32": "fp32", "int8": "int8, rewritten", "int8-plain": "int8, no rewrites"}
    rows = [
        f"| {r['model']} | {names.get(r['variant'], r['variant'])} | {r['ms']:.2f} |"
        f" {r['speedup']:.2f}x | {_pct(r['int8_mac_share'])} |"
        f" {r.get('cosine', 1.0):.4f} | {_int(r['size_bytes'])} |"
        for r in d["latency"]
    ]
    return "\n".join([
        f"What the rewrites buy (`{INT8_CMD}`; ONNX Runtime, one thread, random weights,"
        f" median CPU time of the inference thread over {d['rounds']} interleaved rounds"
        f" of {d['repeats']} runs; cosine: the least similarity of int8 to fp32 logits on"
        " held-out inputs):",
        "",
        "| model | variant | ms | speedup vs fp32 | int8 MACs | cosine | bytes |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ])  # fmt: skip


def _latency_rows(d: dict[str, Any]) -> list[list[str]]:
    variant = {
        "dense-fp32": "fp32",
        "dense-int8": "int8",
        "pruned-fp32": "pruned fp32",
        "pruned-int8": "pruned int8",
    }
    rows = []
    for r in d["latency"]:
        lo, hi = r["speedup_p10_p90"]
        int8 = "int8" in r["variant"]
        rows.append(
            [
                r["model"],
                variant.get(r["variant"], r["variant"]),
                f"{_sig(r['ms'])} ({_sig(r['p10_ms'])}-{_sig(r['p90_ms'])})",
                f"{r['speedup']:.2f}x" + ("" if r["speedup"] == 1.0 else f" ({lo:.2f}-{hi:.2f})"),
                f"{_sig(r['macs'] / 1e6)}M",
                _pct(r["int8_mac_share"]),
                f"{r['top1_agreement']:.2f}" if int8 and "top1_agreement" in r else "-",
            ]
        )
    return rows
