"""``planner-roofline``: static per-replica figures for ``model=`` on ``hardware=``.

Prints a table and writes ``summary.json`` into the Hydra run directory.
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
from planner.app.roofline import roofline
from planner.cli.common import (
    CONF_DIR,
    atomic_write_json,
    guarded_task,
    load_model,
    load_system,
    make_console,
    run_guarded,
    to_mapping,
)

GROUPS = ("model", "hardware")


def compute(cfg: DictConfig) -> dict[str, Any]:
    """Validate the config and compute the roofline summary (no I/O)."""
    model = load_model(cfg)
    system = load_system(cfg)
    options = config.roofline_options(
        {k: v for k, v in to_mapping(cfg, "").items() if k not in (*GROUPS, "scenario")}
    )
    return roofline(model, system, options)


def render(summary: dict[str, Any], console: Console) -> None:
    """Print the summary as a readable two-column table."""
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
        ("  roofline bound at batch 1",
         f"{summary['roofline_tokens_per_s_per_user']:,.1f} tok/s/user"),
        ("prefill time of one prompt", f"{summary['prefill_time_s'] * 1e3:,.1f} ms"),
        ("saturated throughput",
         f"{summary['max_output_tokens_per_s_per_accelerator']:,.0f} tok/s/accelerator"),
        ("  at batch / TPOT",
         f"{summary['saturation_batch']:,} / {summary['saturation_tpot_s'] * 1e3:,.1f} ms"),
        (f"throughput at TPOT <= {summary['tpot_limit_s'] * 1e3:g} ms",
         f"{summary['max_output_tokens_per_s_per_accelerator_at_tpot']:,.0f} tok/s/accelerator"),
        ("  at batch", f"{summary['batch_at_tpot']:,}"),
    ]  # fmt: skip
    at = summary.get("at_concurrency")
    if at is not None:
        rows += [
            (f"at concurrency {summary['concurrency']}",
             f"{at['output_tokens_per_s_per_accelerator']:,.1f} tok/s/accelerator"),
            ("  per user / TPOT",
             f"{at['tokens_per_s_per_user']:,.1f} tok/s / {at['tpot_s'] * 1e3:,.1f} ms"),
            ("  TTFT / decoding batch", f"{at['ttft_s'] * 1e3:,.0f} ms / {at['batch']:,.1f}"),
        ]  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for note in caveats(summary):
        console.print(f"note: {note}")


def caveats(summary: dict[str, Any]) -> list[str]:
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


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="roofline")
@guarded_task
def _app(cfg: DictConfig) -> None:
    summary = compute(cfg)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    atomic_write_json(out_dir / "summary.json", summary)
    console = make_console()
    render(summary, console)
    console.print(f"summary.json written to {out_dir}")


def main() -> None:
    """Console-script entry point."""
    run_guarded(_app, sys.argv[1:], GROUPS, "roofline")


if __name__ == "__main__":
    main()
