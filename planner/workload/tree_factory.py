"""Drawing many agent query trees at once, and reading latency off a tree.

:class:`TreeFactory` turns a :class:`~planner.workload.trees.TreeShape` into batches of trees.
All random numbers of a batch are drawn in blocks (one block per law, not one draw per call),
the structure of each tree is copied from a cached template (a fan-out of 37 sub-calls in 2
waves always has the same edges), and the result is a :class:`TreeBatch` of flat arrays, which
becomes ``networkx.DiGraph`` objects only on request (:meth:`TreeBatch.to_graphs`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from planner.specs.errors import ConfigError
from planner.workload.trees import (
    CALL_KINDS,
    MIXED_AGENT_SHAPE,
    SHAPE_KINDS,
    MixtureShape,
    TreeShape,
    _FixedShape,
    _Template,
)

if TYPE_CHECKING:
    # networkx is imported where graphs are built (~0.1 s): the engine works on the arrays.
    import networkx as nx


@dataclass(frozen=True, eq=False)
class TreeBatch:
    """A batch of agent trees as flat arrays (the engine can use these without graphs).

    Tree ``i`` owns nodes ``node_offsets[i] : node_offsets[i + 1]`` of the node arrays and
    edges ``edge_offsets[i] : edge_offsets[i + 1]`` of the edge arrays; edge endpoints are local
    node ids (0-based within the tree, topologically ordered, the last node is the sink).

    Attributes:
        tree_shape: Per tree, index into ``SHAPE_KINDS``.
        prefix_group: Per tree, its prefix group id (unique in the batch).
        node_offsets: ``n_trees + 1`` offsets into the node arrays.
        kind: Per node, index into ``CALL_KINDS``.
        input_tokens: Per node, prompt tokens (shared prefix included).
        output_tokens: Per node, generated tokens.
        shared_prefix_tokens: Per node, the shared prefix at the start of the prompt, tokens.
        delay_before_s: Per node, tool delay after the last parent finishes, seconds.
        edge_offsets: ``n_trees + 1`` offsets into the edge arrays.
        edge_src: Per edge, local id of the parent.
        edge_dst: Per edge, local id of the child.
    """

    tree_shape: NDArray[np.int8]
    prefix_group: NDArray[np.int64]
    node_offsets: NDArray[np.int64]
    kind: NDArray[np.int8]
    input_tokens: NDArray[np.int64]
    output_tokens: NDArray[np.int64]
    shared_prefix_tokens: NDArray[np.int64]
    delay_before_s: NDArray[np.float64]
    edge_offsets: NDArray[np.int64]
    edge_src: NDArray[np.int64]
    edge_dst: NDArray[np.int64]

    @property
    def n_trees(self) -> int:
        """Number of trees."""
        return len(self.tree_shape)

    @property
    def n_calls(self) -> int:
        """Number of calls (nodes) over all trees."""
        return len(self.kind)

    def calls_per_tree(self) -> NDArray[np.int64]:
        """Number of calls of each tree."""
        return np.diff(self.node_offsets)

    def node_tree(self) -> NDArray[np.int64]:
        """Per node, the index of its tree."""
        return np.repeat(np.arange(self.n_trees, dtype=np.int64), self.calls_per_tree())

    def graph(self, index: int) -> nx.DiGraph:
        """Tree ``index`` as a ``networkx.DiGraph`` (see the trees module for attributes)."""
        if not 0 <= index < self.n_trees:
            raise IndexError(f"tree index {index} out of range 0..{self.n_trees - 1}")
        return self._graphs(index, index + 1)[0]

    def to_graphs(self) -> list[nx.DiGraph]:
        """All trees as ``networkx.DiGraph`` objects, in batch order."""
        return self._graphs(0, self.n_trees)

    def _graphs(self, first_tree: int, end_tree: int) -> list[nx.DiGraph]:
        """Graphs of trees ``first_tree .. end_tree - 1`` (only their slices are converted)."""
        # Hot loop: ~0.5 M nodes for 40 k default trees. It fills the DiGraph's adjacency dicts
        # directly (the same dicts add_nodes_from / add_edges_from fill, networkx >= 3.2;
        # tests compare against graphs built through the public API) and pauses the cyclic
        # garbage collector, which otherwise rescans the growing heap of new dicts: together
        # about 3x faster than the public API. The collector's state is restored on exit.
        trees = slice(first_tree, end_tree + 1)
        node_offsets = (self.node_offsets[trees] - self.node_offsets[first_tree]).tolist()
        edge_offsets = (self.edge_offsets[trees] - self.edge_offsets[first_tree]).tolist()
        nodes_in = slice(self.node_offsets[first_tree], self.node_offsets[end_tree])
        edges_in = slice(self.edge_offsets[first_tree], self.edge_offsets[end_tree])
        kind_names = [CALL_KINDS[k] for k in self.kind[nodes_in].tolist()]
        inputs = self.input_tokens[nodes_in].tolist()
        outputs = self.output_tokens[nodes_in].tolist()
        shared = self.shared_prefix_tokens[nodes_in].tolist()
        delays = self.delay_before_s[nodes_in].tolist()
        src, dst = self.edge_src[edges_in].tolist(), self.edge_dst[edges_in].tolist()
        shapes = self.tree_shape[first_tree:end_tree].tolist()
        groups = self.prefix_group[first_tree:end_tree].tolist()
        import networkx as nx  # lazily: only graph consumers pay for it at start-up

        graphs = []
        collecting = gc.isenabled()
        gc.disable()
        try:
            for i in range(end_tree - first_tree):
                first, group = node_offsets[i], groups[i]
                graph = nx.DiGraph()
                graph.graph["shape"] = SHAPE_KINDS[shapes[i]]
                graph.graph["prefix_group"] = group
                nodes, succ, pred = graph._node, graph._succ, graph._pred
                for j in range(first, node_offsets[i + 1]):
                    local = j - first
                    nodes[local] = {
                        "kind": kind_names[j],
                        "input_tokens": inputs[j],
                        "output_tokens": outputs[j],
                        "shared_prefix_tokens": shared[j],
                        "prefix_group": group,
                        "delay_before_s": delays[j],
                    }
                    succ[local] = {}
                    pred[local] = {}
                for e in range(edge_offsets[i], edge_offsets[i + 1]):
                    data: dict[str, Any] = {}
                    succ[src[e]][dst[e]] = data
                    pred[dst[e]][src[e]] = data
                graphs.append(graph)
        finally:
            if collecting:
                gc.enable()
        return graphs


def _segments(starts: NDArray[np.int64], lengths: NDArray[np.int64]) -> NDArray[np.int64]:
    """Indices ``starts[k] .. starts[k] + lengths[k] - 1`` for every k, concatenated."""
    out_starts = np.cumsum(lengths) - lengths
    total = int(lengths.sum())
    return np.repeat(starts - out_starts, lengths) + np.arange(total, dtype=np.int64)


def _offsets(sizes: NDArray[np.int64]) -> NDArray[np.int64]:
    out = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=out[1:])
    return out


def _take_trees(batch: TreeBatch, order: NDArray[np.int64]) -> TreeBatch:
    """The trees of ``batch`` in the order ``order`` (a permutation of tree indices)."""
    node_sizes, edge_sizes = batch.calls_per_tree()[order], np.diff(batch.edge_offsets)[order]
    nodes = _segments(batch.node_offsets[:-1][order], node_sizes)
    edges = _segments(batch.edge_offsets[:-1][order], edge_sizes)
    return TreeBatch(
        tree_shape=batch.tree_shape[order],
        prefix_group=batch.prefix_group[order],
        node_offsets=_offsets(node_sizes),
        kind=batch.kind[nodes],
        input_tokens=batch.input_tokens[nodes],
        output_tokens=batch.output_tokens[nodes],
        shared_prefix_tokens=batch.shared_prefix_tokens[nodes],
        delay_before_s=batch.delay_before_s[nodes],
        edge_offsets=_offsets(edge_sizes),
        edge_src=batch.edge_src[edges],
        edge_dst=batch.edge_dst[edges],
    )


def _concat(batches: Sequence[TreeBatch]) -> TreeBatch:
    def cat(name: str) -> Any:
        return np.concatenate([getattr(b, name) for b in batches])

    return TreeBatch(
        tree_shape=cat("tree_shape"),
        prefix_group=cat("prefix_group"),
        node_offsets=_offsets(np.concatenate([b.calls_per_tree() for b in batches])),
        kind=cat("kind"),
        input_tokens=cat("input_tokens"),
        output_tokens=cat("output_tokens"),
        shared_prefix_tokens=cat("shared_prefix_tokens"),
        delay_before_s=cat("delay_before_s"),
        edge_offsets=_offsets(np.concatenate([np.diff(b.edge_offsets) for b in batches])),
        edge_src=cat("edge_src"),
        edge_dst=cat("edge_dst"),
    )


class TreeFactory:
    """Draws batches of agent query trees of one shape (a mixture included).

    Holds a cache of graph templates, so reuse one factory for many batches.

    Args:
        shape: The tree shape spec (default: the mixed agent workload).
    """

    def __init__(self, shape: TreeShape = MIXED_AGENT_SHAPE) -> None:
        if not isinstance(shape, TreeShape):
            raise ConfigError("workload.tree", f"must be a TreeShape, got {shape!r}")
        self.shape = shape
        self._templates: dict[tuple[Any, ...], _Template] = {}

    def sample_batch(
        self, rng: np.random.Generator, n_trees: int, *, first_prefix_group: int = 0
    ) -> TreeBatch:
        """Draw ``n_trees`` trees as flat arrays.

        Args:
            rng: The random stream to draw from.
            n_trees: Number of trees (>= 0).
            first_prefix_group: Prefix group id of the first tree; tree i gets
                ``first_prefix_group + i`` (pass a running total to keep ids unique across
                batches).

        Returns:
            The batch, trees in the order drawn.
        """
        if isinstance(n_trees, bool) or not isinstance(n_trees, (int, np.integer)) or n_trees < 0:
            raise ConfigError("n_trees", f"must be an integer >= 0, got {n_trees!r}")
        batch = self._draw(self.shape, rng, int(n_trees))
        groups = np.arange(first_prefix_group, first_prefix_group + n_trees, dtype=np.int64)
        return TreeBatch(**{**batch.__dict__, "prefix_group": groups})

    def sample(
        self, rng: np.random.Generator, n_trees: int, *, first_prefix_group: int = 0
    ) -> list[nx.DiGraph]:
        """Draw ``n_trees`` trees as ``networkx.DiGraph`` objects (see :meth:`sample_batch`)."""
        return self.sample_batch(rng, n_trees, first_prefix_group=first_prefix_group).to_graphs()

    def _draw(self, shape: TreeShape, rng: np.random.Generator, n_trees: int) -> TreeBatch:
        if isinstance(shape, MixtureShape):
            weights = np.array([w for w, _ in shape.components], dtype=np.float64)
            choice = rng.choice(len(weights), size=n_trees, p=weights / weights.sum())
            parts = [
                self._draw(component, rng, int(np.count_nonzero(choice == c)))
                for c, (_, component) in enumerate(shape.components)
            ]
            # Parts hold the trees grouped by component; put them back in drawn order.
            grouped = np.argsort(choice, kind="stable")
            order = np.empty(n_trees, dtype=np.int64)
            order[grouped] = np.arange(n_trees)
            return _take_trees(_concat(parts), order)
        if not isinstance(shape, _FixedShape):
            raise ConfigError("workload.tree", f"unsupported shape {shape!r}")
        return self._draw_fixed(shape, rng, n_trees)

    def _draw_fixed(self, shape: _FixedShape, rng: np.random.Generator, n_trees: int) -> TreeBatch:
        # Structure: one template per distinct key, gathered for every tree.
        keys = shape._keys(rng, n_trees)
        unique, inverse = np.unique(keys, return_inverse=True)
        templates = []
        for key in unique.tolist():
            cache_key = (*shape._structure, key)
            if cache_key not in self._templates:
                self._templates[cache_key] = shape._template(key)
            templates.append(self._templates[cache_key])
        t_nodes = np.array([len(t.kinds) for t in templates], dtype=np.int64)
        t_edges = np.array([len(t.src) for t in templates], dtype=np.int64)
        node_sizes, edge_sizes = t_nodes[inverse], t_edges[inverse]
        node_offsets, edge_offsets = _offsets(node_sizes), _offsets(edge_sizes)
        nodes = _segments(_offsets(t_nodes)[:-1][inverse], node_sizes)
        edges = _segments(_offsets(t_edges)[:-1][inverse], edge_sizes)
        kind = np.concatenate([t.kinds for t in templates] or [np.empty(0, np.int8)])[nodes]
        src = np.concatenate([t.src for t in templates] or [np.empty(0, np.int64)])[edges]
        dst = np.concatenate([t.dst for t in templates] or [np.empty(0, np.int64)])[edges]
        n_nodes = len(kind)

        # Token laws: one block per (call kind, law).
        own = np.zeros(n_nodes, dtype=np.int64)
        output = np.zeros(n_nodes, dtype=np.int64)
        for code, lengths in shape._roles().items():
            mask = kind == code
            count = int(np.count_nonzero(mask))
            if count:
                own[mask] = lengths.input_tokens.sample(rng, count)
                output[mask] = lengths.output_tokens.sample(rng, count)
        edge_tree_base = np.repeat(node_offsets[:-1], edge_sizes)
        src_global, dst_global = src + edge_tree_base, dst + edge_tree_base
        unshared = own
        if shape.append_parent_outputs and len(dst):
            weights = output[src_global].astype(np.float64)
            parent_outputs = np.bincount(dst_global, weights=weights, minlength=n_nodes)
            unshared = own + np.rint(parent_outputs).astype(np.int64)
        if n_trees:
            prefix = shape.shared_prefix.per_tree(rng, unshared, node_offsets)
        else:
            prefix = np.zeros(0, dtype=np.int64)
        shared = np.repeat(prefix, node_sizes)

        # Tool delays: one draw per call that has a parent.
        delay = np.zeros(n_nodes, dtype=np.float64)
        has_parent = np.bincount(dst_global, minlength=n_nodes) > 0
        count = int(np.count_nonzero(has_parent))
        if count:
            delay[has_parent] = shape.tool_delay.sample(rng, count)
        return TreeBatch(
            tree_shape=np.full(n_trees, SHAPE_KINDS.index(shape.kind), dtype=np.int8),
            prefix_group=np.zeros(n_trees, dtype=np.int64),
            node_offsets=node_offsets,
            kind=kind.astype(np.int8),
            input_tokens=shared + unshared,
            output_tokens=output,
            shared_prefix_tokens=shared,
            delay_before_s=delay,
            edge_offsets=edge_offsets,
            edge_src=src,
            edge_dst=dst,
        )


def critical_path(
    tree: nx.DiGraph, call_latency_s: Mapping[Any, float] | Sequence[float] | NDArray[np.float64]
) -> tuple[float, list[Any]]:
    """Latency of a tree and the chain of calls that sets it.

    Each call starts when all its parents have finished plus its ``delay_before_s``, and takes
    ``call_latency_s[node]`` (queueing + service, seconds). The tree's latency is the latest
    finish, i.e. the longest path with node weight ``delay_before_s + latency``.

    Args:
        tree: A tree from :class:`TreeFactory` (or any DAG whose nodes carry ``delay_before_s``;
            missing means 0).
        call_latency_s: Latency of each call, seconds, indexed by node.

    Returns:
        ``(latency_s, nodes)``: the tree latency and the critical path from a root to the last
        finishing call. ``(0.0, [])`` for an empty tree.

    Raises:
        networkx.NetworkXUnfeasible: The graph has a cycle.
    """
    import networkx as nx  # lazily, see the module's imports

    finish_s: dict[Any, float] = {}
    via: dict[Any, Any] = {}
    for node in nx.topological_sort(tree):
        best = max(tree.predecessors(node), key=finish_s.__getitem__, default=None)
        start_s = 0.0 if best is None else finish_s[best]
        delay_s = tree.nodes[node].get("delay_before_s", 0.0)
        finish_s[node] = start_s + delay_s + float(call_latency_s[node])
        via[node] = best
    if not finish_s:
        return 0.0, []
    last = max(finish_s, key=finish_s.__getitem__)
    path = [last]
    while via[path[-1]] is not None:
        path.append(via[path[-1]])
    return finish_s[last], path[::-1]


def critical_path_s(
    tree: nx.DiGraph, call_latency_s: Mapping[Any, float] | Sequence[float] | NDArray[np.float64]
) -> float:
    """Latency of a tree in seconds: the longest path (see :func:`critical_path`)."""
    return critical_path(tree, call_latency_s)[0]


def n_calls(tree: nx.DiGraph) -> int:
    """Number of calls (nodes) in one tree."""
    return int(tree.number_of_nodes())


def total_calls(trees: Iterable[nx.DiGraph]) -> int:
    """Number of calls over many trees."""
    return sum(tree.number_of_nodes() for tree in trees)
