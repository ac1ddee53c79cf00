"""``planner-size``: the fewest racks of each fleet option meeting the SLOs at a demand.

Prints a comparison table and writes ``summary.json`` into the Hydra run directory with, per
option, the racks found (and the analytic estimate that bracketed the search), accelerators,
capex, yearly opex, cost per million output tokens and the achieved p99 figures.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from planner import config
from planner.app.provenance import all_calibrated, fleet_provenance
from planner.cli.builders import build_economics, build_workload
from planner.cli.common import (
    CONF_DIR,
    atomic_write_json,
    atomic_write_text,
    guarded_task,
    make_console,
    run_guarded,
    to_mapping,
)
from planner.cli.progress import Update, progress_display
from planner.econ.sizing import SizingOption, SizingResult, SizingSlo, size_option
from planner.econ.tco import EconomicsSpec, cost_summary, pool_cost
from planner.report.html import size_report
from planner.sim.config import SloSpec
from planner.sim.metrics import summarize

GROUPS = ("workload", "sizing", "economics", "failures")


def option_summary(
    result: SizingResult, option: SizingOption, economics: EconomicsSpec
) -> dict[str, Any]:
    """One option's entry in ``summary.json``."""
    run = summarize(result.check.result, SloSpec())
    pools = {p.name: p for p in option.fleet.pools}
    racks = {name: result.racks.get(name, pools[name].racks) for name in pools}
    costs = cost_summary(
        [
            pool_cost(
                name,
                pools[name].system,
                racks[name],
                run["pools"][name]["power_kw_mean"],
                economics,
            )
            for name in pools
        ],
        output_tokens_per_s=run["throughput"]["output_tokens_per_s"],
        trees_per_s=run["throughput"]["trees_per_s"],
        economics=economics,
    )
    return {
        "racks": racks,
        "racks_total": sum(racks.values()),
        "analytic_racks": dict(result.analytic_racks),
        "feasible": result.feasible,
        "accelerators": sum(run["pools"][n]["accelerators"] for n in pools),
        "capex_usd": costs["capex_usd"],
        "opex_usd_per_year": costs["opex_usd_per_year"],
        "usd_per_year": costs["usd_per_year"],
        "usd_per_million_output_tokens": costs["usd_per_million_output_tokens"],
        "p99": dict(result.check.p99),
        "simulations": result.simulations,
        "hardware": {name: pools[name].system.name for name in pools},
        "pools": fleet_provenance(option.fleet),
    }


def run(cfg: DictConfig, progress: Update | None = None) -> dict[str, Any]:
    """Validate, size every option, and return the summary (no output files).

    ``progress(done, total)`` is called with the options sized so far.
    """
    workload = build_workload(cfg.get("workload"))
    demand = config.demand_options(to_mapping(cfg.get("demand") or {}, "demand"))
    trees_per_s = demand.trees_per_s
    workload = type(workload)(workload.arrivals, workload.tree, n_trees=demand.n_trees)
    targets = config.sizing_slo(to_mapping(cfg.get("slo") or {}, "slo"))
    slo = SizingSlo(targets.tree_e2e_p99_s, targets.ttft_p99_s, targets.tpot_p99_s)
    max_racks, options = config.sizing_options(to_mapping(cfg.get("sizing"), "sizing"))
    failures = config.failures(to_mapping(cfg.get("failures") or {}, "failures"))
    economics = build_economics(cfg.get("economics"))
    seed = config.seed(cfg.get("seed"))
    results = {}
    for done, option in enumerate(options):
        if progress:
            progress(done, len(options))
        result = size_option(
            option, workload, trees_per_s, slo, seed=seed, max_racks=max_racks, failures=failures
        )
        results[option.name] = option_summary(result, option, economics)
    return {
        "scenario": str(cfg.get("scenario", "size")),
        "answer": sizing_answer(results, trees_per_s, failures is not None),
        "demand_trees_per_s": trees_per_s,
        "slo": {key: getattr(slo, key) for key in ("tree_e2e_p99_s", "ttft_p99_s", "tpot_p99_s")},
        "failures": failures is not None,
        "options": results,
        "seed": seed,
    }


