"""The table of malformed configs and traces: each exits 2 with one line naming the field.

Every case runs a console script as a user would. The bar (issue "Reliability"): exit code 2,
a single stderr line that starts with ``error: <field>``, no traceback, and no run directory
left behind (nothing half-written).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_cli

BIN = Path(sys.executable).parent
TRACES = {
    "bad_tokens.csv": "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    "2023-11-16 18:15:46.0000000,572,19\n2023-11-16 18:15:47.0000000,abc,3\n",
    "missing_column.csv": "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.0000000,572\n",
    "negative_context.csv": "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    "2023-11-16 18:15:46.0000000,-5,19\n",
    "backwards_time.csv": "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    "2023-11-16 18:15:47.0000000,10,19\n2023-11-16 18:15:46.0000000,10,19\n",
    "empty.csv": "",
}
QUICK = ["workload.n_trees=10"]

# (console script, overrides, the field the one-line error must start with)
CASES: list[tuple[str, list[str], str]] = [
    ("planner", ["fleet=nope"], "fleet"),
    ("planner", ["workload=nope"], "workload"),
    ("planner", ["scenario=nope"], "scenario"),
    ("planner", ["seed=-1"], "seed"),
    ("planner", ["seed=1.5"], "seed"),
    ("planner", ["fleet.pools.gpu.racks=0"], "fleet.pools.gpu.racks"),
    ("planner", ["fleet.pools.gpu.racks=-2"], "fleet.pools.gpu.racks"),
    ("planner", ["fleet.pools.gpu.hardware=h999"], "fleet.pools.gpu.hardware"),
    ("planner", ["fleet.pools.gpu.model=gpt9"], "fleet.pools.gpu.model"),
    (
        "planner",
        ["fleet.pools.gpu.hardware=h100", "fleet.pools.gpu.precision=fp4"],
        "fleet.pools.gpu.precision",
    ),
    # 397B at BF16 cannot fit one H100:
    (
        "planner",
        ["fleet.pools.gpu.hardware=h100", "fleet.pools.gpu.precision=bf16", "fleet.pools.gpu.ep=1"],
        "fleet.pools.gpu.model",
    ),
    ("planner", ["fleet.pools.gpu.tp=128"], "fleet.pools.gpu.tp"),  # > the 72-GPU NVLink domain
    ("planner", ["fleet.router=random"], "fleet.router"),
    ("planner", ["workload.arrivals.rate_per_s=-1"], "workload.arrivals.rate_per_s"),
    ("planner", ["workload.arrivals.kind=magic"], "workload.arrivals.kind"),
    ("planner", ["workload.tree.kind=spiral"], "workload.tree.kind"),
    ("planner", ["workload.n_trees=0"], "workload.n_trees"),
    (
        "planner",
        ["workload=agent_fanout", "workload.tree.n_subcalls={kind: uniform, low: 60, high: 10}"],
        "workload.tree.n_subcalls",
    ),
    ("planner", ["workload.tree.components.0.weight=1.5"], "workload.tree"),
    ("planner", ["slo.ttft_s=0"], "slo.ttft_s"),
    ("planner", ["fleet.pools.gpu.batching.max_batch=0"], "fleet.pools.gpu.batching.max_batch"),
    (
        "planner",
        ["fleet.pools.gpu.batching.prefix_cache_fraction=1.5"],
        "fleet.pools.gpu.batching.prefix_cache_fraction",
    ),
    ("planner", ["fleet.pools.gpu.step_jitter_cv=-0.1"], "fleet.pools.gpu.step_jitter_cv"),
    ("planner", ["output.calls_table=xlsx"], "output.calls_table"),
    ("planner", ["economics.pue=0.5"], "economics.pue"),
    ("planner", ["run.max_sim_time_s=-5"], "run.max_sim_time_s"),
    ("planner", ["no_such_key=3"], "no_such_key"),
    ("planner", ["fleet.pools.gpu.racks=[1"], "overrides"),
    ("planner", ["+hydra.callbacks.evil._target_=os.system"], "hydra.callbacks.evil._target_"),
    ("planner", ["trace:bad_tokens.csv"], "trace:"),
    ("planner", ["trace:missing_column.csv"], "trace:"),
    ("planner", ["trace:negative_context.csv"], "trace:"),
    ("planner", ["trace:backwards_time.csv"], "trace:"),
    ("planner", ["trace:empty.csv"], "trace:"),
    ("planner-size", ["demand.trees_per_s=0"], "demand.trees_per_s"),
    ("planner-size", ["sizing.options.gpu_only.fleet=nope"], "sizing.options.gpu_only.fleet"),
    ("planner-roi", ["mc.inputs.pue.scale=-0.3"], "mc.inputs.pue"),
    (
        "planner-roi",
        ["mc.inputs.demand_growth_per_year.dist=weibull"],
        "mc.inputs.demand_growth_per_year",
    ),
    ("planner-roofline", ["tp=0"], "tp"),
    (
        "planner-roofline",
        ["model=llama3_70b", "hardware=groq_lpu_v1", "precision=fp4"],
        "precision",
    ),
]


def _arguments(script: str, overrides: list[str], tmp_path: Path) -> list[str]:
    args = []
    for override in overrides:
        if override.startswith("trace:"):
            path = tmp_path / override.removeprefix("trace:")
            path.write_text(TRACES[path.name])
            args += [
                "~workload.arrivals",
                f"+workload.arrivals={{kind: trace, path: {path}}}",
                "workload.tree={kind: chat}",
            ]
        else:
            args.append(override)
    if script == "planner":
        args = [*QUICK, *args]
    return args


@pytest.mark.parametrize(
    ("script", "overrides", "field"), CASES, ids=[f"{s} {' '.join(o)}" for s, o, _ in CASES]
)
def test_malformed_input_exits_2_with_one_line_naming_the_field(
    tmp_path: Path, script: str, overrides: list[str], field: str
) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(
        BIN / script, [f"hydra.run.dir={run_dir}", *_arguments(script, overrides, tmp_path)]
    )
    assert result.returncode == 2, (result.stdout[-500:], result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(f"error: {field}"), lines[0]
    assert not run_dir.exists(), sorted(run_dir.rglob("*"))


def test_the_table_has_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
