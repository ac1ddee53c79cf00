"""The verdict of a ``planner`` run: what a capacity review acts on, in plain sentences.

:func:`verdict_lines` reads a run's summary (the ``summary.json`` layout) and states, in this
order: pass or fail against the SLOs with the model and fleet named; overload (``stability``);
a partial run (``stop_reason``); failures injected (counts) and pools that gave up; an SLO no
fleet can meet (``slo.feasible``); the headroom of each pool; the headline cost.
:func:`verdict` joins the lines into the one sentence kept as ``summary.json``'s ``verdict``.

:func:`headline_cost` picks the cost a workload should be judged by: per tree for agent trees
(several calls per query), per million tokens processed when prompt tokens dominate, else per
million output tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planner.app.formatting import fmt_usd

ATTAINMENT_TO_PASS = 0.99
"""[A] Share of trees that must meet every SLO for a pass: the tree SLO is a p99 target."""


def _get(data: Mapping[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def plural(count: Any, noun: str) -> str:
    """``1 rack``, ``2 racks``, ``None racks``: a count with its noun in the right number."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def model_and_fleet(summary: Mapping[str, Any]) -> str:
    """``qwen35_397b_a17b on gb200_unified`` and the like: the model(s) and the fleet's name.

    The fleet's name is ``summary["fleet_name"]`` when the run recorded it, else the hardware
    of its pools (``gb200_nvl72 + groq_lpu_v1``).
    """
    fleet = summary.get("fleet") or {}
    models = sorted({str(p.get("model")) for p in fleet.values()}) or ["a model"]
    hardware = " + ".join(dict.fromkeys(str(p.get("hardware")) for p in fleet.values()))
    return f"{' + '.join(models)} on {summary.get('fleet_name') or hardware or 'the fleet'}"


def headline_cost(summary: Mapping[str, Any]) -> dict[str, Any]:
    """``{metric, usd, unit, why}``: the cost figure the workload's spending follows.

    ``usd_per_million_tokens_processed`` = yearly cost / (prompt tokens prefilled + output
    tokens) a year, derived from ``usd_per_million_output_tokens`` scaled by output tokens /
    tokens processed (both per second of the run).
    """
    cost = summary.get("cost") or {}
    calls_per_tree = _get(summary, "trees", "calls_per_tree_mean") or 0.0
    pools = summary.get("pools") or {}
    prefill_tps = sum(float(p.get("prefill_tokens_per_s") or 0.0) for p in pools.values())
    output_tps = sum(float(p.get("output_tokens_per_s") or 0.0) for p in pools.values())
    per_output = cost.get("usd_per_million_output_tokens")
    if calls_per_tree > 1.0 and cost.get("usd_per_tree"):
        return {
            "metric": "usd_per_tree",
            "usd": cost["usd_per_tree"],
            "unit": "per agent tree",
            "why": f"a query is a tree of {calls_per_tree:.1f} calls on average",
        }
    if per_output and prefill_tps > output_tps > 0:
        return {
            "metric": "usd_per_million_tokens_processed",
            "usd": per_output * output_tps / (prefill_tps + output_tps),
            "unit": "per million tokens processed",
            "why": f"prompt tokens are {prefill_tps / (prefill_tps + output_tps):.0%} of the work",
        }
    return {
        "metric": "usd_per_million_output_tokens",
        "usd": per_output,
        "unit": "per million output tokens",
        "why": "output tokens dominate",
    }


def fleet_name(summary: Mapping[str, Any]) -> str:
    """``llama2_70b on 1 rack of h100 (gpu: 4 replicas, TP4, bf16, vllm)`` and the like."""
    fleet = summary.get("fleet") or {}
    pools = summary.get("pools") or {}
    models = sorted({str(p.get("model")) for p in fleet.values()})
    parts = []
    for name, p in fleet.items():
        racks = p.get("racks")
        mapping = [plural(_get(pools, name, "replicas"), "replica"), f"TP{p.get('tp')}"]
        if (p.get("ep") or 1) > 1:
            mapping.append(f"EP{p.get('ep')}")
        mapping += [str(p.get("precision"))] + ([str(p["stack"])] if p.get("stack") else [])
        parts.append(
            f"{name}: {plural(racks, 'rack')} of {p.get('hardware')}, "
            f"{p.get('role')}, {', '.join(mapping)}"
        )
    return f"{' + '.join(models) or 'a model'} on {'; '.join(parts) or 'the fleet'}"


def passes(attainment: float | None, stable: bool | None, partial: bool | None) -> bool:
    """The pass/fail rule of a run, the one every page judges by (run verdict, sweep "best").

    Args:
        attainment: ``slo.attainment``, the share of arrived trees that met every SLO (None: no
            tree arrived).
        stable: ``stability.stable`` (None: not judged, taken as stable).
        partial: ``partial``, whether a limit stopped the clock (None: taken as complete).

    Returns:
        True when at least :data:`ATTAINMENT_TO_PASS` of the trees met every SLO, the admission
        queue did not keep growing and the run was not cut short.
    """
    return (
        attainment is not None
        and attainment >= ATTAINMENT_TO_PASS
        and stable is not False
        and not partial
    )


