"""Where a tree's time goes: its critical path split into queue, prefill, decode, transfer, tool.

A call's life on the critical path, all in seconds: ``tool_s`` (its tool delay after its
latest parent finished, or after the tree arrived for a root), ``queue_s`` (ready to admission
on its first replica), ``prefill_s`` (admission to first token), ``transfer_s`` (first token to
its KV landing at the decode pool; 0 in a unified pool) and ``decode_s`` (first token, or KV
landing, to finish; in a disaggregated fleet this includes the wait for a decode slot). The
critical path walks back from a tree's sink through each call's latest-finishing parent, so the
five parts add up to the tree's end-to-end latency exactly.

The *floor* of a tree is the same path's length on an idle fleet, from the static model: each
call on the longest zero-load path costs its tool delay + ``prefill(input)`` + ``(output - 1) x
step(batch 1, context input + output / 2)``, with the prompt prefilled in ``token_budget``
chunks by the simulator's own step-time function (+ its KV transfer at the link's bandwidth and
latency in a disaggregated fleet). No number of replicas of that hardware can go below it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from planner.perf.replica import Replica
from planner.sim.config import SloSpec
from planner.sim.results import SimulationResult
from planner.workload.trees import SHAPE_KINDS

PARTS = ("queue_s", "prefill_s", "decode_s", "transfer_s", "tool_s")

SPREAD_PROBE_SEQUENCES = 1e-9
"""A decoding load small enough to add nothing measurable (~1e-14 s) to a step's time, but
non-zero, so the step function spreads the step's prefill over every attention rank."""
"""The parts of a critical path, in the order ``summary.json`` lists them."""

GRID_POINTS = 256
"""Token grid on which the floor's per-call costs are evaluated and interpolated (the static
model is smooth in the token counts; evaluating it once per call would cost seconds)."""


def _binding_parent(result: SimulationResult, finish: NDArray[np.float64]) -> NDArray[np.int64]:
    """Per call, its parent with the latest ``finish`` (-1 for roots), as global call ids."""
    trees = result.trees
    n_edges = np.diff(trees.edge_offsets)
    base = np.repeat(trees.node_offsets[:-1], n_edges)
    src = trees.edge_src + base
    dst = trees.edge_dst + base
    parent = np.full(trees.n_calls, -1, dtype=np.int64)
    if src.size == 0:
        return parent
    key = np.where(np.isfinite(finish[src]), finish[src], np.inf)
    order = np.lexsort((key, dst))  # by dst, then by parent finish: the last one per dst wins
    parent[dst[order]] = src[order]
    return parent


def critical_path_parts(result: SimulationResult) -> dict[str, NDArray[np.float64]]:
    """Per tree, the five parts of its critical path (NaN for trees that did not finish)."""
    trees = result.trees
    sink = trees.node_offsets[1:] - 1
    parent = _binding_parent(result, result.finish_s)
    landed = result.kv_landed_s if result.kv_landed_s is not None else result.first_token_s
    per_call = {
        "tool_s": trees.delay_before_s,
        "queue_s": result.admit_s - result.ready_s,
        "prefill_s": result.first_token_s - result.admit_s,
        "transfer_s": landed - result.first_token_s,
        "decode_s": result.finish_s - landed,
    }
    done = np.isfinite(result.tree_finish_s)
    parts = {name: np.zeros(trees.n_trees) for name in PARTS}
    current = np.where(done, sink, -1)
    while (current >= 0).any():
        on = current >= 0
        for name in PARTS:
            parts[name][on] += per_call[name][current[on]]
        current = np.where(on, parent[np.maximum(current, 0)], -1)
    for name in PARTS:
        parts[name][~done] = np.nan
    return parts


