"""``planner``: simulate a fleet serving an agent workload; ``planner scenario=NAME`` runs a study.

Writes into the Hydra run directory: ``summary.json`` (keys documented in the README), the
per-call table (``calls.parquet`` or ``calls.csv``) and prints a summary table.

``scenario=NAME`` selects ``scenarios/NAME.yaml`` as the primary config (it extends
``conf/planner.yaml`` and overrides groups); the other overrides apply on top of it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from planner import config
from planner.app.cells import cells_simulator
from planner.cli.builders import build_economics, build_fleet, build_workload
from planner.cli.callbacks import objective
from planner.cli.calls_parquet import write_calls_parquet
from planner.cli.common import (
    CONF_DIR,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    guarded_task,
    make_console,
    run_guarded,
    to_mapping,
)
from planner.cli.progress import ProgressDisplay, progress_display, simulation_progress
from planner.cli.studies import run_study
from planner.econ.tco import cost_summary, pool_cost
from planner.report.html import simulation_report
from planner.report.html_study import study_report
from planner.sim.engine import SimulationResult, simulate
from planner.sim.metrics import summarize
from planner.specs.errors import require_choice
from planner.workload.trees import CALL_KINDS

if TYPE_CHECKING:
    # pandas (and pyarrow behind it) is imported where the per-call table is built: ~0.5 s that
    # `planner --help` and the other CLIs should not pay.
    import pandas as pd

GROUPS = ("fleet", "workload", "economics", "failures")


def calls_table(result: SimulationResult) -> pd.DataFrame:
    """One row per call: tree, pools and replicas, token counts and timestamps (s)."""
    import pandas as pd  # lazily, see the module's imports

    trees = result.trees
    return pd.DataFrame(
        {
            "tree": result.call_tree,
            "kind": pd.Categorical.from_codes(trees.kind, CALL_KINDS),
            "prefill_pool": result.prefill_pool,
            "prefill_replica": result.prefill_replica,
            "decode_pool": result.decode_pool,
            "decode_replica": result.decode_replica,
            "input_tokens": trees.input_tokens,
            "output_tokens": trees.output_tokens,
            "cached_tokens": result.cached_tokens,
            "ready_s": result.ready_s,
            "admit_s": result.admit_s,
            "first_token_s": result.first_token_s,
            "finish_s": result.finish_s,
        }
    )


def write_calls_table(result: SimulationResult, out_dir: Path, fmt: str) -> Path:
    """Write the per-call table (:func:`calls_table`) atomically as parquet or csv.

    Parquet is written from the arrays by pyarrow alone (:mod:`planner.cli.calls_parquet`,
    the same file as ``calls_table(result).to_parquet``): pandas is imported only for csv.
    """
    require_choice("output.calls_table", fmt, ("parquet", "csv"))
    path = out_dir / f"calls.{fmt}"
    tmp = out_dir / f".calls.{fmt}.tmp"
    if fmt == "parquet":
        write_calls_parquet(result, tmp)
    else:
        atomic_write_text(path, calls_table(result).rename_axis("call").to_csv())
        return path
    tmp.replace(path)
    return path


def run(
    cfg: DictConfig, display: ProgressDisplay | None = None
) -> tuple[dict[str, Any], SimulationResult]:
    """Validate the config, simulate, summarize (no output files); ``display`` shows progress."""
    fleet = build_fleet(cfg.get("fleet"))
    workload = build_workload(cfg.get("workload"))
    slo = config.slo(to_mapping(cfg.get("slo") or {}, "slo"))
    seed = config.seed(cfg.get("seed"))
    run_options = config.run_options(to_mapping(cfg.get("run") or {}, "run"))
    config.output_options(to_mapping(cfg.get("output") or {}, "output"))
    failures = config.failures(to_mapping(cfg.get("failures") or {}, "failures"))
    economics = build_economics(cfg.get("economics"))
    simulator = simulate if run_options.cells == 1 else cells_simulator(run_options)
    result = simulator(
        fleet,
        workload,
        seed=seed,
        stepwise=run_options.stepwise,
        max_sim_time_s=run_options.max_sim_time_s,
        failures=failures,
        max_wall_s=run_options.max_wall_s,
        **simulation_progress(simulator, display),
    )
    summary = summarize(result, slo, fleet)
    pools = summary["pools"]
    summary["cost"] = cost_summary(
        [
            pool_cost(p.name, p.system, p.racks, pools[p.name]["power_kw_mean"], economics)
            for p in fleet.pools
        ],
        output_tokens_per_s=summary["throughput"]["output_tokens_per_s"],
        trees_per_s=summary["throughput"]["trees_per_s"],
        economics=economics,
    )
    summary["scenario"] = str(cfg.get("scenario", "default"))
    summary["fleet"] = {
        p.name: {
            "role": p.role, "hardware": p.system.name, "model": p.model.name, "racks": p.racks,
            "precision": p.precision, "tp": p.tp, "ep": p.ep, "stack": p.stack,
        }
        for p in fleet.pools
    }  # fmt: skip
    from planner.report.verdict import headline_cost, verdict  # here: the import block is shared

    headline = headline_cost(summary)
    summary["cost"]["usd_per_million_tokens_processed"] = (
        headline["usd"] if headline["metric"] == "usd_per_million_tokens_processed" else None
    )
    summary["cost"]["headline"] = headline
    summary["verdict"] = verdict(summary)
    return summary, result


def _percent(value: float | None) -> str:
    """A fraction as a percentage; ``n/a`` when the run gave nothing to measure it on."""
    return "n/a" if value is None else f"{value:.1%}"


def render(summary: dict[str, Any], console: Console) -> None:
    """Print the verdict first (pass/fail, overload, partial run, failures, model and fleet),
    then the latency table, the call accounting, each pool's headroom and the cost."""
    from planner.report.html_parts import fmt_usd  # the import block is shared
    from planner.report.verdict import (
        budget_line,
        headline_cost,
        model_and_fleet,
        plural,
        verdict_lines,
    )

    for line in verdict_lines(summary):
        bad = line.split(":", 1)[0] in ("FAIL", "OVERLOADED", "PARTIAL RUN") or "GAVE UP" in line
        bad = bad or line.startswith("No fleet")
        good = line.startswith("PASS")
        style = "bold red" if bad else "bold green" if good else None
        console.print(line, style=style, markup=False, highlight=False)
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


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="planner")
@guarded_task
def _app(cfg: DictConfig) -> float | None:
    if cfg.get("study") is not None:
        _study(cfg)
        return None
    with progress_display() as display:
        summary, result = run(cfg, display)  # validates every option before simulating
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    output = config.output_options(to_mapping(cfg.get("output") or {}, "output"))
    write_calls_table(result, out_dir, output.calls_table)
    choices = HydraConfig.get().runtime.choices
    summary["fleet_name"] = str(choices.get("fleet") or "") or None  # the fleet=<name> chosen
    atomic_write_json(out_dir / "summary.json", summary)
    run_info = {group: str(choices[group]) for group in GROUPS if choices.get(group)}
    if output.report:  # output.report=false skips the page (and its plotting time)
        report = simulation_report(summary, result, run_info=run_info)
        atomic_write_text(out_dir / "report.html", report)
    console = make_console()
    render(summary, console)
    console.print(f"results written to {out_dir}")
    return objective(summary, cfg)  # a sweeper's objective (Optuna); None without one


def _study(cfg: DictConfig) -> None:
    """Run a scenario's study and write its summary, charts and report."""
    summary, images = run_study(cfg)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    for name, data in images.items():
        atomic_write_bytes(out_dir / name, data)
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "report.html", study_report(summary, images))
    console = make_console()
    console.print(summary["answer"])
    console.print(f"results written to {out_dir}")


def main() -> None:
    """Console-script entry point."""
    run_guarded(_app, sys.argv[1:], GROUPS, "planner")


if __name__ == "__main__":
    main()
