"""The console scripts' own option groups as strict pydantic models (frozen, no unknown keys).

The option groups of ``conf/planner.yaml``, ``size.yaml``, ``roi.yaml`` and ``roofline.yaml`` that
are not specs of their own (``seed``, ``run``, ``demand``, ``roi``, ``mc``, the roofline's replica
shape, ...). Strict mode: a string is never read as a number (``seed=abc``, ``mc.samples=1.5`` and
``roi.horizon_years=[1]`` are refused), an int is accepted where a float is expected. Each field's
``description`` is the "what is allowed" text of its error message (see :mod:`.errors`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from planner.config.errors import validate
from planner.specs.errors import ConfigError

PositiveInt = Annotated[int, Field(ge=1, description="an integer >= 1")]
MAX_MC_SAMPLES = 10_000_000
"""Most Monte Carlo samples one study may draw (memory: one float per input per sample)."""
NonNegativeInt = Annotated[int, Field(ge=0, description="an integer >= 0")]
PositiveFloat = Annotated[
    float, Field(gt=0, allow_inf_nan=False, description="a finite number > 0")
]
OptionalPositiveFloat = Annotated[
    float | None, Field(gt=0, allow_inf_nan=False, description="a finite number > 0 or null")
]
Probability = Annotated[
    float, Field(ge=0, le=1, allow_inf_nan=False, description="a probability in [0, 1]")
]
Flag = Annotated[bool, Field(description="true or false")]
Text = Annotated[str, Field(description="a string")]


class _Options(BaseModel):
    """Base of every option group: frozen, strict, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Seed(_Options):
    """The root of every random stream (``seed``)."""

    seed: NonNegativeInt = 0


class RunOptions(_Options):
    """``planner``'s ``run`` group: when to stop, the slow reference mode, and region cells.

    ``cells`` > 1 splits the fleet into that many independent cells, each with its share of
    every pool and of the tree stream, run on ``cells_backend`` and merged exactly
    (:mod:`planner.app.cells`).
    """

    max_sim_time_s: OptionalPositiveFloat = None
    max_wall_s: OptionalPositiveFloat = None
    stepwise: Flag = False
    cells: PositiveInt = 1
    cells_backend: Annotated[
        Literal["joblib", "ray", "serial"], Field(description="one of joblib, ray, serial")
    ] = "joblib"


class OutputOptions(_Options):
    """``planner``'s ``output`` group: the per-call table's format; whether to write the report."""

    calls_table: Annotated[Literal["parquet", "csv"], Field(description="one of csv, parquet")] = (
        "parquet"
    )
    report: Flag = True


class DemandOptions(_Options):
    """``planner-size``'s ``demand`` group."""

    trees_per_s: PositiveFloat
    n_trees: PositiveInt = 2000


class SizingSloOptions(_Options):
    """p99 targets of ``planner-size`` and ``planner-roi`` (``slo``), seconds."""

    tree_e2e_p99_s: PositiveFloat
    ttft_p99_s: PositiveFloat
    tpot_p99_s: PositiveFloat


class ReplicationOptions(_Options):
    """``planner-size``'s ``replication`` group: simulations per candidate fleet, CI level."""

    count: Annotated[int, Field(ge=1, le=100, description="an integer in [1, 100]")] = 3
    confidence: Annotated[
        float, Field(gt=0, lt=1, allow_inf_nan=False, description="a number in (0, 1)")
    ] = 0.95


class RoiOptions(_Options):
    """``planner-roi``'s ``roi`` group (the option names are checked against ``sizing.options``)."""

    baseline: Text
    candidate: Text
    # Fleets are depreciated over 3-6 years; 50 bounds the yearly arrays and the growth
    # factors (demand x fan-out / efficiency)^years, which overflow a float long before 10^6.
    horizon_years: Annotated[int, Field(ge=1, le=50, description="an integer in [1, 50]")] = 4
    n_trees: PositiveInt = 1500
    curve_points: Annotated[int, Field(ge=2, description="an integer >= 2")] = 6
    spot_checks: NonNegativeInt = 0
    # Discrete uncertain inputs: name -> {value: probability}. ``lpu_generation`` swaps the
    # hardware of every LPU pool, ``model`` the model of every pool (planner.app.roi_study).
    choices: dict[Literal["lpu_generation", "model"], dict[str, Probability]] = Field(
        default_factory=dict
    )
    sensitivity_samples: Annotated[int, Field(ge=8, description="an integer >= 8")] = 512
    breakeven_grid: Annotated[int, Field(ge=2, le=60, description="an integer in [2, 60]")] = 16


