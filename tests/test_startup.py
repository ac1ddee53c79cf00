"""Start-up stays light: what the CLIs import, and that the lighter paths give the same results.

Not timed (the machine is shared); ``make bench`` records the wall times (``startup.*``,
benchmarks/startup.py). These tests pin the causes instead: the heavy libraries are not imported
when the entry modules load, and each replacement of a heavy path is exactly equivalent.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.config_repository import CachingConfigRepository, ConfigRepository
from hydra.core.global_hydra import GlobalHydra
from scipy import integrate, stats

from planner.cli import common, hydra_repo, simulate
from planner.perf.gpu import expected_max_standard_normal
from planner.report import calls
from planner.sim.results import SimulationResult
from planner.workload.lengths import Z_90

ENTRY_MODULES = (
    "planner.cli.simulate",
    "planner.cli.roi",
    "planner.cli.size",
    "planner.cli.roofline",
    "planner.cli.callbacks",  # Hydra builds its callback in every run, --help included
)
HEAVY = ("scipy.stats", "scipy.integrate", "pandas", "pyarrow", "networkx", "matplotlib")


def test_entry_modules_do_not_import_heavy_libraries() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import {m}\n" for m in ENTRY_MODULES)
        + f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_z90_is_the_standard_normal_90th_percentile() -> None:
    assert float(stats.norm.ppf(0.9)) == Z_90


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8, 16, 72, 256, 1024])
def test_expected_max_is_bit_identical_to_the_scipy_stats_quadrature(n: int) -> None:
    expected = (
        0.0
        if n == 1
        else integrate.quad(
            lambda x: x * n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1), -12.0, 12.0
        )[0]
    )
    assert expected_max_standard_normal(n) == expected
    if n > 1:  # and it is the expected maximum: sqrt(2 ln n) bounds it above
        assert 0.0 < expected_max_standard_normal(n) < math.sqrt(2 * math.log(n))


@pytest.fixture(scope="module")
def partial_result() -> SimulationResult:
    """A small run stopped early, so the time columns hold NaN (never reached)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(common.CONF_DIR), version_base="1.3"):
        cfg = compose("planner", ["workload.n_trees=20", "run.max_sim_time_s=20"])
    _, result = simulate.run(cfg)
    assert pd.isna(result.finish_s).any() and not pd.isna(result.finish_s).all()
    return result


def test_arrow_calls_table_is_the_file_pandas_writes(
    partial_result: SimulationResult, tmp_path: Path
) -> None:
    path = calls.write_calls_table(partial_result, tmp_path, "parquet")
    reference = tmp_path / "pandas.parquet"
    calls.calls_table(partial_result).rename_axis("call").to_parquet(reference)
    ours, theirs = pq.read_table(path), pq.read_table(reference)
    assert ours.schema.equals(theirs.schema, check_metadata=True)
    assert ours.equals(theirs)  # NaN times stored as nulls, as pandas stores them
    pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(reference))
    assert pd.read_parquet(path).index.name == "call"


def test_csv_calls_table_still_has_the_call_index(
    partial_result: SimulationResult, tmp_path: Path
) -> None:
    path = calls.write_calls_table(partial_result, tmp_path, "csv")
    table = pd.read_csv(path)
    assert table.columns[0] == "call" and len(table) == len(partial_result.call_tree)


def _all_group_options() -> dict[str, list[str]]:
    """Every config group and its options, as ``--help`` lists them."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(common.CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups: dict[str, list[str]] = {}
        pending = [""]
        while pending:
            parent = pending.pop()
            for group in loader.list_groups(parent):
                name = f"{parent}/{group}" if parent else group
                groups[name] = sorted(loader.get_group_options(name))
                pending.append(name)
        return groups


def test_shallow_repository_copy_lists_the_same_groups_and_isolates_sources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(CachingConfigRepository, "__init__", hydra_repo._ORIGINAL_INIT)
    deep = _all_group_options()
    hydra_repo.install_shallow_repository_copy()
    assert CachingConfigRepository.__init__ is hydra_repo._init
    shallow = _all_group_options()
    assert shallow == deep and "fleet" in shallow and "hydra/launcher" in shallow

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(common.CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        assert isinstance(loader, ConfigLoaderImpl)
        original = loader.repository
        assert isinstance(original, ConfigRepository)
        before = list(original.sources)
        caching = CachingConfigRepository(original)
        assert caching.delegate is not original
        caching.initialize_sources(loader.get_search_path())
        assert original.sources == before  # same objects, same list: nothing rebound or mutated
        assert isinstance(caching.delegate, ConfigRepository)
        assert caching.delegate.sources is not original.sources
    GlobalHydra.instance().clear()
