"""Energy per inference: a model from a published per-operation energy table.

This is an estimate, not a measurement: no energy is measured anywhere. The default
table is Horowitz, "Computing's Energy Problem (and what we can do about it)", ISSCC
2014 (45 nm, 0.9 V; ``nas/hw/data/energy_horowitz45.json``), the table Deep
Compression (Han et al., ICLR 2016) reasons about energy with. A ``+hw`` profile may
bring its own (``hw.energy_table``, a JSON file of the same fields).

One inference at batch 1 costs, in this model:

- **compute**: every multiply-accumulate (MAC) of the convolutions and linear layers
  is one multiply and one add at the weight bit-width: fp32 at 32 bits, fp16 at 16
  bits (what ``compress`` stores there), integer at 2-8 bits. Integer widths the
  table lacks scale from its 8-bit entries as the source suggests: a multiply as
  bits^2 (an array multiplier's area), an add as bits. Accumulators wider than the
  operands are not modelled. MACs of pruned weights are skipped only on a device
  whose kernels skip zeros (the profile's ``sparse_speedup``); dense kernels
  multiply by zero at full cost.
- **weights**: every stored weight read once, the pruned and quantized layers'
  (convolutions, linear) at the bit-width, every other parameter at 32 bits; pruned
  weights are skipped only with ``sparse_speedup`` (the index overhead of a sparse
  format is not counted). They are read from the smallest memory of the table that
  holds them all: a model that fits on-chip SRAM stays there between inferences
  (Deep Compression's argument), a larger one is read from DRAM.
- **activations**: every layer's input read and output written once, at the
  profile's ``activation_bytes`` per element, from the smallest memory that holds
  the peak activation memory (``nas.hw.peak_activation_bytes``). Batch norm and
  activations fuse into the layer before them and move nothing; residual adds are
  not seen (functional ops) and are left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from torch.nn.utils import parametrize

from nas.hw._features import layer_features
from nas.hw._memory import peak_activation_bytes

__all__ = ["EnergyBreakdown", "EnergyTable", "energy_breakdown", "read_energy_table"]

_OPS = ("int_add", "int_mult", "float_add", "float_mult")
# A table must give what every searched bit-width needs (compress.BITS): 8-bit integer
# entries (2-6 bits scale from them), fp16 and fp32.
_REQUIRED: dict[str, tuple[int, ...]] = {
    "int_add": (8,),
    "int_mult": (8,),
    "float_add": (16, 32),
    "float_mult": (16, 32),
}
# The layers whose weights compress prunes and quantizes (compress's TARGETS).
_WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)
# Layer kinds (nas.hw.LAYER_KINDS) that read and write activations in memory.
_MOVING_KINDS = {"conv_full", "conv_pw", "conv_dw", "conv_group", "linear", "pool", "other"}
_PJ_PER_UJ = 1e6


@dataclass(frozen=True)
class EnergyTable:
    """A per-operation energy table, in pJ (a JSON file: ``read_energy_table``).

    Attributes:
        int_add, int_mult, float_add, float_mult: energy of one operation by bit-width.
        sram_read_64bit: energy of a 64-bit SRAM read by the array's capacity in bytes.
        dram_64bit: energy of a 64-bit DRAM access (every footprint above the SRAMs).
    """

    name: str
    source: str
    int_add: Mapping[int, float]
    int_mult: Mapping[int, float]
    float_add: Mapping[int, float]
    float_mult: Mapping[int, float]
    sram_read_64bit: Mapping[int, float]
    dram_64bit: float

    def mac_pj(self, bits: int) -> float:
        """One multiply-accumulate at ``bits``: a multiply plus an add, in pJ.

        32 is fp32 and 16 fp16 (what ``compress`` stores); 2-8 are integers, a width
        the table lacks scaled from its 8-bit entries (multiply ~ bits^2, add ~ bits).
        """
        if bits in (16, 32):
            return self.float_mult[bits] + self.float_add[bits]
        if not 1 <= bits <= 8:
            raise ValueError(f"bits={bits}: the energy model knows 1-8 (integer), 16 and 32")
        return _int_op(self.int_mult, bits, power=2) + _int_op(self.int_add, bits, power=1)

    def access_pj_per_byte(self, footprint_bytes: float) -> tuple[float, str]:
        """Energy per byte read from the smallest memory holding ``footprint_bytes``,
        and that memory's name (``"SRAM 32 KB"``, ``"DRAM"``)."""
        for capacity in sorted(self.sram_read_64bit):
            if footprint_bytes <= capacity:
                return self.sram_read_64bit[capacity] / 8, f"SRAM {_kib(capacity)}"
        return self.dram_64bit / 8, "DRAM"


@dataclass(frozen=True)
class EnergyBreakdown:
    """A model's energy per inference, by part, with what each part counted."""

    compute_uj: float
    weights_uj: float
    activations_uj: float
    macs: float
    """MACs counted (pruned ones skipped only with ``sparse_speedup``)."""
    weight_bytes: float
    activation_traffic_bytes: float
    weight_memory: str
    activation_memory: str

    @property
    def total_uj(self) -> float:
        return self.compute_uj + self.weights_uj + self.activations_uj


