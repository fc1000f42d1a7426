from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from scipy.stats import spearmanr

from nas.hw import (
    LatencyPredictor,
    fbnet_network_features,
    fbnet_split,
    list_latency_devices,
    load_fbnet_latencies,
    network_features,
    read_latency_models,
)
from search_spaces import InputSpec, get_search_space

TARGET_DEVICES = ["pixel3", "raspi4"]


def test_devices_available() -> None:
    assert set(TARGET_DEVICES) <= set(list_latency_devices())
    with pytest.raises(KeyError, match="pixel9"):
        LatencyPredictor.load("pixel9")


@pytest.mark.parametrize("device", TARGET_DEVICES)
def test_stored_held_out_metrics_meet_targets(device: str) -> None:
    metrics = LatencyPredictor.load(device).metrics
    assert metrics["n_held_out"] == 1000
    assert metrics["spearman"] >= 0.95
    assert metrics["within_10pct"] >= 0.90


@pytest.mark.parametrize("device", TARGET_DEVICES)
def test_held_out_metrics_are_real(device: str) -> None:
    """Recompute on a sample of the held-out networks, from the models built from scratch."""
    split = read_latency_models(None)["provenance"]["split"]
    data = load_fbnet_latencies()
    _, held_out = fbnet_split(len(data.ops), seed=split["seed"])
    sample = np.random.default_rng(1).choice(held_out, size=150, replace=False)
    predictor = LatencyPredictor.load(device)
    predicted = np.array(
        [predictor.predict_features_ms(fbnet_network_features(data.ops[i])) for i in sample]
    )
    measured = data.latency_ms[device][sample]
    assert spearmanr(predicted, measured)[0] >= 0.93
    assert np.mean(np.abs(predicted / measured - 1) <= 0.10) >= 0.90


def test_cached_features_equal_full_model_features() -> None:
    ops = load_fbnet_latencies().ops[7]
    model = get_search_space("fbnet").build({"ops": ops}, InputSpec(3, 32, 100))
    from nas.hw import layer_features

    assert network_features(layer_features(model, (1, 3, 32, 32))) == pytest.approx(
        fbnet_network_features(ops)
    )


@pytest.mark.parametrize("device", TARGET_DEVICES)
def test_predictions_positive_and_monotone(device: str) -> None:
    predictor = LatencyPredictor.load(device)
    space = get_search_space("fbnet")
    small, large = (space.build(a, InputSpec(3, 32, 100)) for a in space.extremes())
    p_small = predictor.predict_ms(small, (1, 3, 32, 32))
    p_large = predictor.predict_ms(large, (1, 3, 32, 32))
    assert 0 < p_small < p_large
    assert predictor.predict_ms(large, (1, 3, 64, 64)) > p_large
    # Any module built from the same op kinds, not only FBNet shapes.
    narrow = timm.create_model("mobilenetv2_050", num_classes=10)
    wide = timm.create_model("mobilenetv2_100", num_classes=10)
    p_narrow = predictor.predict_ms(narrow, (1, 3, 96, 96))
    assert 0 < p_narrow < predictor.predict_ms(wide, (1, 3, 96, 96))


def test_fit_recovers_synthetic_costs() -> None:
    torch.manual_seed(0)
    feats = [fbnet_network_features(ops) for ops in load_fbnet_latencies().ops[:200]]
    truth = {"conv_pw.macs": 2e-8, "conv_dw.output_elements": 3e-6, "bn.count": 0.01}
    y = [0.5 + sum(c * f[n] for n, c in truth.items()) for f in feats]
    fitted = LatencyPredictor.fit(feats, y, device="synthetic")
    assert [fitted.predict_features_ms(f) for f in feats] == pytest.approx(y, rel=1e-3)
    assert all(c >= 0 for c in fitted.coefficients.values()) and fitted.intercept_ms >= 0
    with pytest.raises(ValueError, match="positive latency"):
        LatencyPredictor.fit(feats[:2], [1.0], device="bad")