class McOptions(_Options):
    """``planner-roi``'s ``mc`` group; ``inputs`` (distributions) are parsed by config.econ."""

    # Each sample holds one float per input in memory (and per chunk in flight): 10 M samples
    # of ~10 inputs are ~1 GB, the most a study on one machine should draw.
    samples: Annotated[
        int, Field(ge=1, le=MAX_MC_SAMPLES, description=f"an integer in [1, {MAX_MC_SAMPLES:,}]")
    ] = 1000
    seed: NonNegativeInt = 0
    backend: Annotated[
        Literal["serial", "joblib", "ray"], Field(description="one of joblib, ray, serial")
    ] = "serial"
    n_jobs: PositiveInt = 1
    chunk_size: PositiveInt = 1000
    ray_address: Annotated[str | None, Field(description="a string or null")] = None
    inputs: Annotated[dict[str, object], Field(description="a mapping of input names")] = Field(
        default_factory=dict
    )


class ReplicaShape(_Options):
    """How one model is laid out on accelerators (roofline options, study cases)."""

    precision: Text = "fp8"
    kv_precision: Text = "bf16"
    tp: PositiveInt = 1
    ep: PositiveInt = 1
    dp_attention: bool = False
    chips: Annotated[int | None, Field(ge=1, description="an integer >= 1 or null")] = None


class RooflineOptions(ReplicaShape):
    """``planner-roofline``'s own options (besides the ``model`` and ``hardware`` groups)."""

    stack: Literal["trtllm", "sglang", "vllm"] | None = None
    isl: PositiveInt = 1024
    osl: PositiveInt = 1024
    tpot_limit_s: PositiveFloat = 0.05
    concurrency: Annotated[int | None, Field(ge=1, description="an integer >= 1 or null")] = None


class LpuLatencyCase(ReplicaShape):
    """One case of the ``lpu_latency`` study (``study.cases.<name>``)."""

    model: Text
    hardware: Text
    kv_precision: Text = "fp8"


class LongContextModel(_Options):
    """One model case (``hybrid`` or ``full``) of the ``long_context`` study."""

    model: Text
    precision: Text = "fp8"
    tp: PositiveInt = 1
    ep: PositiveInt = 1
    dp_attention: bool = False


def seed(value: object, field: str = "seed") -> int:
    """The run's root seed: an integer >= 0."""
    try:
        return validate(Seed, {"seed": value}, "").seed
    except ConfigError as error:
        raise ConfigError(field, error.problem) from None


def run_options(data: object) -> RunOptions:
    """``run`` as :class:`RunOptions`."""
    return validate(RunOptions, data, "run")


def output_options(data: object) -> OutputOptions:
    """``output`` as :class:`OutputOptions`."""
    return validate(OutputOptions, data, "output")


def demand_options(data: object) -> DemandOptions:
    """``demand`` as :class:`DemandOptions`."""
    return validate(DemandOptions, data, "demand")


def sizing_slo(data: object) -> SizingSloOptions:
    """``slo`` of the sizing tools as :class:`SizingSloOptions`."""
    return validate(SizingSloOptions, data, "slo")


def replication_options(data: object) -> ReplicationOptions:
    """``replication`` of ``planner-size`` as :class:`ReplicationOptions`."""
    return validate(ReplicationOptions, data, "replication")


def roi_options(data: object) -> RoiOptions:
    """``roi`` as :class:`RoiOptions`."""
    return validate(RoiOptions, data, "roi")


def mc_options(data: object) -> McOptions:
    """``mc`` as :class:`McOptions`."""
    return validate(McOptions, data, "mc")


def roofline_options(data: object) -> RooflineOptions:
    """``planner-roofline``'s top-level options as :class:`RooflineOptions` (groups excluded)."""
    return validate(RooflineOptions, data, "")
