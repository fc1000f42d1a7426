"""ONNX: both variants of the model, measured, checked against ``model.dsz``; one chosen.

fp32 always; int8 by ONNX Runtime static QDQ quantization, calibrated on the search's
training data, kept only where it measured faster than fp32 on this host. Both stay in
``onnx/fp32/`` and ``onnx/int8/``; the chosen one is copied to ``model.onnx``.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.config import one_line

if TYPE_CHECKING:
    import torch

    from nas.pipeline import Splits

__all__ = ["export_onnx"]

_KINDS = ("fp32", "int8")
_CALIBRATION_SAMPLES = 256
_AGREEMENT_FLOOR = 0.99  # fp32 ONNX vs model.dsz predictions on the test split


def export_onnx(
    model: Any,
    dsz_test_pred: torch.Tensor,
    splits: Splits,
    out_dir: Path,
    input_shape: tuple[int, ...],
    *,
    seed: int,
    threads: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Write both ONNX variants of ``model`` under ``out_dir``, and the faster as ``model.onnx``.

    Args:
        dsz_test_pred: ``model.dsz``'s predictions on the test split, to check agreement.
        seed: picks the int8 calibration images from the training split.
        threads: ONNX Runtime intra-op threads (the search's latency threads).

    Returns:
        The ``onnx`` entry of ``metrics.json``.
    """
    import compress

    calibration = _calibration(splits, seed)
    variants: dict[str, dict[str, Any]] = {}
    for kind in _KINDS:
        variants[kind] = _export_variant(kind, model, out_dir, input_shape, calibration, say)
        if "error" not in variants[kind]:
            variants[kind].update(_accuracy(kind, out_dir, splits, dsz_test_pred, threads))
    _measure_latency(variants, out_dir, input_shape, threads)
    chosen = _choose(variants)
    _report(variants, threads, say)
    _install(out_dir, chosen)
    return {
        "chosen": chosen,
        "file": "model.onnx",
        "size_bytes": compress.size_bytes(out_dir / "model.onnx"),
        "latency_threads": threads,
        "variants": variants,
    }


def _calibration(splits: Splits, seed: int) -> torch.Tensor:
    import torch

    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(splits.train), generator=g)[:_CALIBRATION_SAMPLES]
    return splits.train.images(pick)


def _export_variant(
    kind: str,
    model: Any,
    out_dir: Path,
    input_shape: tuple[int, ...],
    calibration: torch.Tensor,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Export one variant to ``onnx/<kind>/model.onnx``; an int8 failure is recorded."""
    import compress

    folder = out_dir / "onnx" / kind
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    int8 = kind == "int8"
    how = f" (static QDQ, calibrated on {len(calibration)} training images)" if int8 else ""
    say(f"onnx {kind}: exporting{how}")
    try:
        n = compress.export_onnx(
            model,
            folder / "model.onnx",
            input_shape=input_shape,
            int8=int8,
            calibration=calibration if int8 else None,
        )
    except Exception as e:  # int8 is optional: a model ORT cannot quantize stays fp32
        if not int8:
            raise
        say(f"onnx int8: failed ({one_line(e, 200)}); keeping fp32")
        shutil.rmtree(folder)
        return {"error": f"{type(e).__name__}: {one_line(e, 200)}"}
    return {"file": f"onnx/{kind}/model.onnx", "size_bytes": n}


def _accuracy(
    kind: str, out_dir: Path, splits: Splits, dsz_test_pred: torch.Tensor, threads: int
) -> dict[str, Any]:
    """The variant's test accuracy and its agreement with ``model.dsz``."""
    import compress

    path = out_dir / "onnx" / kind / "model.onnx"
    test_pred = compress.onnx_predict(path, splits.x_test, threads=threads)
    info: dict[str, Any] = {
        "test_accuracy": float((test_pred == splits.y_test).float().mean()),
        "agreement_with_dsz": float((test_pred == dsz_test_pred).float().mean()),
    }
    if kind == "int8":
        info["int8_mac_share"] = compress.int8_mac_share(path)
    return info


def _measure_latency(
    variants: dict[str, dict[str, Any]], out_dir: Path, input_shape: tuple[int, ...], threads: int
) -> None:
    """Alternate the variants and keep each one's best median, so a noisy moment of a
    shared machine does not decide the choice."""
    import compress

    for _ in range(2):
        for info in variants.values():
            if "error" in info:
                continue
            ms, spread = compress.measure_onnx_latency_ms(
                out_dir / info["file"], input_shape, threads=threads, warmup=20, repeats=100
            )
            if ms < info.get("latency_ms", math.inf):
                info["latency_ms"], info["latency_spread"] = ms, spread


def _choose(variants: dict[str, dict[str, Any]]) -> str:
    fp32, int8 = variants["fp32"], variants.get("int8", {})
    return "int8" if "latency_ms" in int8 and int8["latency_ms"] < fp32["latency_ms"] else "fp32"


def _report(variants: dict[str, dict[str, Any]], threads: int, say: Callable[[str], None]) -> None:
    for kind, info in variants.items():
        if "latency_ms" in info:
            say(
                f"onnx {kind}: {info['size_bytes']:,} bytes, {info['latency_ms']:.4f} ms "
                f"(batch 1, {threads} thread), test accuracy {info['test_accuracy']:.4f}, "
                f"agreement with model.dsz {info['agreement_with_dsz']:.4f}"
            )
    agreement = variants["fp32"]["agreement_with_dsz"]
    if agreement < _AGREEMENT_FLOOR:
        say(
            f"warning: the fp32 ONNX model agrees with model.dsz on only "
            f"{agreement:.4f} of the test split"
        )


def _install(out_dir: Path, chosen: str) -> None:
    """Copy the chosen variant to ``out_dir`` (``model.onnx`` and its external data, if any)."""
    for stale in (out_dir / "model.onnx", out_dir / "model.onnx.data"):
        stale.unlink(missing_ok=True)
    for f in (out_dir / "onnx" / chosen).iterdir():
        shutil.copyfile(f, out_dir / f.name)
