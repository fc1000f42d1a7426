"""The technique registry and config validation."""

from __future__ import annotations

import pytest
from torch import nn

import compress
from compress import BITS, PruneConfig, QuantConfig


def test_builtin_techniques_are_registered() -> None:
    assert {"prune", "quant"} <= set(compress.list_techniques())
    assert compress.get_technique_config("prune") is PruneConfig
    assert compress.get_technique_config("quant") is QuantConfig


def test_bits_are_the_supported_set() -> None:
    assert BITS == (2, 3, 4, 6, 8, 16, 32)


def test_register_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match="'prune' is already registered"):
        compress.register_technique("prune", type("Other", (), {}))(lambda m, c: m)

    with pytest.raises(ValueError, match="QuantConfig already has"):
        compress.register_technique("quant-again", QuantConfig)(lambda m, c: m)
    assert "quant-again" not in compress.list_techniques()


def test_unknown_name_and_config_are_refused() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        compress.get_technique_config("nope")
    with pytest.raises(ValueError, match="not a registered compression config"):
        compress.apply(nn.Linear(2, 2), [object()])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PruneConfig(sparsity=1.5), r"sparsity=1.5 is outside \[0, 1\)"),
        (lambda: PruneConfig(sparsity=-0.1), r"sparsity=-0.1 is outside \[0, 1\)"),
        (lambda: PruneConfig(sparsity=1.0), r"sparsity=1.0 is outside"),
        (lambda: PruneConfig(sparsity="0.5"), r"sparsity='0.5' is outside"),  # type: ignore[arg-type]
        (lambda: PruneConfig(sparsity=0.5, scope="net"), r"scope='net' is not one of"),
        (lambda: QuantConfig(bits=5), r"bits=5 is not one of \(2, 3, 4, 6, 8, 16, 32\)"),
        (lambda: QuantConfig(bits=0), r"bits=0 is not one of"),
        (lambda: QuantConfig(bits=True), r"bits=True is not one of"),
    ],
)
def test_bad_configs_name_the_value(make, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        make()


def test_configs_are_frozen() -> None:
    cfg = PruneConfig(sparsity=0.5)
    with pytest.raises(AttributeError):
        cfg.sparsity = 0.9  # type: ignore[misc]
