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
from planner.specs.errors import ConfigError


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
        model = config.model(config.load_named("model", case.model, f"{prefix}.model"))
        system = config.system(config.load_named("hardware", case.hardware, f"{prefix}.hardware"))
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