def sizing_answer(options: dict[str, dict[str, Any]], trees_per_s: float, failures: bool) -> str:
    """One sentence: which options meet the SLOs, the cheapest per year, what each costs."""
    feasible = {n: o for n, o in options.items() if o["feasible"]}
    infeasible = [n for n in options if n not in feasible]
    if not feasible:
        return f"No option meets the SLOs at {trees_per_s:g} trees/s within the rack limit."
    cheapest = min(feasible, key=lambda n: feasible[n]["usd_per_year"])
    parts = [
        f"{n}: {sum(o['racks'].values())} racks, ${o['usd_per_year'] / 1e6:,.2f} M/year"
        for n, o in sorted(feasible.items(), key=lambda item: item[1]["usd_per_year"])
    ]
    text = (
        f"At {trees_per_s:g} trees/s{' with failures' if failures else ''}, {cheapest} meets the "
        f"SLOs at the lowest yearly cost (depreciation + opex): " + "; ".join(parts)
    )
    if infeasible:
        text += f". Not feasible within the rack limit: {', '.join(infeasible)}"
    borrowed = [n for n, o in options.items() if not all_calibrated(o.get("pools"))]
    if borrowed:
        text += f". calibrated: false for {', '.join(borrowed)} (borrowed efficiency factors)"
    return text + "."


def render(summary: dict[str, Any], console: Console) -> None:
    """The comparison table."""
    slo = summary["slo"]
    table = Table(
        title=f"planner-size: {summary['demand_trees_per_s']:g} trees/s, p99 tree <= "
        f"{slo['tree_e2e_p99_s']:g} s, TTFT <= {slo['ttft_p99_s']:g} s, "
        f"TPOT <= {slo['tpot_p99_s']:g} s"
    )
    for column in ("option", "racks", "analytic", "accelerators", "capex $M", "opex $M/yr",
                   "$/M out tok", "p99 tree s", "p99 TTFT s", "p99 TPOT s"):  # fmt: skip
        table.add_column(
            column,
            justify="left" if column == "option" else "right",
            no_wrap=column in ("option", "racks"),
        )
    for name, o in summary["options"].items():
        racks = ", ".join(f"{k} {v}" for k, v in o["racks"].items())
        analytic = ", ".join(f"{k} {v}" for k, v in o["analytic_racks"].items())
        per_million = o["usd_per_million_output_tokens"]
        table.add_row(
            name + ("" if o["feasible"] else " (infeasible)"),
            racks,
            analytic,
            f"{o['accelerators']:,}",
            f"{o['capex_usd'] / 1e6:,.1f}",
            f"{o['opex_usd_per_year'] / 1e6:,.2f}",
            "-" if per_million is None else f"{per_million:,.3f}",
            f"{o['p99']['tree_e2e_s']:.2f}",
            f"{o['p99']['ttft_s']:.3f}",
            f"{o['p99']['tpot_s']:.4f}",
        )
    console.print(table)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="size")
@guarded_task
def _app(cfg: DictConfig) -> None:
    with progress_display() as display:
        summary = run(cfg, display.counter("sizing options", unit="options"))
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    atomic_write_json(out_dir / "summary.json", summary)
    choices = HydraConfig.get().runtime.choices
    run_info = {group: str(choices[group]) for group in GROUPS if choices.get(group)}
    atomic_write_text(out_dir / "report.html", size_report(summary, run_info=run_info))
    console = make_console()
    render(summary, console)
    console.print(summary["answer"])
    console.print(f"summary.json written to {out_dir}")


def main() -> None:
    """Console-script entry point."""
    run_guarded(_app, sys.argv[1:], GROUPS, "size")


if __name__ == "__main__":
    main()
