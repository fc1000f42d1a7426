"""The results page renders what the int8 rewrites buy from scripts/bench_int8.py's record,
and says it is not recorded when it is not."""

from __future__ import annotations

from _results._compression import _int8_rewrites
from _results._format import _template


def _row(variant: str, ms: float, speedup: float, share: float, cosine: float) -> dict:
    return {"model": "resnet18", "variant": variant, "fp32_ms": 20.0, "ms": ms,
            "spread": 0.02, "speedup": speedup, "int8_mac_share": share,
            "size_bytes": 11_700_000, "cosine": cosine}  # fmt: skip


def test_without_a_record_the_page_says_how_to_make_one() -> None:
    text = _int8_rewrites(None)
    assert "not yet recorded" in text
    assert "scripts/bench_int8.py --out docs/bench/int8.json" in text


def test_the_record_becomes_a_table_under_the_template_paragraphs() -> None:
    record = {"rounds": 11, "repeats": 20, "latency": [
        {**_row("fp32", 20.0, 1.0, 0.0, 1.0), "size_bytes": 46_800_000},
        _row("int8", 10.0, 2.0, 0.99, 0.9991),
        _row("int8-plain", 12.5, 1.6, 0.97, 0.9990),
    ]}  # fmt: skip
    lines = _template("compression_why_int8", rewrites=_int8_rewrites(record))
    assert "| resnet18 | int8, rewritten | 10.00 | 2.00x | 99% | 0.9991 | 11,700,000 |" in lines
    assert "| resnet18 | int8, no rewrites | 12.50 | 1.60x | 97% | 0.9990 | 11,700,000 |" in lines
    head = lines.index("| model | variant | ms | speedup vs fp32 | int8 MACs | cosine | bytes |")
    assert lines[head - 1] == "" and "over 11 interleaved rounds of 20 runs" in lines[head - 2]
    assert not any("$rewrites" in line for line in lines)
