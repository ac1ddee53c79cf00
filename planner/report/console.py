"""The console output of ``planner`` and ``planner-roofline``: a summary printed with rich.

:func:`render_run` prints a run's verdict first (pass/fail, overload, partial run, failures,
model and fleet), then its latency table, call accounting, each pool's headroom and the cost;
:func:`render_roofline` prints the static per-replica figures with their caveats.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from planner.app.formatting import fmt_usd
from planner.app.verdict import (
    budget_line,
    headline_cost,
    model_and_fleet,
    plural,
    verdict_lines,
)
from planner.report.notes import calibration_notes


def _percent(value: float | None) -> str:
    """A fraction as a percentage; ``n/a`` when the run gave nothing to measure it on."""
    return "n/a" if value is None else f"{value:.1%}"


def render_run(summary: Mapping[str, Any], console: Console) -> None:
    """Print a ``planner`` run.

    The verdict first (pass/fail, overload, partial run, failures, model and fleet), then the
    latency table, the call accounting, each pool's headroom and the cost.
    """
    for line in verdict_lines(summary):
        bad = line.split(":", 1)[0] in ("FAIL", "OVERLOADED", "PARTIAL RUN") or "GAVE UP" in line
        bad = bad or line.startswith("No fleet")
        good = line.startswith("PASS")
        style = "bold red" if bad else "bold green" if good else None
        console.print(line, style=style, markup=False, highlight=False)
    # A pool on borrowed efficiency factors or press-only figures says so (issue 13).
    for note in calibration_notes(summary.get("pools")):
        console.print(note, style="yellow", markup=False, highlight=False)
    table = Table(
        title=f"planner: {summary['scenario']}, {model_and_fleet(summary)} (seed {summary['seed']})"
    )
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p90", justify="right")
    table.add_column("p99", justify="right")

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:,.3f}"

    for label, dist in (
        ("call queue (s)", summary["calls"]["queue_s"]),
        ("call TTFT (s)", summary["calls"]["ttft_s"]),
        ("call TPOT (s)", summary["calls"]["tpot_s"]),
        ("call end-to-end (s)", summary["calls"]["e2e_s"]),
        ("tree end-to-end (s)", summary["trees"]["e2e_s"]),
    ):
        table.add_row(label, *(fmt(dist[k]) for k in ("mean", "p50", "p90", "p99")))
    console.print(table)
    calls = summary["calls"]
    console.print(
        f"calls: {calls['arrived']:,} arrived = {calls['completed']:,} completed + "
        f"{calls['in_flight']:,} in flight + {calls['failed']:,} failed; "
        f"trees completed {summary['trees']['completed']:,}; "
        f"SLO attainment {_percent(summary['slo']['attainment'])}"
    )
    budget = budget_line(summary)
    if budget:  # where the slowest shape's p99 goes, against its zero-load floor
        console.print(f"latency budget: {budget}", markup=False, highlight=False)
    for name, pool in summary["pools"].items():
        console.print(
            f"pool {name} ({pool['role']}, {plural(pool['racks'], 'rack')}, "
            f"{plural(pool['replicas'], 'replica')}): "
            + (
                f"load {_percent(pool['headroom']['load_fraction'])} of its knee, "
                if pool.get("headroom")
                else ""
            )
            + (
                f"MBU {_percent(pool['mbu'])}, MFU {_percent(pool['mfu'])}, "
                if pool.get("mbu") is not None
                else ""
            )
            + f"busy {_percent(pool['busy_fraction'])}, "
            f"mean batch {pool['mean_decode_batch']:.1f}, "
            f"{pool['output_tokens_per_s']:,.0f} output tok/s, "
            f"{pool['power_kw_mean']:,.1f} kW mean"
        )
    cost = summary["cost"]
    headline = cost.get("headline") or headline_cost(summary)
    per_million = cost["usd_per_million_output_tokens"]
    console.print(
        f"cost: capex {fmt_usd(cost['capex_usd'])}, "
        f"opex {fmt_usd(cost['opex_usd_per_year'])}/year, "
        + (f"{fmt_usd(headline['usd'])} {headline['unit']}" if headline["usd"] else "no output")
        + (
            f" ({fmt_usd(per_million)} per million output tokens)"
            if per_million and headline["metric"] != "usd_per_million_output_tokens"
            else ""
        )
    )
    console.print(
        f"throughput {summary['throughput']['output_tokens_per_s']:,.0f} output tok/s; "
        f"simulated {summary['sim_time_s']:,.0f} s in {summary['wall_time_s']:.1f} s wall"
    )


def render_roofline(summary: Mapping[str, Any], console: Console) -> None:
    """Print a ``planner-roofline`` summary as a readable two-column table."""
    table = Table(
        title=f"{summary['model']} on {summary['hardware']} "
        f"({summary['precision']}, ISL {summary['isl']} / OSL {summary['osl']})",
        show_header=True,
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    n = summary["accelerators_per_replica"]
    rows = [
        ("accelerators per replica", f"{n} ({summary['racks_per_replica']:.2f} racks)"),
        ("weights", f"{summary['weight_bytes'] / 1e9:,.1f} GB"),
        ("KV cache per token", f"{summary['kv_bytes_per_token'] / 1024:,.1f} KiB"),
        ("fixed state per sequence", f"{summary['state_bytes_per_sequence'] / 2**20:,.1f} MiB"),
        (f"max batch at {summary['context_tokens']:,} tokens", f"{summary['max_batch']:,}"),
        ("decode speed, batch 1", f"{summary['decode_tokens_per_s_per_user']:,.1f} tok/s/user"),
        (
            "  roofline bound at batch 1",
            f"{summary['roofline_tokens_per_s_per_user']:,.1f} tok/s/user",
        ),
        ("prefill time of one prompt", f"{summary['prefill_time_s'] * 1e3:,.1f} ms"),
        (
            "saturated throughput",
            f"{summary['max_output_tokens_per_s_per_accelerator']:,.0f} tok/s/accelerator",
        ),
        (
            "  at batch / TPOT",
            f"{summary['saturation_batch']:,} / {summary['saturation_tpot_s'] * 1e3:,.1f} ms",
        ),
        (
            f"throughput at TPOT <= {summary['tpot_limit_s'] * 1e3:g} ms",
            f"{summary['max_output_tokens_per_s_per_accelerator_at_tpot']:,.0f} tok/s/accelerator",
        ),
        ("  at batch", f"{summary['batch_at_tpot']:,}"),
    ]
    at = summary.get("at_concurrency")
    if at is not None:
        rows += [
            (
                f"at concurrency {summary['concurrency']}",
                f"{at['output_tokens_per_s_per_accelerator']:,.1f} tok/s/accelerator",
            ),
            (
                "  per user / TPOT",
                f"{at['tokens_per_s_per_user']:,.1f} tok/s / {at['tpot_s'] * 1e3:,.1f} ms",
            ),
            ("  TTFT / decoding batch", f"{at['ttft_s'] * 1e3:,.0f} ms / {at['batch']:,.1f}"),
        ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for note in caveats(summary):
        console.print(f"note: {note}")


def caveats(summary: Mapping[str, Any]) -> list[str]:
    """What a reader must know before trusting the figures (uncalibrated, unconfirmed)."""
    notes = []
    if not summary.get("calibrated", True):
        donor = summary.get("borrowed_from")
        source = f"borrowed from {donor}" if donor else "borrowed from a neighbouring stack"
        notes.append(
            f"calibrated: false: the efficiency factors are {source}; this family and stack "
            "have no measurements of their own"
        )
    if not summary.get("hardware_confirmed", True):
        notes.append(f"{summary['hardware']}: unconfirmed figures (press only); a what-if")
    return notes


def _times(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f}x"


def _pct(value: float | None) -> str:
    return "none" if value is None else f"{value:.1%}"


def roi_lines(summary: Mapping[str, Any]) -> list[str]:
    """What ``planner-roi`` prints: the answer, IRR, break-even price, fleets, variance shares."""
    roi = summary["roi"]
    irr, sens = roi["irr"], roi["sensitivity"]
    price = roi["breakeven_lpu_price_factor"]
    lines = [
        str(summary["answer"]),
        f"IRR over all futures: p50 {_pct(irr['p50'])} (none in "
        f"{1 - irr['defined_fraction']:.0%} of futures); payback within the horizon in "
        f"{roi['payback_years']['within_horizon_fraction']:.0%}",
        f"LPU price at break-even (x list): p50 {_times(price['p50'])}; "
        f"{price['none_fraction']:.0%} of futures lose even with free LPU racks",
    ]
    lines += [
        f"{name}: peak {fleet['peak_racks']['p50']:,.0f} racks, "
        f"{fleet['peak_power_mw']['p50']:,.1f} MW IT (median future)"
        for name, fleet in roi["fleets"].items()
    ]
    shares = ", ".join(f"{n} {sens['shares'][n]:.0%}" for n in sens["ranked"][:4])
    lines.append(f"variance shares of NPV (squared rank correlation): {shares}")
    return lines
