"""The simulator's modules import one way: no cycle, ``TYPE_CHECKING`` imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

SIM = Path(__file__).resolve().parents[1] / "planner" / "sim"


def _imports(path: Path) -> set[str]:
    """Every ``planner.*`` module a file imports, anywhere in it (guarded imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("planner"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("planner"))
    return found


def test_sim_modules_form_no_import_cycle() -> None:
    graph = nx.DiGraph()
    for path in SIM.glob("*.py"):
        module = f"planner.sim.{path.stem}"
        graph.add_node(module)
        for target in _imports(path):
            if target.startswith("planner.sim"):
                graph.add_edge(module, target)
    assert nx.is_directed_acyclic_graph(graph), list(nx.simple_cycles(graph))
    # One job each: the replica knows its pool only through a protocol, routers know neither.
    assert not any(
        t in {"planner.sim.pool", "planner.sim.engine"} for t in graph["planner.sim.replica"]
    )
    assert set(graph["planner.sim.routing"]) == set()
    assert "planner.sim.engine" not in set(graph["planner.sim.faults"])