def _interpolated(fn: Any, values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``fn`` at each of ``values``, evaluated exactly at few points and interpolated between."""
    unique = np.unique(values)
    if unique.size > GRID_POINTS:
        unique = np.unique(np.geomspace(max(unique[0], 1.0), unique[-1], GRID_POINTS))
        unique = np.concatenate(([values.min()], unique, [values.max()]))
    out: NDArray[np.float64] = np.interp(values, unique, np.array([fn(float(v)) for v in unique]))
    return out


def zero_load_calls(
    result: SimulationResult,
    prefill_perf: Replica,
    decode_perf: Replica,
    transfer_bytes_per_s: float | None,
    transfer_latency_s: float,
    prefix_cache: bool = False,
    token_budget: int = 8192,
) -> dict[str, NDArray[np.float64]]:
    """Per call, its zero-load time split into the :data:`PARTS` (``queue_s`` is 0), s.

    ``transfer_bytes_per_s`` is the KV link's bandwidth in a disaggregated fleet (``None``:
    unified, no transfer); ``prefix_cache``: the prefill pool keeps a prefix cache;
    ``token_budget``: the prefill pool's tokens per iteration (a lone prompt is prefilled in
    chunks of it, as the engine does).
    """
    trees = result.trees
    inputs = trees.input_tokens.astype(np.float64)
    outputs = trees.output_tokens.astype(np.float64)
    # A call after the first of its tree may find the tree's shared prefix cached: count only
    # the rest (and its attention as if the prompt were that short: a lower bound, as a floor
    # must be).
    n_nodes = np.diff(trees.node_offsets)
    local = np.arange(trees.n_calls) - np.repeat(trees.node_offsets[:-1], n_nodes)
    if prefix_cache:
        inputs_new = np.where(local > 0, inputs - trees.shared_prefix_tokens, inputs)
    else:
        inputs_new = inputs
    prefill_step = prefill_perf.make_step_time_fn()
    attention = prefill_perf.model.prefill_attention_flops_fn()

    def chunked_prefill_s(prompt: float) -> float:
        # As the engine runs a lone prompt: chunks of ``token_budget`` tokens, one per step.
        # Under dp_attention the engine spreads a chunk over every attention rank when the
        # replica is decoding other sequences (planner.perf.gpu.prefill_ranks): faster than the
        # one rank of an idle replica. A floor bounds every case from below, so each chunk
        # takes the faster of the two (a decoding load of ~0 sequences selects the spread).
        total_s, done = 0.0, 0.0
        while done < prompt:
            chunk = min(float(token_budget), prompt - done)
            flops = attention(chunk, done)
            idle_s = prefill_step(0, 0.0, chunk, flops)
            spread_s = prefill_step(SPREAD_PROBE_SEQUENCES, 0.0, chunk, flops)
            total_s += min(idle_s, spread_s)
            done += chunk
        return total_s

    prefill_s = _interpolated(chunked_prefill_s, np.maximum(inputs_new, 1.0))
    step_time = decode_perf.make_step_time_fn()
    per_token_s = _interpolated(lambda c: step_time(1, c, 0.0, 0.0), inputs + outputs / 2.0)
    decode_s = np.maximum(outputs - 1.0, 0.0) * per_token_s
    transfer_s = np.zeros_like(inputs)
    if transfer_bytes_per_s is not None:
        kv = decode_perf.kv_bytes_for_context(1000.0) - decode_perf.kv_bytes_for_context(0.0)
        nbytes = kv / 1000.0 * (inputs + 1.0) + decode_perf.state_bytes_per_sequence
        transfer_s = np.where(outputs > 1, nbytes / transfer_bytes_per_s + transfer_latency_s, 0.0)
    return {
        "tool_s": trees.delay_before_s,
        "prefill_s": prefill_s,
        "decode_s": decode_s,
        "transfer_s": transfer_s,
        "queue_s": np.zeros_like(inputs),
    }


def zero_load_parts(
    result: SimulationResult,
    prefill_perf: Replica,
    decode_perf: Replica,
    transfer_bytes_per_s: float | None,
    transfer_latency_s: float,
    prefix_cache: bool = False,
    token_budget: int = 8192,
    per_call: dict[str, NDArray[np.float64]] | None = None,
) -> dict[str, NDArray[np.float64]]:
    """Per tree, its zero-load critical path split into tool, prefill, decode, transfer (s).

    The arguments are :func:`zero_load_calls`'s (``per_call``: its result, if already
    computed). The path is the longest one through the tree at zero load.
    """
    if per_call is None:
        per_call = zero_load_calls(
            result,
            prefill_perf,
            decode_perf,
            transfer_bytes_per_s,
            transfer_latency_s,
            prefix_cache,
            token_budget,
        )
    trees = result.trees
    n_nodes = np.diff(trees.node_offsets)
    local = np.arange(trees.n_calls) - np.repeat(trees.node_offsets[:-1], n_nodes)
    cost: NDArray[np.float64] = np.sum([per_call[name] for name in PARTS], axis=0)
    # Longest path: local node ids are topologically ordered, so sweep them in order.
    finish = np.zeros(trees.n_calls)
    n_edges = np.diff(trees.edge_offsets)
    base = np.repeat(trees.node_offsets[:-1], n_edges)
    src, dst = trees.edge_src + base, trees.edge_dst + base
    start = np.zeros(trees.n_calls)
    for j in range(int(n_nodes.max()) if n_nodes.size else 0):
        nodes = np.flatnonzero(local == j)
        finish[nodes] = start[nodes] + cost[nodes]
        out = local[src] == j
        np.maximum.at(start, dst[out], finish[src[out]])
    parent = _binding_parent(result, finish)
    sink = trees.node_offsets[1:] - 1
    parts = {name: np.zeros(trees.n_trees) for name in PARTS}
    current = sink.copy()
    while (current >= 0).any():
        on = current >= 0
        for name in PARTS:
            parts[name][on] += per_call[name][current[on]]
        current = np.where(on, parent[np.maximum(current, 0)], -1)
    return parts


def _at_rank(values: NDArray[np.float64], q: float) -> int:
    """Index of the value at percentile ``q`` (the sample itself, not an interpolation)."""
    order = np.argsort(values)
    return int(order[min(int(np.ceil(q / 100.0 * values.size)) - 1, values.size - 1)])


def latency_budget(result: SimulationResult) -> dict[str, Any]:
    """``{shape: {p50: {part: s}, p99: {part: s}}}``: the split of the tree at that percentile.

    The tree at a percentile is the completed tree of that shape whose end-to-end latency is
    that percentile (nearest rank), so its parts add up to the reported percentile.
    """
    parts = critical_path_parts(result)
    e2e = result.tree_finish_s - result.tree_arrival_s
    budget: dict[str, Any] = {}
    for code, shape in enumerate(SHAPE_KINDS):
        trees = np.flatnonzero((result.trees.tree_shape == code) & np.isfinite(e2e))
        if trees.size == 0:
            continue
        budget[shape] = {}
        for q in (50, 99):
            tree = trees[_at_rank(e2e[trees], q)]
            budget[shape][f"p{q}"] = {name: float(parts[name][tree]) for name in PARTS}
    return budget


def floors(
    result: SimulationResult, floor_parts: dict[str, NDArray[np.float64]], tree_slo_s: float
) -> dict[str, dict[str, Any]]:
    """Per shape: the p99 zero-load critical path (``floor_s``), its split, the share over SLO."""
    total: NDArray[np.float64] = np.sum([floor_parts[name] for name in PARTS], axis=0)
    out: dict[str, dict[str, Any]] = {}
    for code, shape in enumerate(SHAPE_KINDS):
        trees = np.flatnonzero(result.trees.tree_shape == code)
        if trees.size == 0:
            continue
        tree = trees[_at_rank(total[trees], 99)]
        out[shape] = {
            "floor_s": float(total[tree]),
            "parts": {name: float(floor_parts[name][tree]) for name in PARTS},
            "over_slo_fraction": float((total[trees] > tree_slo_s).mean()),
        }
    return out


def call_floors(
    result: SimulationResult, per_call: dict[str, NDArray[np.float64]], slo: SloSpec
) -> dict[str, dict[str, Any]]:
    """Per shape, the p99 over its calls of the zero-load TTFT and TPOT, and the share over SLO.

    A call's zero-load TTFT is its prompt's prefill alone (the first token comes with the last
    prefill chunk); its zero-load TPOT is ``(KV transfer + (output - 1) decode steps at batch
    1) / (output - 1)``, for calls with more than one output token (the engine's TPOT runs from
    the first token, so a disaggregated call's transfer is part of it). Percentiles are nearest
    rank, as for the trees.
    """
    outputs = result.trees.output_tokens.astype(np.float64)
    ttft = per_call["prefill_s"]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(
            outputs > 1, (per_call["transfer_s"] + per_call["decode_s"]) / (outputs - 1.0), np.nan
        )
    shape_of_call = result.trees.tree_shape[result.call_tree]
    floors = {"ttft_s": (ttft, slo.ttft_s), "tpot_s": (tpot, slo.tpot_s)}
    out: dict[str, dict[str, Any]] = {}
    for code, shape in enumerate(SHAPE_KINDS):
        calls = shape_of_call == code
        if not calls.any():
            continue
        entry: dict[str, Any] = {"p99": {}, "over_slo_fraction": {}}
        for name, (values, limit) in floors.items():
            kept = values[calls]
            kept = kept[np.isfinite(kept)]
            if kept.size == 0:
                continue
            entry["p99"][name] = float(kept[_at_rank(kept, 99)])
            entry["over_slo_fraction"][name] = float((kept > limit).mean())
        out[shape] = entry
    return out


def feasibility(
    shape_floors: dict[str, Any],
    slo: SloSpec,
    hardware: str,
    calls: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``slo.feasible`` and its reason: is every SLO above every shape's zero-load floor?

    Args:
        shape_floors: :func:`floors` (trees: ``floor_s``, ``parts``, ``over_slo_fraction``).
        slo: The SLOs.
        hardware: The fleet's hardware, named in the sentence.
        calls: :func:`call_floors` (per-call TTFT and TPOT floors); ``None``: trees only.

    Returns:
        ``{"feasible": bool, "infeasible_reason": sentence or None}``: the sentence names each
        SLO that no fleet of that hardware can meet, the shapes whose floor exceeds it and the
        part that dominates.
    """
    problems = []
    below = {s: f for s, f in shape_floors.items() if f["floor_s"] > slo.tree_e2e_s}
    if below:
        shapes = []
        for shape, floor in sorted(below.items(), key=lambda kv: -kv[1]["over_slo_fraction"]):
            part = max(PARTS, key=lambda name: floor["parts"][name])
            shapes.append(
                f"{floor['over_slo_fraction']:.1%} of {shape} trees (p99 zero-load critical "
                f"path {floor['floor_s']:,.1f} s, {floor['parts'][part]:,.1f} s of it "
                f"{part.removesuffix('_s')})"
            )
        problems.append(
            f"the {slo.tree_e2e_s:g} s tree SLO: even on an idle fleet {' and '.join(shapes)} "
            "take longer"
        )
    what = {"ttft_s": ("TTFT", "its prompt's prefill alone")}
    what["tpot_s"] = ("TPOT", "one decode step at batch 1 plus the KV transfer")
    for name, (label, cause) in what.items():
        limit = getattr(slo, name)
        over = {s: c for s, c in (calls or {}).items() if c["p99"].get(name, 0.0) > limit}
        if over:
            shapes = [
                f"{c['over_slo_fraction'][name]:.1%} of {shape} calls (p99 zero-load "
                f"{label} {c['p99'][name]:,.3g} s)"
                for shape, c in sorted(over.items(), key=lambda kv: -kv[1]["p99"][name])
            ]
            problems.append(
                f"the {limit:g} s {label} SLO: even on an idle fleet {' and '.join(shapes)} "
                f"exceed it ({cause})"
            )
    if not problems:
        return {"feasible": True, "infeasible_reason": None}
    reason = (
        f"No fleet of {hardware} meets {'; nor '.join(problems)}, so adding racks cannot fix "
        "it; a faster replica, shorter calls or a looser SLO can."
    )
    return {"feasible": False, "infeasible_reason": reason}
