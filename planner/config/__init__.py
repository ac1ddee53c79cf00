"""The one converter from plain mappings to the frozen, validated specs the planner takes.

Plain mappings are Hydra's containers, YAML files or a notebook's dicts.

Bad input of any kind raises :class:`~planner.specs.errors.ConfigError` naming the full dotted
field and what is allowed; nothing here imports Hydra or OmegaConf, so a notebook can call::

    from planner import config
    fleet = config.fleet({"pools": {"gpu": {"role": "unified", "hardware": "gb200_nvl72",
                                            "model": "llama3_70b", "racks": 2, "tp": 8}}})

Modules: :mod:`.errors` (pydantic errors -> ConfigError), :mod:`.resolve` (``conf/`` names),
:mod:`.options` (the console scripts' own option groups), :mod:`.specs` (hardware, models),
:mod:`.workload`, :mod:`.fleet` (pools, batching, SLOs, failures, workloads), :mod:`.econ`.
"""

from planner.config.econ import (
    capacity_curve,
    distribution,
    economics,
    sizing_options,
    static_capacity,
    uncertain_inputs,
)
from planner.config.errors import reject_unknown, unknown_key, validate
from planner.config.fleet import (
    batching,
    efficiency,
    failures,
    fleet,
    pool,
    resolved_efficiency,
    slo,
    workload,
)
from planner.config.options import (
    demand_options,
    mc_options,
    output_options,
    replication_options,
    roi_options,
    roofline_options,
    run_options,
    seed,
    sizing_slo,
)
from planner.config.resolve import CONF_DIR, group_options, load_named, load_primary, load_yaml
from planner.config.specs import accelerator, model, named_model, named_system, system
from planner.config.workload import (
    arrivals,
    call_lengths,
    delay_law,
    length_law,
    shared_prefix,
    tree_shape,
)

__all__ = [
    "CONF_DIR",
    "accelerator",
    "arrivals",
    "batching",
    "call_lengths",
    "capacity_curve",
    "delay_law",
    "demand_options",
    "distribution",
    "economics",
    "efficiency",
    "failures",
    "fleet",
    "group_options",
    "length_law",
    "load_named",
    "load_primary",
    "load_yaml",
    "mc_options",
    "model",
    "named_model",
    "named_system",
    "output_options",
    "pool",
    "reject_unknown",
    "replication_options",
    "resolved_efficiency",
    "roi_options",
    "roofline_options",
    "run_options",
    "seed",
    "shared_prefix",
    "sizing_options",
    "sizing_slo",
    "slo",
    "static_capacity",
    "system",
    "tree_shape",
    "uncertain_inputs",
    "unknown_key",
    "validate",
    "workload",
]
