"""Contract tests every registered search space passes, then checks of each space."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import optuna
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from search_spaces import (
    LENET5,
    LENET_300_100,
    Arch,
    InputSpec,
    MBConvSpaceConfig,
    TinySpaceConfig,
    get_search_space,
    list_search_spaces,
    search_space_config,
)
from search_spaces._mbconv import stage_strides
from search_spaces._tiny import cnn_padding

MNIST = InputSpec(in_chans=1, image_size=28, num_classes=10)
DIGITS = InputSpec(in_chans=1, image_size=8, num_classes=10)
# A space that cannot take MNIST-shaped input names the input it needs here.
SPECS: dict[str, InputSpec] = {}


class RandomSuggest:
    """A seeded stand-in for an Optuna trial that picks uniformly and records names."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.names: list[str] = []

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int:
        self.names.append(name)
        return self.rng.randrange(low, high + 1, step)

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        self.names.append(name)
        return self.rng.uniform(low, high)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        self.names.append(name)
        return self.rng.choice(list(choices))


class ScriptedSuggest:
    """Answers from a fixed table, and fails if a value is not among the choices offered."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int:
        value = self.values[name]
        assert low <= value <= high, (name, value, low, high)
        return int(value)

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        value = self.values[name]
        assert low <= value <= high, (name, value, low, high)
        return float(value)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self.values[name]
        assert value in choices, (name, value, list(choices))
        return value


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_shape(model: nn.Module, spec: InputSpec) -> tuple[int, ...]:
    x = torch.randn(2, spec.in_chans, spec.image_size, spec.image_size)
    with torch.no_grad():
        return tuple(model.eval()(x).shape)


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# --- the contract, for every registered space -------------------------------------------


@pytest.mark.parametrize("name", list_search_spaces())
def test_sample_is_json(name: str) -> None:
    space = get_search_space(name)
    for seed in range(5):
        arch = space.sample(RandomSuggest(seed))
        assert json.loads(json.dumps(arch)) == arch


@pytest.mark.parametrize("name", list_search_spaces())
def test_build_forward(name: str) -> None:
    space, spec = get_search_space(name), SPECS.get(name, MNIST)
    for seed in range(3):
        model = space.build(space.sample(RandomSuggest(seed)), spec)
        assert forward_shape(model, spec) == (2, spec.num_classes)


@pytest.mark.parametrize("name", list_search_spaces())
def test_json_round_trip_rebuilds_same_layers(name: str) -> None:
    space, spec = get_search_space(name), SPECS.get(name, MNIST)
    arch = space.sample(RandomSuggest(1))
    again: Arch = json.loads(json.dumps(arch))
    original, rebuilt = space.build(arch, spec), space.build(again, spec)
    assert shapes(original) == shapes(rebuilt)
    rebuilt.load_state_dict(original.state_dict())


@pytest.mark.parametrize("name", list_search_spaces())
def test_extremes_are_ordered(name: str) -> None:
    space, spec = get_search_space(name), SPECS.get(name, MNIST)
    smallest, largest = space.extremes()
    json.dumps([smallest, largest])
    assert num_params(space.build(smallest, spec)) < num_params(space.build(largest, spec))


@pytest.mark.parametrize("name", list_search_spaces())
def test_small_corners_bound_the_samples(name: str) -> None:
    # Budget checks take the best figure over small_corners(); no sample may beat it.
    space, spec = get_search_space(name), SPECS.get(name, MNIST)
    corners = space.small_corners()
    assert space.extremes()[0] in corners
    bound = min(num_params(space.build(a, spec)) for a in corners)
    for seed in range(20):
        assert num_params(space.build(space.sample(RandomSuggest(seed)), spec)) >= bound


def test_tiny_small_corners_cover_each_family() -> None:
    kinds = {a["kind"] for a in get_search_space("tiny").small_corners()}
    assert kinds == {"mlp", "cnn"}


@pytest.mark.parametrize("name", list_search_spaces())
def test_samples_with_an_optuna_trial(name: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, spec = get_search_space(name), SPECS.get(name, MNIST)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    arch = space.sample(trial)
    assert json.loads(json.dumps(arch)) == arch
    assert forward_shape(space.build(arch, spec), spec) == (2, spec.num_classes)


@pytest.mark.parametrize("name", list_search_spaces())
def test_config_is_a_structured_config(name: str) -> None:
    config_cls = search_space_config(name)
    assert OmegaConf.to_object(OmegaConf.structured(config_cls)) == config_cls()


# --- digits-sized input ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["mbconv", "tiny"])
def test_builds_for_8px_digits(name: str) -> None:
    space = get_search_space(name)
    archs = [*space.extremes(), *(space.sample(RandomSuggest(seed)) for seed in range(4))]
    for arch in archs:
        assert forward_shape(space.build(arch, DIGITS), DIGITS) == (2, 10)


# --- mbconv ----------------------------------------------------------------------------


def test_mbconv_suggest_names_are_flat() -> None:
    suggest = RandomSuggest(0)
    arch = get_search_space("mbconv").sample(suggest)
    assert suggest.names == [
        "width_mult",
        "depth_s1",
        "depth_s2",
        "kernel_s2",
        "expansion_s2",
        "depth_s3",
        "kernel_s3",
        "expansion_s3",
        "depth_s4",
        "kernel_s4",
        "expansion_s4",
    ]
    assert set(arch) == {"width_mult", "depths", "kernels", "expansions"}
    assert arch["kernels"][0] == 3 and arch["expansions"][0] == 1


@pytest.mark.parametrize(
    ("image_size", "strides", "final"),
    [(8, [1, 1, 1, 1], 4), (28, [1, 2, 2, 1], 4), (32, [1, 2, 2, 1], 4), (224, [2, 2, 2, 2], 7)],
)
def test_mbconv_strides_follow_image_size(image_size: int, strides: list[int], final: int) -> None:
    assert stage_strides(image_size, 4) == strides
    space = get_search_space("mbconv")
    model = space.build(space.extremes()[0], InputSpec(3, image_size, 10)).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, image_size, image_size))
    assert features.shape[-2:] == (final, final)


def test_mbconv_rejects_bad_input() -> None:
    space = get_search_space("mbconv")
    arch = space.extremes()[0]
    with pytest.raises(ValueError, match="4 stages"):
        space.build({**arch, "depths": [1, 1]}, MNIST)
    with pytest.raises(ValueError, match="depth_min"):
        MBConvSpaceConfig(depth_min=3, depth_max=1)
    with pytest.raises(ValueError, match="kernels"):
        MBConvSpaceConfig(kernels=[4])


# --- tiny ------------------------------------------------------------------------------


def test_lenet_param_counts() -> None:
    space = get_search_space("tiny")
    assert num_params(space.build(LENET_300_100, MNIST)) == 266_610
    assert num_params(space.build(LENET5, MNIST)) == 431_080
    assert cnn_padding(28, 5, 2) == 0  # LeNet-5's valid convs: 28 -> 24 -> 12 -> 8 -> 4
    assert cnn_padding(8, 5, 2) == 2


def test_tiny_space_contains_the_lenets() -> None:
    space = get_search_space("tiny")
    lenet_300_100 = {"kind": "mlp", "mlp_layers": 2, "mlp_width_l1": 300, "mlp_width_l2": 100}
    lenet5 = {
        "kind": "cnn",
        "cnn_conv1": 20,
        "cnn_conv2": 50,
        "cnn_kernel": 5,
        "cnn_fc_layers": 1,
        "cnn_fc_width_l1": 500,
    }
    assert space.sample(ScriptedSuggest(lenet_300_100)) == LENET_300_100
    assert space.sample(ScriptedSuggest(lenet5)) == LENET5


def test_tiny_rejects_bad_input() -> None:
    space = get_search_space("tiny")
    with pytest.raises(ValueError, match="kind"):
        space.build({"kind": "rnn"}, MNIST)
    with pytest.raises(ValueError, match="kinds"):
        TinySpaceConfig(kinds=["rnn"])
    with pytest.raises(ValueError, match="too small"):
        space.build(LENET5, InputSpec(1, 3, 10))
