"""Static comparisons of (model, hardware) cases for the silicon-landscape scenarios (issue 13).

:func:`compare_cases` answers "which part serves this traffic best" from rooflines alone: for
each case its single-user decode speed (latency-sensitive traffic), its output tokens/s per
accelerator within a TPOT limit (batch traffic), and that throughput per million dollars of
hardware (the system's capex shared per accelerator, ``system_capex_usd /
accelerators_per_system``). Uncalibrated and unconfirmed cases are flagged in the rows and named
in the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planner import config
from planner.app.roofline import roofline
from planner.config.options import LpuLatencyCase
from planner.econ.tco import EconomicsSpec, pool_cost
from planner.perf.replica import Replica, build_replica, serving_point
from planner.specs.errors import ConfigError, require_positive_int
from planner.specs.hardware import System
from planner.specs.model import Model


def case_replica(case: LpuLatencyCase, model: Model, system: System) -> Replica:
    """The replica a study case describes (its mapping), on its family's efficiency factors.

    Raises:
        ConfigError: The mapping does not fit the hardware.
    """
    return build_replica(
        model,
        system,
        config.efficiency(system.accelerator.family),
        precision=case.precision,
        kv_precision=case.kv_precision,
        tp=case.tp,
        ep=case.ep,
        dp_attention=case.dp_attention,
        chips=case.chips,
    )


def compare_cases(
    cases: Mapping[str, Any], *, isl: int, osl: int, tpot_limit_s: float, field: str = "study"
) -> dict[str, Any]:
    """Roofline figures of each case and a one-sentence answer.

    Args:
        cases: ``{name: {model, hardware, precision, kv_precision, tp, ep, dp_attention, chips}}``.
        isl: Input tokens per request.
        osl: Output tokens per request.
        tpot_limit_s: Time-per-output-token limit of the batch-traffic throughput, s.
        field: Dotted prefix of ``cases`` in error messages.

    Returns:
        ``{"answer", "cases": {name: row}, "isl", "osl", "tpot_limit_s"}``; each row has
        ``user_tokens_per_s`` (batch 1), ``tokens_per_s_per_accelerator_at_tpot``,
        ``tokens_per_s_per_musd_capex``, ``accelerators_per_replica``, ``calibrated``,
        ``borrowed_from`` and ``hardware_confirmed``.

    Raises:
        ConfigError: A case is malformed or does not fit (one line naming the case's field).
    """
    if not isinstance(cases, Mapping) or not cases:
        raise ConfigError(f"{field}.cases", "must map case names to {model, hardware, ...}")
    rows: dict[str, dict[str, Any]] = {}
    for name, raw in cases.items():
        prefix = f"{field}.cases.{name}"
        case = config.validate(LpuLatencyCase, raw, prefix)
        model = config.named_model(case.model, f"{prefix}.model")
        system = config.named_system(case.hardware, f"{prefix}.hardware")
        shape = case.model_dump(exclude={"model", "hardware"})
        options = config.roofline_options(
            {**shape, "isl": isl, "osl": osl, "tpot_limit_s": tpot_limit_s}
        )
        try:
            summary = roofline(model, system, options)
        except ConfigError as error:
            raise ConfigError(prefix, str(error)) from None
        per_accelerator_usd = system.system_capex_usd / system.accelerators_per_system
        at_tpot = summary["max_output_tokens_per_s_per_accelerator_at_tpot"]
        rows[str(name)] = {
            "model": model.name,
            "hardware": system.name,
            "accelerators_per_replica": summary["accelerators_per_replica"],
            "user_tokens_per_s": summary["decode_tokens_per_s_per_user"],
            "tokens_per_s_per_accelerator_at_tpot": at_tpot,
            "tokens_per_s_per_musd_capex": at_tpot / per_accelerator_usd * 1e6,
            "calibrated": summary["calibrated"],
            "borrowed_from": summary["borrowed_from"],
            "hardware_confirmed": summary["hardware_confirmed"],
        }
    return {
        "answer": _answer(rows, tpot_limit_s),
        "cases": rows,
        "isl": isl,
        "osl": osl,
        "tpot_limit_s": tpot_limit_s,
    }


def _answer(rows: Mapping[str, Mapping[str, Any]], tpot_limit_s: float) -> str:
    fastest = max(rows, key=lambda n: rows[n]["user_tokens_per_s"])
    densest = max(rows, key=lambda n: rows[n]["tokens_per_s_per_musd_capex"])
    speeds = ", ".join(f"{n} {r['user_tokens_per_s']:,.0f}" for n, r in rows.items())
    per_usd = ", ".join(f"{n} {r['tokens_per_s_per_musd_capex']:,.0f}" for n, r in rows.items())
    text = (
        f"Latency-sensitive (one user): {fastest} is fastest "
        f"({rows[fastest]['user_tokens_per_s']:,.0f} tokens/s; {speeds}); batch (TPOT <= "
        f"{tpot_limit_s * 1e3:g} ms): {densest} gives the most output tokens/s per $M of "
        f"hardware ({rows[densest]['tokens_per_s_per_musd_capex']:,.0f}; {per_usd})"
    )
    caveats = [n for n, r in rows.items() if not r["calibrated"] or not r["hardware_confirmed"]]
    if caveats:
        text += f"; uncalibrated or unconfirmed: {', '.join(caveats)}"
    return text + "."


SECONDS_PER_YEAR = 365.0 * 86400.0


def document_costs(
    cases: Mapping[str, Any],
    documents: Mapping[str, Any],
    economics: EconomicsSpec,
    field: str = "study",
    claimed_ratio: float | None = None,
) -> dict[str, Any]:
    """Cost per document and memory fit of long-document jobs on each model case.

    Each replica runs saturated (continuous batching, chunked prefill interleaved with decode,
    :func:`planner.perf.replica.serving_point`), so documents per second per replica are its
    output tokens/s over the document's output tokens. A replica's cost is its accelerators'
    share of a rack's yearly cost (depreciation + energy at full system power [A: a saturated
    batch job] + maintenance, :func:`planner.econ.tco.pool_cost`).

    Args:
        cases: ``{name: {model, hardware, precision, kv_precision, tp, ep, dp_attention}}``.
        documents: ``{name: {input_tokens, output_tokens}}``.
        economics: Prices and depreciation.
        field: Dotted prefix of the study in error messages.
        claimed_ratio: A published cost ratio between the dearest and cheapest case, set
            against the computed one in the answer (None: not mentioned).

    Returns:
        ``{"answer", "documents": {doc: {case: row}}}``; a row has ``fits`` (one sequence of the
        document's length fits the replica's KV memory), ``max_batch``, ``seconds_per_document``
        (one replica, saturated) and ``usd_per_document`` (None when it does not fit).
    """
    if not isinstance(cases, Mapping) or len(cases) < 1:
        raise ConfigError(f"{field}.cases", "must map case names to {model, hardware, ...}")
    if not isinstance(documents, Mapping) or not documents:
        raise ConfigError(f"{field}.documents", "must map names to {input_tokens, output_tokens}")
    replicas = {}
    for name, raw in cases.items():
        prefix = f"{field}.cases.{name}"
        case = config.validate(LpuLatencyCase, raw, prefix)
        model = config.named_model(case.model, f"{prefix}.model")
        system = config.named_system(case.hardware, f"{prefix}.hardware")
        try:
            replicas[str(name)] = case_replica(case, model, system)
        except ConfigError as error:
            raise ConfigError(prefix, str(error)) from None
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for doc, raw in documents.items():
        prefix = f"{field}.documents.{doc}"
        if not isinstance(raw, Mapping):
            raise ConfigError(prefix, "must be {input_tokens, output_tokens}")
        isl = require_positive_int(f"{prefix}.input_tokens", raw.get("input_tokens", 0))
        osl = require_positive_int(f"{prefix}.output_tokens", raw.get("output_tokens", 0))
        table[str(doc)] = {}
        for name, replica in replicas.items():
            system = replica.system
            rack = pool_cost(
                name, system, 1, system.system_power_kw * system.systems_per_rack, economics
            )
            rack_usd_per_year = rack.depreciation_usd_per_year + rack.opex_usd_per_year
            replica_usd_per_s = (
                rack_usd_per_year * replica.accelerators / system.accelerators_per_rack
            ) / SECONDS_PER_YEAR
            max_batch = replica.max_batch(isl + osl)
            # What the replica holds per sequence, in its stack's KV layout.
            kv_gib = replica.sequence_bytes(isl + osl) / 2**30
            row: dict[str, Any] = {
                "model": replica.model.name,
                "hardware": system.name,
                "fits": max_batch >= 1,
                "max_batch": max_batch,
                "gib_per_sequence": kv_gib,
                "seconds_per_document": None,
                "usd_per_document": None,
            }
            if max_batch >= 1:
                point = serving_point(replica, isl, osl)
                if point.output_tokens_per_s > 0:
                    seconds = osl / point.output_tokens_per_s
                    row["seconds_per_document"] = seconds
                    row["usd_per_document"] = seconds * replica_usd_per_s
            table[str(doc)][name] = row
    return {"answer": _document_answer(table, claimed_ratio), "documents": table}


def _document_answer(
    table: Mapping[str, Mapping[str, Mapping[str, Any]]], claimed_ratio: float | None
) -> str:
    parts = []
    for doc, rows in table.items():
        cells = []
        for name, row in rows.items():
            usd = row["usd_per_document"]
            cells.append(
                f"{name} ${usd:,.3f}/document ({row['max_batch']:,} fit per replica)"
                if usd is not None
                else f"{name} does not fit"
            )
        costs = [r["usd_per_document"] for r in rows.values() if r["usd_per_document"]]
        ratio = f", {max(costs) / min(costs):.1f}x apart" if len(costs) > 1 else ""
        parts.append(f"{doc}: " + ", ".join(cells) + ratio)
    text = "; ".join(parts)
    if claimed_ratio is not None:
        text += f" (the claim is {claimed_ratio:g}x)"
    return text + "."