def energy_breakdown(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    table: EnergyTable,
    bits: int = 32,
    sparsity: float = 0.0,
    activation_bytes: int = 4,
    sparse_speedup: bool = False,
    peak_memory_bytes: float | None = None,
) -> EnergyBreakdown:
    """Energy of one inference of ``model`` under ``table`` (the module docstring says
    what it counts).

    Args:
        model: the network with its real shapes (channel pruning, low rank applied).
        input_shape: full input shape, batch 1, e.g. ``(1, 1, 28, 28)``.
        bits: the weight bit-width of the pruned and quantized layers.
        sparsity: their unstructured sparsity; saves energy only with ``sparse_speedup``.
        activation_bytes: bytes per activation element on the device.
        peak_memory_bytes: the peak activation memory at ``activation_bytes``, if known
            (it picks the activations' memory); computed when None.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity={sparsity} is outside [0, 1)")
    kept = 1.0 - sparsity if sparse_speedup else 1.0
    features = layer_features(model, input_shape)
    macs = sum(f.macs for f in features) * kept
    weight_bytes = _weight_bytes(model, bits, kept)
    traffic = activation_bytes * sum(
        f.input_elements + f.output_elements for f in features if f.kind in _MOVING_KINDS
    )
    if peak_memory_bytes is None:
        peak_memory_bytes = peak_activation_bytes(
            model, input_shape, bytes_per_element=activation_bytes
        )
    per_weight_byte, weight_memory = table.access_pj_per_byte(weight_bytes)
    per_activation_byte, activation_memory = table.access_pj_per_byte(peak_memory_bytes)
    return EnergyBreakdown(
        compute_uj=macs * table.mac_pj(bits) / _PJ_PER_UJ,
        weights_uj=weight_bytes * per_weight_byte / _PJ_PER_UJ,
        activations_uj=traffic * per_activation_byte / _PJ_PER_UJ,
        macs=macs,
        weight_bytes=weight_bytes,
        activation_traffic_bytes=float(traffic),
        weight_memory=weight_memory,
        activation_memory=activation_memory,
    )


def read_energy_table(path: Path) -> EnergyTable:
    """An energy table from a JSON file; ``ValueError`` naming the file and what is wrong.

    Fields: ``name``, ``source``; ``int_add``, ``int_mult``, ``float_add``,
    ``float_mult`` as ``{"<bits>": pJ}`` (8-bit integer, fp16 and fp32 entries at
    least); ``sram_read_64bit`` as ``{"<capacity bytes>": pJ}`` (may be empty);
    ``dram_64bit`` in pJ. Other fields (``unit``, ``notes``) are kept in the file only.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"energy table {path}: cannot be read as JSON ({e})") from None
    try:
        return _table_from(data)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"energy table {path}: {e}") from None


def _table_from(data: dict[str, Any]) -> EnergyTable:
    ops = {op: _by_int(data[op], op) for op in _OPS}
    for op, needed in _REQUIRED.items():
        missing = [bits for bits in needed if bits not in ops[op]]
        if missing:
            raise ValueError(f"{op} has no entry for {missing} bits (needs {list(needed)})")
    dram = float(data["dram_64bit"])
    if dram <= 0:
        raise ValueError(f"dram_64bit={dram} must be > 0 (pJ)")
    return EnergyTable(
        name=str(data["name"]),
        source=str(data.get("source", "")),
        sram_read_64bit=_by_int(data.get("sram_read_64bit", {}), "sram_read_64bit"),
        dram_64bit=dram,
        **ops,
    )


def _by_int(node: dict[str, Any], field: str) -> dict[int, float]:
    out = {int(k): float(v) for k, v in node.items()}
    bad = {k: v for k, v in out.items() if k <= 0 or v <= 0}
    if bad:
        raise ValueError(f"{field} has {bad}: keys and energies must be > 0")
    return out


def _int_op(ops: Mapping[int, float], bits: int, *, power: int) -> float:
    """The table's entry at ``bits``, else its 8-bit entry scaled by (bits / 8)^power."""
    if bits in ops:
        return ops[bits]
    return ops[8] * (bits / 8) ** power


def _weight_bytes(model: nn.Module, bits: int, kept: float) -> float:
    """Bytes of weights read once: the pruned and quantized layers' at ``bits`` (the
    ``kept`` share of them), every other parameter at 32 bits."""
    compressed = 0
    for module in model.modules():
        if isinstance(module, _WEIGHT_LAYERS):
            if parametrize.is_parametrized(module, "weight"):
                compressed += module.parametrizations["weight"].original.numel()  # type: ignore[index,union-attr]
            else:
                compressed += module.weight.numel()
    total = sum(p.numel() for p in model.parameters())  # a parametrized weight: its original
    return compressed * kept * bits / 8 + (total - compressed) * 4


def _kib(capacity: int) -> str:
    return f"{capacity // 2**20} MB" if capacity >= 2**20 else f"{capacity // 2**10} KB"
