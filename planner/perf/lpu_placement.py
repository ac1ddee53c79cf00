"""Layer-to-chip placement of one model replica on a chain of LPU chips, and its chip count.

An LPU (Groq LPU v1: 230 MB SRAM per chip, no DRAM) holds everything in on-chip SRAM: weights,
the KV cache of the sequences in flight and the activations between operations. The compiler
places the transformer layers on the chain in order; a token crosses them one after another.

Placement (the assumptions are stated where they are used):

* A layer whose weights fit one chip shares it with neighbours (``k`` whole layers per chip);
  a larger layer is split over ``ceil(c_w)`` chips (``c_w`` = its weights / usable SRAM per chip),
  which then combine partial results twice per layer (after attention and after the FFN).
* Hops a token crosses: one per chip-to-chip hand-off between layers, plus the two exchanges of
  a split layer (one hop each inside a fully connected node, two across nodes). The count is set
  by the weights' packing, not by chips added for KV, so extra chips never add hops.
* Chips: a deployment is sized so that the weights, the decode activations and the KV cache of a
  full pipeline (one sequence per stage, at ``kv_sizing_context_tokens``) fit in the SRAM left
  after a reserve, in whole systems (72-chip GroqRacks). If a full pipeline would exceed the
  chain, the replica is sized for the weights and one sequence instead.

Pure arithmetic over frozen specs; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from planner.specs.errors import ConfigError
from planner.specs.hardware import System
from planner.specs.model import Model

ACTIVATION_BYTES_PER_ELEMENT = 2.0
"""Activations are kept in bf16 between operations [A] (Groq stores some in FP8; bf16 is the
conservative size)."""

PINNED_BY = ("weights", "kv", "chips", "chain")
"""What set the chip count: the weights' packing (plus one sequence), the KV of a full pipeline,
chips given explicitly, or the chain limit (a full pipeline would exceed the scale-up domain)."""


def layer_weight_bytes(model: Model, bytes_per_weight: float) -> float:
    """Mean weights of one transformer layer (embedding table and LM head excluded), bytes."""
    layers = model.total_params - model.embedding_params - model.lm_head_params
    return layers * bytes_per_weight / model.n_layers


def head_weight_bytes(model: Model, bytes_per_weight: float) -> float:
    """Embedding table and untied LM head, held on chips of their own, bytes."""
    return (model.embedding_params + model.lm_head_params) * bytes_per_weight


def layer_activation_bytes(model: Model) -> float:
    """Activations one token keeps in one layer, bytes.

    [D] Every matmul output of the layer kept once: the layer's active weights divided by the
    hidden size gives the summed output width (q, k, v, o, gate, up, down), in bf16.
    """
    lm_head = model.lm_head_params if not model.tie_word_embeddings else model.embedding_params
    active_per_layer = (model.linear_flops_per_token / 2.0 - lm_head) / model.n_layers
    return active_per_layer / model.hidden_size * ACTIVATION_BYTES_PER_ELEMENT


def exchange_hops(chips_per_layer: int, chips_per_host: int) -> int:
    """Hops of one partial-result exchange among the chips of one split layer.

    [A] The chips of a node are fully connected (one hop); across nodes the software-scheduled
    Dragonfly takes a local and a global hop (ISCA 2022, hardware.md A3).
    """
    if chips_per_layer <= 1:
        return 0
    return 1 if chips_per_layer <= chips_per_host else 2


@dataclass(frozen=True)
class LpuPlacement:
    """Where a replica's layers sit on the chain and how many chips it takes.

    Attributes:
        chips: Chips of the replica.
        systems: Whole systems (racks) those chips fill.
        stages: Pipeline stages (``min(layers, chips)``): one sequence in flight per stage.
        min_chips_for_weights: Fewest chips the weights' packing needs (embedding/head included).
        weight_chips_per_layer: Chips one layer's weights need (``c_w``; < 1: layers share chips).
        hops_per_token: Chip-to-chip hops one token crosses on its way through the layers.
        usable_bytes_per_chip: SRAM per chip after the reserve, bytes.
        activation_bytes: Decode activations of a full pipeline (one token per layer), bytes.
        pinned_by: What set the chip count, one of :data:`PINNED_BY`.
    """

    chips: int
    systems: int
    stages: int
    min_chips_for_weights: int
    weight_chips_per_layer: float
    hops_per_token: int
    usable_bytes_per_chip: float
    activation_bytes: float
    pinned_by: str


def _packing(
    model: Model, system: System, bytes_per_weight: float, usable: float
) -> tuple[int, float, int]:
    """(chips the weights' packing needs, chips per layer c_w, hops per token)."""
    layers = model.n_layers
    per_layer = layer_weight_bytes(model, bytes_per_weight) + layer_activation_bytes(model)
    c_w = per_layer / usable
    if c_w <= 1.0:
        per_chip = max(int(usable // per_layer), 1)
        layer_chips = math.ceil(layers / per_chip)
        hops = layer_chips - 1
    else:
        split = math.ceil(c_w)
        layer_chips = layers * split
        hops = (layers - 1) + 2 * layers * exchange_hops(split, system.accelerators_per_host)
    head_chips = math.ceil(head_weight_bytes(model, bytes_per_weight) / usable)
    return layer_chips + head_chips, c_w, hops


def place(
    model: Model,
    system: System,
    *,
    bytes_per_weight: float,
    sequence_bytes: Callable[[float], float],
    reserve_fraction: float,
    sizing_context_tokens: float,
    chips: int | None = None,
) -> LpuPlacement:
    """Place ``model`` on the chain and size it (or check the ``chips`` given).

    Args:
        model: The model.
        system: The LPU system; chips come in whole systems.
        bytes_per_weight: Bytes per weight at the deployed precision.
        sequence_bytes: KV + state of one sequence as a function of its context, bytes.
        reserve_fraction: SRAM kept back per chip (instructions, staging) [A].
        sizing_context_tokens: Context of the sequences a full pipeline is sized for, tokens.
        chips: Chips to deploy; ``None`` sizes the replica as the module docstring says.

    Raises:
        ConfigError: ``chips`` too few for the weights or beyond the chain, or a reserve of 1.
    """
    if reserve_fraction >= 1.0:
        raise ConfigError("efficiency.sram_reserve_fraction", "must be below 1")
    accel = system.accelerator
    usable = accel.memory_bytes * (1.0 - reserve_fraction)
    min_chips, c_w, hops = _packing(model, system, bytes_per_weight, usable)
    weights = model.total_params * bytes_per_weight
    act_layer = layer_activation_bytes(model)
    per_system = system.accelerators_per_system
    domain = system.scale_up_domain_size

    def whole_systems(n: float) -> int:
        return math.ceil(n / per_system) * per_system

    def needed_chips(sequences: int) -> int:
        stages = min(model.n_layers, sequences)
        need = weights + stages * act_layer + sequences * sequence_bytes(sizing_context_tokens)
        return max(min_chips, math.ceil(need / usable))

    if chips is not None:
        if chips < min_chips:
            raise ConfigError(
                "chips",
                f"{model.name} needs at least {min_chips} {accel.name} chips for its weights "
                f"({c_w:.2f} chips per layer plus the embedding and LM head); got {chips}",
            )
        if chips > domain:
            raise ConfigError(
                "chips", f"{chips} chips exceed the {domain}-chip chain of {system.name}"
            )
        pinned = "chips"
    else:
        with_one = whole_systems(needed_chips(1))
        # A full pipeline holds one sequence per stage; stages are layers unless chips are fewer.
        full = whole_systems(needed_chips(model.n_layers))
        if full < model.n_layers:
            full = whole_systems(needed_chips(full))
        if full > domain:
            chips, pinned = with_one, "chain"
            if chips > domain:
                raise ConfigError(
                    "model",
                    f"{model.name} needs {chips} {accel.name} chips, more than the "
                    f"{domain}-chip chain of {system.name}",
                )
        else:
            chips, pinned = full, ("weights" if full == with_one else "kv")
    stages = min(model.n_layers, chips)
    return LpuPlacement(
        chips=chips,
        systems=math.ceil(chips / per_system),
        stages=stages,
        min_chips_for_weights=min_chips,
        weight_chips_per_layer=c_w,
        hops_per_token=hops,
        usable_bytes_per_chip=usable,
        activation_bytes=stages * act_layer,
        pinned_by=pinned,
    )