def passed(summary: Mapping[str, Any]) -> bool:
    """:func:`passes` applied to a run's summary (the ``summary.json`` layout)."""
    return passes(
        _get(summary, "slo", "attainment"),
        _get(summary, "stability", "stable"),
        bool(summary.get("partial")),
    )


def verdict_lines(summary: Mapping[str, Any]) -> list[str]:
    """The verdict as short sentences, the pass/fail one first (see the module docstring)."""
    slo = summary.get("slo") or {}
    attainment = slo.get("attainment")
    stable = _get(summary, "stability", "stable") is not False
    partial = bool(summary.get("partial"))
    ok = passed(summary)
    p99 = _get(summary, "trees", "e2e_s", "p99")
    limit = slo.get("tree_e2e_s", "n/a")
    p99_text = (
        f"no tree finished, tree SLO {limit} s"
        if p99 is None
        else f"tree p99 {p99:,.1f} s against {limit} s"
    )
    attain_text = "n/a" if attainment is None else f"{attainment:.1%}"
    lines = [
        f"{'PASS' if ok else 'FAIL'}: {fleet_name(summary)} met every SLO for "
        f"{attain_text} of trees (needs {ATTAINMENT_TO_PASS:.0%}; {p99_text}, "
        f"TTFT <= {slo.get('ttft_s', 'n/a')} s, TPOT <= {slo.get('tpot_s', 'n/a')} s)"
    ]
    if not stable:
        lines.append(
            f"OVERLOADED: {_get(summary, 'stability', 'reason')}; latencies would keep growing "
            "with a longer run"
        )
    if partial:
        lines.append(
            f"PARTIAL RUN: the clock stopped ({summary.get('stop_reason')}) at "
            f"{float(summary.get('sim_time_s') or 0.0):,.0f} s simulated; figures cover what "
            "finished"
        )
    pools = summary.get("pools") or {}
    failures = sum(int(p.get("failures") or 0) for p in pools.values())
    calls = summary.get("calls") or {}
    if failures or calls.get("failed") or calls.get("retries"):
        lines.append(
            f"failures injected: {failures:,} accelerator failures, {calls.get('retries', 0):,} "
            f"call restarts, {calls.get('failed', 0):,} calls given up"
        )
    for name, pool in pools.items():
        if pool.get("gave_up_s") is not None:
            lines.append(
                f"pool {name} GAVE UP at {pool['gave_up_s']:,.0f} s: {pool.get('give_up_reason')}"
            )
    if slo.get("feasible") is False and slo.get("infeasible_reason"):
        lines.append(str(slo["infeasible_reason"]).rstrip("."))
    for name, pool in pools.items():
        head = pool.get("headroom") or {}
        if head.get("load_fraction") is not None:
            lines.append(
                f"pool {name} runs at {head['load_fraction']:.0%} of its knee "
                f"({head['knee_rate_per_s']:,.1f} calls/s at the SLOs, static model; offered "
                f"{head['offered_rate_per_s']:,.1f} calls/s)"
            )
    cost = headline_cost(summary)
    if cost["usd"]:
        lines.append(f"cost {fmt_usd(cost['usd'])} {cost['unit']} ({cost['why']})")
    return lines


BUDGET_PARTS = ("queue_s", "prefill_s", "decode_s", "transfer_s", "tool_s")
"""The parts of a tree's critical path (``trees.latency_budget.<shape>.<pct>``), in order."""


def worst_shape(summary: Mapping[str, Any]) -> str | None:
    """The tree shape whose critical path at p99 is longest (None without a latency budget)."""
    budget = _get(summary, "trees", "latency_budget") or {}
    totals = {
        shape: sum(float((b.get("p99") or {}).get(k) or 0.0) for k in BUDGET_PARTS)
        for shape, b in budget.items()
        if isinstance(b, Mapping)
    }
    return max(totals, key=lambda shape: totals[shape]) if totals else None


def budget_line(summary: Mapping[str, Any]) -> str | None:
    """One line: the worst shape's latency budget at p99, its zero-load floor and the tree SLO.

    ``chain trees at p99 (566.8 s, the slowest shape) = queue 0.2 s + prefill 20.0 s + decode
    432.6 s + transfer 0.0 s + tool 113.9 s; zero-load floor 538.0 s; tree SLO 600 s``: the
    split of the p99 tree of that shape (its parts add up to the p99). None when the summary has
    no latency budget.
    """
    shape = worst_shape(summary)
    if shape is None:
        return None
    p99 = _get(summary, "trees", "latency_budget", shape, "p99") or {}
    total = sum(float(p99.get(key) or 0.0) for key in BUDGET_PARTS)
    parts = " + ".join(
        f"{key.removesuffix('_s')} {float(p99.get(key) or 0.0):,.1f} s" for key in BUDGET_PARTS
    )
    floor = _get(summary, "trees", "floor_s", shape)
    floor_text = f"; zero-load floor {floor:,.1f} s" if floor is not None else ""
    limit = _get(summary, "slo", "tree_e2e_s")
    slo_text = f"; tree SLO {limit:g} s" if limit is not None else ""
    return (
        f"{shape} trees at p99 ({total:,.1f} s, the slowest shape) = {parts}{floor_text}{slo_text}"
    )


def verdict(summary: Mapping[str, Any]) -> str:
    """The verdict as one sentence (``summary.json``'s ``verdict``)."""
    return "; ".join(verdict_lines(summary)) + "."
