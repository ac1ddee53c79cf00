"""Agent query trees and the length/delay laws they draw from."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from planner import config
from planner.specs.errors import ConfigError
from planner.workload import (
    CHAT_OUTPUT_TOKENS,
    CHAT_PROMPT_TOKENS,
    MIXED_AGENT_SHAPE,
    CallLengths,
    ChainShape,
    ChatShape,
    DebateShape,
    DelayLaw,
    FanoutShape,
    LengthLaw,
    MixtureShape,
    SharedPrefix,
    TreeBatch,
    TreeFactory,
    critical_path,
    critical_path_s,
    n_calls,
    total_calls,
)

FIXED_CALL = CallLengths(LengthLaw.fixed(100), LengthLaw.fixed(10))


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check_tree(tree: nx.DiGraph) -> None:
    """Invariants every tree satisfies."""
    assert nx.is_directed_acyclic_graph(tree)
    nodes = sorted(tree.nodes)
    assert nodes == list(range(len(nodes)))
    assert all(u < v for u, v in tree.edges)  # ids are a topological order
    assert [v for v in tree if tree.out_degree(v) == 0] == [len(nodes) - 1]  # single sink
    for v, data in tree.nodes(data=True):
        assert 0 <= data["shared_prefix_tokens"] <= data["input_tokens"]
        assert data["input_tokens"] >= 1 and data["output_tokens"] >= 1
        assert data["prefix_group"] == tree.graph["prefix_group"]
        assert data["delay_before_s"] >= 0
        if tree.in_degree(v) == 0:
            assert data["delay_before_s"] == 0


# -- length and delay laws -------------------------------------------------------------------


def test_lognormal_from_median_and_p90() -> None:
    draws = CHAT_PROMPT_TOKENS.sample(_rng(), 400_000)
    assert draws.dtype == np.int64
    assert np.median(draws) == pytest.approx(1020, rel=0.01)
    assert np.percentile(draws, 90) == pytest.approx(2734, rel=0.015)
    assert draws.min() >= 1 and draws.max() <= 14050
    assert draws.mean() == pytest.approx(CHAT_PROMPT_TOKENS.mean(), rel=0.01)
    same_sigma = LengthLaw.lognormal(1020, sigma=CHAT_PROMPT_TOKENS.log_sigma, max_value=14050)
    np.testing.assert_array_equal(
        same_sigma.sample(_rng(9), 1000), CHAT_PROMPT_TOKENS.sample(_rng(9), 1000)
    )


def test_other_length_kinds() -> None:
    uniform = LengthLaw.uniform(10, 50).sample(_rng(), 20_000)
    assert uniform.min() == 10 and uniform.max() == 50
    assert (LengthLaw.fixed(7).sample(_rng(), 5) == 7).all()
    empirical = LengthLaw.empirical([3, 5, 8]).sample(_rng(), 3000)
    assert set(empirical.tolist()) == {3, 5, 8}
    clipped = LengthLaw.lognormal(100, sigma=2.0, max_value=150).sample(_rng(), 5000)
    assert clipped.max() == 150 and clipped.min() >= 1
    assert LengthLaw.uniform(1, 4).mean() == 2.5
    assert CHAT_OUTPUT_TOKENS.sample(_rng(), 0).shape == (0,)


def test_delay_laws() -> None:
    assert (DelayLaw.fixed(0.0).sample(_rng(), 4) == 0).all()
    lognormal = DelayLaw("lognormal", median_s=1.0, p90_s=3.0).sample(_rng(), 100_000)
    assert np.median(lognormal) == pytest.approx(1.0, rel=0.03)
    assert np.percentile(lognormal, 90) == pytest.approx(3.0, rel=0.03)
    assert DelayLaw("exponential", mean_s=2.0).expected_s() == 2.0
    assert config.delay_law(1.5) == DelayLaw.fixed(1.5)


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ({"kind": "uniform", "low": 60, "high": 50}, "workload.len.low", "workload.len.high (50)"),
        (
            {"kind": "lognormal", "median": 10, "p90": 5},
            "workload.len.p90",
            "> workload.len.median",
        ),
        ({"kind": "lognormal", "median": 10}, "workload.len.p90", "exactly one"),
        ({"kind": "fixed", "value": 0}, "workload.len.value", ">= 1"),
        ({"kind": "fixed", "value": 3, "median": 4}, "workload.len.median", "not used"),
        ({"kind": "empirical", "values": []}, "workload.len.values", "non-empty"),
        ({"kind": "empirical", "values": [1, -2]}, "workload.len.values[1]", ">= 0"),
        ({"kind": "gauss"}, "workload.len.kind", "must be one of"),
        ({"kind": "fixed", "valu": 3}, "workload.len.valu", "unknown key"),
        ({"value": 3}, "workload.len.kind", "required"),
    ],
)
def test_length_law_errors(data: object, field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.length_law(data, "workload.len")
    assert info.value.field == field
    assert problem in info.value.problem


# -- shapes ----------------------------------------------------------------------------------


def test_chat_tree() -> None:
    (tree,) = TreeFactory(ChatShape()).sample(_rng(), 1)
    _check_tree(tree)
    assert n_calls(tree) == 1 and tree.graph["shape"] == "chat"
    assert tree.nodes[0]["kind"] == "chat" and tree.nodes[0]["shared_prefix_tokens"] == 0


def test_fanout_trees() -> None:
    trees = TreeFactory(FanoutShape()).sample(_rng(), 300)
    sizes = []
    for tree in trees:
        _check_tree(tree)
        n = n_calls(tree) - 2
        sizes.append(n)
        assert 10 <= n <= 50
        assert tree.out_degree(0) == n  # the planner fans out to every sub-call (one wave)
        assert tree.in_degree(n + 1) == n  # the aggregate joins them all
        kinds = [tree.nodes[v]["kind"] for v in tree]
        assert kinds == ["planner"] + ["subcall"] * n + ["aggregate"]
        assert len({tree.nodes[v]["shared_prefix_tokens"] for v in tree}) == 1
    assert min(sizes) == 10 and max(sizes) == 50
    assert total_calls(trees) == sum(sizes) + 2 * len(trees)


@pytest.mark.parametrize("link", ["all", "replan"])
def test_fanout_waves(link: str) -> None:
    shape = FanoutShape(n_subcalls=LengthLaw.fixed(10), waves=3, wave_link=link)
    (tree,) = TreeFactory(shape).sample(_rng(), 1)
    _check_tree(tree)
    subcalls = [v for v in tree if tree.nodes[v]["kind"] == "subcall"]
    planners = [v for v in tree if tree.nodes[v]["kind"] == "planner"]
    assert len(subcalls) == 10
    assert len(planners) == (3 if link == "replan" else 1)
    # Waves of 4, 3, 3: the longest chain of sub-calls has 3 of them.
    longest = nx.dag_longest_path(tree)
    assert sum(tree.nodes[v]["kind"] == "subcall" for v in longest) == 3
    assert tree.out_degree(0) == 4
    assert tree.in_degree(n_calls(tree) - 1) == 10
    edges = 4 + 4 * 3 + 3 * 3 + 10 if link == "all" else 4 + (4 + 3) + (3 + 3) + 10
    assert tree.number_of_edges() == edges


def test_chain_trees() -> None:
    trees = TreeFactory(ChainShape()).sample(_rng(), 500)
    lengths = [n_calls(t) for t in trees]
    for tree in trees:
        _check_tree(tree)
        assert tree.number_of_edges() == n_calls(tree) - 1
        assert all(tree.out_degree(v) <= 1 and tree.in_degree(v) <= 1 for v in tree)
    assert min(lengths) >= 1 and max(lengths) <= 86
    assert np.mean(lengths) == pytest.approx(ChainShape().expected_calls(), rel=0.15)


def test_debate_tree() -> None:
    (tree,) = TreeFactory(DebateShape(n_agents=4, n_rounds=2)).sample(_rng(), 1)
    _check_tree(tree)
    assert n_calls(tree) == 9 and tree.number_of_edges() == 16 + 4
    assert [v for v in tree if tree.in_degree(v) == 0] == [0, 1, 2, 3]
    assert all(set(tree.predecessors(v)) == {0, 1, 2, 3} for v in range(4, 8))
    assert tree.nodes[8]["kind"] == "aggregate"
    assert len({tree.nodes[v]["shared_prefix_tokens"] for v in tree}) == 1


def test_token_accounting_with_fixed_laws() -> None:
    shape = FanoutShape(
        n_subcalls=LengthLaw.fixed(5),
        planner=FIXED_CALL,
        subcall=FIXED_CALL,
        aggregate=FIXED_CALL,
        shared_prefix=SharedPrefix(tokens=LengthLaw.fixed(50)),
        tool_delay=DelayLaw.fixed(0.5),
    )
    (tree,) = TreeFactory(shape).sample(_rng(), 1)
    assert tree.nodes[0]["input_tokens"] == 50 + 100
    assert all(tree.nodes[v]["input_tokens"] == 50 + 100 + 10 for v in range(1, 6))
    assert tree.nodes[6]["input_tokens"] == 50 + 100 + 5 * 10
    assert [tree.nodes[v]["delay_before_s"] for v in tree] == [0.0] + [0.5] * 6
    quiet = TreeFactory(FanoutShape(**{**shape.__dict__, "append_parent_outputs": False}))
    (plain,) = quiet.sample(_rng(), 1)
    assert {plain.nodes[v]["input_tokens"] for v in plain} == {150}


def test_shared_fraction() -> None:
    shape = ChainShape(shared_prefix=SharedPrefix(fraction=0.857))
    batch = TreeFactory(shape).sample_batch(_rng(), 200)
    shared = np.add.reduceat(batch.shared_prefix_tokens, batch.node_offsets[:-1])
    total = np.add.reduceat(batch.input_tokens, batch.node_offsets[:-1])
    np.testing.assert_allclose(shared / total, 0.857, atol=2e-3)


def test_mixture_frequencies_and_order() -> None:
    batch = TreeFactory(MIXED_AGENT_SHAPE).sample_batch(_rng(), 8000)
    counts = np.bincount(batch.tree_shape, minlength=4)  # chat, fanout, chain, debate
    expected = np.array([0.3, 0.3, 0.3, 0.1]) * 8000
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    assert len(np.unique(batch.tree_shape[:100])) > 1  # trees are interleaved, not grouped
    assert batch.n_calls / batch.n_trees == pytest.approx(
        MIXED_AGENT_SHAPE.expected_calls(), rel=0.05
    )
    for index in range(0, 8000, 97):
        _check_tree(batch.graph(index))
    graphs = batch.to_graphs()
    for index in (0, 1, 4321, 7999):
        assert nx.utils.graphs_equal(batch.graph(index), graphs[index])


def test_prefix_groups_unique_and_offset() -> None:
    trees = TreeFactory().sample(_rng(), 50, first_prefix_group=1000)
    assert [t.graph["prefix_group"] for t in trees] == list(range(1000, 1050))


def test_same_seed_same_trees_other_seed_differs() -> None:
    factory = TreeFactory()
    a, b = factory.sample_batch(_rng(5), 300), TreeFactory().sample_batch(_rng(5), 300)
    c = factory.sample_batch(_rng(6), 300)
    for name in TreeBatch.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.tree_shape, c.tree_shape)
    for ga, gb in zip(a.to_graphs()[:20], b.to_graphs()[:20], strict=True):
        assert nx.utils.graphs_equal(ga, gb)


def test_fast_graphs_equal_public_api_graphs() -> None:
    for tree in TreeFactory().sample(_rng(1), 40):
        rebuilt = nx.DiGraph(**tree.graph)
        rebuilt.add_nodes_from(tree.nodes(data=True))
        rebuilt.add_edges_from(tree.edges)
        assert nx.utils.graphs_equal(tree, rebuilt)
        tree.add_edge(0, "extra")  # still a normal, mutable DiGraph
        assert "extra" in tree.succ[0] and 0 in tree.pred["extra"]
        tree.remove_node(0)
        assert all(0 not in tree.pred[v] for v in tree)


def test_empty_batch() -> None:
    batch = TreeFactory().sample_batch(_rng(), 0)
    assert batch.n_trees == 0 and batch.n_calls == 0 and batch.to_graphs() == []


# -- critical path ---------------------------------------------------------------------------


def test_critical_path_hand_built() -> None:
    tree = nx.DiGraph()
    delays = {"plan": 0.0, "a": 1.0, "b": 0.5, "c": 2.0, "join": 0.25}
    for node, delay in delays.items():
        tree.add_node(node, delay_before_s=delay)
    tree.add_edges_from([("plan", "a"), ("plan", "b"), ("b", "c"), ("a", "join"), ("c", "join")])
    latency = {"plan": 2.0, "a": 5.0, "b": 1.0, "c": 1.5, "join": 3.0}
    # plan ends 2; a ends 2+1+5 = 8; b ends 2+0.5+1 = 3.5; c ends 3.5+2+1.5 = 7;
    # join starts after max(8, 7) = 8, ends 8 + 0.25 + 3 = 11.25.
    assert critical_path_s(tree, latency) == pytest.approx(11.25)
    assert critical_path(tree, latency)[1] == ["plan", "a", "join"]
    latency["c"] = 4.0  # c now ends 9.5 -> join ends 12.75 via b and c
    length, path = critical_path(tree, latency)
    assert length == pytest.approx(12.75) and path == ["plan", "b", "c", "join"]


def test_critical_path_of_a_fanout_is_its_slowest_branch() -> None:
    (tree,) = TreeFactory(FanoutShape(n_subcalls=LengthLaw.fixed(20))).sample(_rng(2), 1)
    latency = np.linspace(1.0, 3.0, n_calls(tree))
    delay = np.array([tree.nodes[v]["delay_before_s"] for v in tree])
    branches = delay[1:21] + latency[1:21]
    expected = latency[0] + branches.max() + delay[21] + latency[21]
    assert critical_path_s(tree, latency) == pytest.approx(expected)
    assert critical_path_s(nx.DiGraph(), {}) == 0.0


# -- configuration ---------------------------------------------------------------------------


def test_shape_from_dict() -> None:
    shape = config.tree_shape(
        {
            "kind": "mixture",
            "components": [
                {
                    "weight": 0.6,
                    "shape": {
                        "kind": "fanout",
                        "n_subcalls": {"kind": "uniform", "low": 10, "high": 20},
                        "waves": 2,
                        "wave_link": "replan",
                        "subcall": {"output_tokens": 64},
                        "tool_delay": 0,
                        "shared_prefix": {"fraction": 0.5},
                    },
                },
                {"weight": 0.4, "shape": {"kind": "debate", "n_agents": 3, "n_rounds": 3}},
            ],
        }
    )
    assert isinstance(shape, MixtureShape)
    fanout = shape.components[0][1]
    assert isinstance(fanout, FanoutShape)
    assert fanout.subcall.output_tokens == LengthLaw.fixed(64)
    assert fanout.subcall.input_tokens == FanoutShape().subcall.input_tokens
    assert fanout.tool_delay == DelayLaw.fixed(0.0)
    assert shape.expected_calls() == pytest.approx(0.6 * (15 + 2 + 1) + 0.4 * 10)
    for tree in TreeFactory(shape).sample(_rng(), 50):
        _check_tree(tree)
    assert config.tree_shape({"kind": "chat"}) == ChatShape()


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        (
            {"kind": "fanout", "n_subcalls": {"kind": "uniform", "low": 60, "high": 50}},
            "workload.tree.n_subcalls.low",
            "must be <= workload.tree.n_subcalls.high (50), got 60",
        ),
        ({"kind": "fanout", "waves": 0}, "workload.tree.waves", ">= 1"),
        ({"kind": "fanout", "wave_link": "some"}, "workload.tree.wave_link", "must be one of"),
        ({"kind": "fanout", "fan": 3}, "workload.tree.fan", "unknown key"),
        ({"kind": "tree"}, "workload.tree.kind", "must be one of"),
        ({"kind": "debate", "n_agents": -1}, "workload.tree.n_agents", ">= 1"),
        (
            {"kind": "chain", "shared_prefix": {"fraction": 1.0}},
            "workload.tree.shared_prefix.fraction",
            "< 1",
        ),
        (
            {"kind": "chain", "shared_prefix": {"fraction": 0.5, "tokens": 10}},
            "workload.tree.shared_prefix.fraction",
            "at most one",
        ),
        (
            {"kind": "chain", "n_steps": {"kind": "fixed", "value": 0, "min_value": 0}},
            "workload.tree.n_steps.min_value",
            ">= 1",
        ),
        (
            {"kind": "mixture", "components": [{"weight": 0.5, "shape": {"kind": "chat"}}]},
            "workload.tree.components",
            "sum to 1, got 0.5",
        ),
        (
            {
                "kind": "mixture",
                "components": [
                    {"weight": 1.5, "shape": {"kind": "chat"}},
                    {"weight": -0.5, "shape": {"kind": "chain"}},
                ],
            },
            "workload.tree.components[0].weight",
            "[0, 1]",
        ),
        (
            {"kind": "mixture", "components": [{"weight": 1.0, "shape": {"kind": "x"}}]},
            "workload.tree.components[0].shape.kind",
            "must be one of",
        ),
        ({"kind": "mixture", "components": []}, "workload.tree.components", "non-empty"),
    ],
)
def test_shape_errors_name_the_field(data: object, field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.tree_shape(data)
    assert info.value.field == field
    assert problem in info.value.problem


def test_expected_calls_of_presets() -> None:
    assert ChatShape().expected_calls() == 1
    assert FanoutShape().expected_calls() == pytest.approx(32)
    assert DebateShape().expected_calls() == 9
    assert math.isfinite(MIXED_AGENT_SHAPE.expected_calls())
