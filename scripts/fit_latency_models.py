"""Fit the per-device latency models and write ``nas/hw/data/latency_models.json``.

Data: 5,000 FBNet-space networks with measured latencies on 13 devices
(HW-NAS-Bench / HELP, ``nas/hw/data/fbnet_latency.csv``). Each device's model is
fitted on a seeded random 80% of the networks and validated on the other 20%,
networks it never saw; the JSON stores the coefficients, those held-out metrics
and the split seed, so tests can recompute them.

Usage:
    python scripts/fit_latency_models.py [--seed 0] [--out nas/hw/data/latency_models.json]
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

from nas.hw import (
    FEATURE_NAMES,
    LatencyPredictor,
    fbnet_network_features,
    fbnet_split,
    load_fbnet_latencies,
)

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "nas" / "hw" / "data" / "latency_models.json"
TRAIN_FRACTION = 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/held-out split")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON to write")
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = load_fbnet_latencies()
    features = [fbnet_network_features(ops) for ops in tqdm(data.ops, desc="features")]
    train, held_out = fbnet_split(len(features), seed=args.seed, train_fraction=TRAIN_FRACTION)

    devices = {}
    print(f"{'device':14s} {'spearman':>9s} {'within10%':>9s} {'MAPE':>7s}")
    for device, latency in data.latency_ms.items():
        predictor = LatencyPredictor.fit(
            [features[i] for i in train], latency[train], device=device
        )
        predicted = np.array([predictor.predict_features_ms(features[i]) for i in held_out])
        rel_err = np.abs(predicted / latency[held_out] - 1.0)
        predictor.metrics = {
            "spearman": float(spearmanr(predicted, latency[held_out])[0]),
            "within_10pct": float(np.mean(rel_err <= 0.10)),
            "mape": float(np.mean(rel_err)),
            "n_train": int(len(train)),
            "n_held_out": int(len(held_out)),
        }
        devices[device] = predictor.to_dict()
        m = predictor.metrics
        print(f"{device:14s} {m['spearman']:9.4f} {m['within_10pct']:9.3f} {m['mape']:7.4f}")

    payload = {
        "format": 1,
        "feature_names": list(FEATURE_NAMES),
        "provenance": {
            "data": "nas/hw/data/fbnet_latency.csv: HW-NAS-Bench (Li et al., ICLR 2021, MIT) "
            "FBNet space, cifar100 setting, via HELP (Lee et al., NeurIPS 2021, MIT)",
            "method": "per-kind linear model on summed layer features, scipy.optimize.nnls "
            "on relative error; batch 1; input 1x3x32x32 for the fitting networks",
            "split": {"seed": args.seed, "train_fraction": TRAIN_FRACTION},
            "script": "scripts/fit_latency_models.py",
            "date": date.today().isoformat(),
        },
        "devices": devices,
    }
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {len(devices)} device models to {args.out}")


if __name__ == "__main__":
    main()
