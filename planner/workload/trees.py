"""Agent query trees: the DAG of LLM calls one user query expands into (DESIGN.md "The workload").

A tree is a ``networkx.DiGraph``. Nodes are calls, numbered ``0 .. n-1`` in a topological
order (a parent always has a smaller id; the last node is the single sink). Edges are
dependencies: a call may start ``delay_before_s`` after all its parents have finished. Node
attributes:

- ``kind``: ``planner``, ``subcall``, ``aggregate``, ``chain_step``, ``debate_turn`` or ``chat``.
- ``input_tokens``: prompt tokens, ``shared_prefix_tokens + own + parents' outputs`` where
  *own* is drawn from the role's input law and the parents' output tokens are appended when
  the shape's ``append_parent_outputs`` is set (the data the call waited for).
- ``output_tokens``: generated tokens.
- ``shared_prefix_tokens``: leading tokens of the prompt that are the tree's shared prefix
  (system prompt + task context); always ``<= input_tokens``.
- ``prefix_group``: an id shared by all calls of one tree and by no other tree of the batch;
  calls of a group share their first ``shared_prefix_tokens`` tokens (a prefix cache can serve
  them after the first call of the group has been prefilled).
- ``delay_before_s``: tool-call delay, seconds, after the last parent finishes (0 for roots).

Graph attributes: ``shape`` (``chat``, ``fanout``, ``chain``, ``debate``) and ``prefix_group``.

Shapes: :class:`ChatShape` (one call), :class:`FanoutShape` (planner -> sub-calls in waves ->
aggregate, i.e. map-reduce), :class:`ChainShape` (ReAct loop), :class:`DebateShape` (agents x
rounds -> judge), :class:`MixtureShape` (weights over shapes).
:class:`~planner.workload.tree_factory.TreeFactory` draws trees of a shape in batches.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np
from numpy.typing import NDArray

from planner.specs.errors import (
    ConfigError,
    require_choice,
    require_fraction,
    require_positive_int,
)
from planner.workload.lengths import (
    AGENT_CALL_NEW_INPUT_TOKENS,
    AGENT_CALL_OUTPUT_TOKENS,
    AGENT_SHARED_PREFIX_TOKENS,
    CHAIN_STEPS,
    CHAT_OUTPUT_TOKENS,
    CHAT_PROMPT_TOKENS,
    FANOUT_SUBCALLS,
    NO_DELAY,
    TOOL_DELAY,
    DelayLaw,
    LengthLaw,
)

#: Call kinds; a node's ``kind`` attribute is one of these (TreeBatch stores the index).
CALL_KINDS: Final = ("planner", "subcall", "aggregate", "chain_step", "debate_turn", "chat")
PLANNER, SUBCALL, AGGREGATE, CHAIN_STEP, DEBATE_TURN, CHAT = range(6)
#: Tree shapes a batch can contain (TreeBatch.tree_shape indexes this).
SHAPE_KINDS: Final = ("chat", "fanout", "chain", "debate")
WAVE_LINKS: Final = ("all", "replan")


# --------------------------------------------------------------------------------------------
# Per-call token laws and the shared prefix
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallLengths:
    """Token laws of one role of call (e.g. the sub-calls of a fan-out).

    Attributes:
        input_tokens: The call's own prompt tokens, beyond the shared prefix and the parents'
            outputs (new context, tool results).
        output_tokens: Generated tokens.
    """

    input_tokens: LengthLaw = AGENT_CALL_NEW_INPUT_TOKENS
    output_tokens: LengthLaw = AGENT_CALL_OUTPUT_TOKENS


@dataclass(frozen=True)
class SharedPrefix:
    """How long the prompt prefix shared by all calls of a tree is; drawn once per tree.

    Give at most one of:

    - ``tokens``: a law of the prefix length in tokens;
    - ``fraction``: the prefix is set so that, over the tree's calls, this fraction of all
      prompt tokens is shared: ``prefix = fraction / (1 - fraction) x mean unshared tokens``.

    Neither: no shared prefix (0 tokens).

    Attributes:
        fraction: Shared fraction of the tree's prompt tokens, in [0, 1).
        tokens: Law of the shared prefix, tokens.
    """

    fraction: float | None = None
    tokens: LengthLaw | None = None

    def __post_init__(self) -> None:
        if self.fraction is not None and self.tokens is not None:
            raise ConfigError("SharedPrefix.fraction", "give at most one of fraction and tokens")
        if self.fraction is not None:
            require_fraction("SharedPrefix.fraction", self.fraction)
            if self.fraction >= 1:
                raise ConfigError("SharedPrefix.fraction", f"must be < 1, got {self.fraction}")
        if self.tokens is not None and not isinstance(self.tokens, LengthLaw):
            raise ConfigError("SharedPrefix.tokens", "must be a LengthLaw")

    def per_tree(
        self,
        rng: np.random.Generator,
        unshared_tokens: NDArray[np.int64],
        node_offsets: NDArray[np.int64],
    ) -> NDArray[np.int64]:
        """Prefix tokens of each tree given its calls' unshared prompt tokens."""
        n_trees = len(node_offsets) - 1
        if self.tokens is not None:
            return self.tokens.sample(rng, n_trees)
        if not self.fraction:
            return np.zeros(n_trees, dtype=np.int64)
        sizes = np.diff(node_offsets)
        mean_unshared = np.add.reduceat(unshared_tokens, node_offsets[:-1]) / sizes
        return np.rint(self.fraction / (1.0 - self.fraction) * mean_unshared).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Template:
    kinds: NDArray[np.int8]
    src: NDArray[np.int64]
    dst: NDArray[np.int64]


def _template(kinds: Sequence[int], edges: Sequence[tuple[int, int]]) -> _Template:
    pairs = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return _Template(np.asarray(kinds, dtype=np.int8), pairs[:, 0].copy(), pairs[:, 1].copy())


class TreeShape(ABC):
    """A tree shape spec (frozen dataclass subclasses); ``kind`` names it in config."""

    kind: ClassVar[str]

    @abstractmethod
    def expected_calls(self) -> float:
        """Mean number of calls (nodes) per tree (approximate where a law is clipped)."""


class _FixedShape(TreeShape):
    """A non-mixture shape: template keys drawn per tree, laws per call kind."""

    shared_prefix: SharedPrefix
    tool_delay: DelayLaw
    append_parent_outputs: bool

    def _check_bool(self) -> None:
        if not isinstance(self.append_parent_outputs, bool):
            raise ConfigError(
                f"{type(self).__name__}.append_parent_outputs",
                f"must be true or false, got {self.append_parent_outputs!r}",
            )

    def _keys(self, rng: np.random.Generator, n_trees: int) -> NDArray[np.int64]:
        """One template key per tree (a count of calls, or 0 for a fixed structure)."""
        return np.zeros(n_trees, dtype=np.int64)

    @property
    @abstractmethod
    def _structure(self) -> tuple[Any, ...]:
        """Everything besides the key that fixes the graph structure (the template cache key)."""

    @abstractmethod
    def _template(self, key: int) -> _Template: ...

    @abstractmethod
    def _roles(self) -> Mapping[int, CallLengths]: ...


@dataclass(frozen=True)
class ChatShape(_FixedShape):
    """A plain chat request: one call, no prefix sharing, no delay.

    Attributes:
        call: Token laws (default: workloads.md D1/D7 chat prompt and output).
    """

    call: CallLengths = CallLengths(CHAT_PROMPT_TOKENS, CHAT_OUTPUT_TOKENS)
    shared_prefix: SharedPrefix = SharedPrefix()
    tool_delay: DelayLaw = NO_DELAY
    append_parent_outputs: bool = False
    kind: ClassVar[str] = "chat"

    def expected_calls(self) -> float:
        """One call."""
        return 1.0

    @property
    def _structure(self) -> tuple[Any, ...]:
        return ("chat",)

    def _template(self, key: int) -> _Template:
        return _template([CHAT], [])

    def _roles(self) -> Mapping[int, CallLengths]:
        return {CHAT: self.call}


@dataclass(frozen=True)
class FanoutShape(_FixedShape):
    """Map-reduce agent tree: planner -> N sub-calls in W waves -> aggregate.

    The N sub-calls (N drawn per tree) are split into ``min(waves, N)`` waves as evenly as
    possible (earlier waves get the extra ones). ``wave_link`` says how a wave waits for the
    previous one: ``all`` (each call depends on every call of the previous wave) or ``replan``
    (a planner call joins the previous wave and the next wave depends on it). The aggregate
    depends on (and, with ``append_parent_outputs``, reads) every sub-call.

    Attributes:
        n_subcalls: Law of N per tree (default uniform 10..50, DESIGN.md).
        waves: Number of waves W (>= 1).
        wave_link: ``all`` or ``replan``.
        planner: Token laws of planner calls (the root and replan calls).
        subcall: Token laws of sub-calls.
        aggregate: Token laws of the aggregate call.
        shared_prefix: Prefix shared by all the tree's calls.
        tool_delay: Delay before every call that has parents, seconds.
        append_parent_outputs: Append parents' outputs to a call's prompt.
    """

    n_subcalls: LengthLaw = FANOUT_SUBCALLS
    waves: int = 1
    wave_link: str = "all"
    planner: CallLengths = CallLengths()
    subcall: CallLengths = CallLengths()
    aggregate: CallLengths = CallLengths()
    shared_prefix: SharedPrefix = SharedPrefix(tokens=AGENT_SHARED_PREFIX_TOKENS)
    tool_delay: DelayLaw = TOOL_DELAY
    append_parent_outputs: bool = True
    kind: ClassVar[str] = "fanout"

    def __post_init__(self) -> None:
        require_positive_int("FanoutShape.waves", self.waves)
        require_choice("FanoutShape.wave_link", self.wave_link, WAVE_LINKS)
        if self.n_subcalls.min_value < 1:
            raise ConfigError("FanoutShape.n_subcalls.min_value", "must be >= 1")
        self._check_bool()

    def expected_calls(self) -> float:
        """E[N] + 2, plus W - 1 replan calls (exact when N >= W always)."""
        replans = self.waves - 1 if self.wave_link == "replan" else 0
        return self.n_subcalls.mean() + 2.0 + replans

    def _keys(self, rng: np.random.Generator, n_trees: int) -> NDArray[np.int64]:
        return self.n_subcalls.sample(rng, n_trees)

    @property
    def _structure(self) -> tuple[Any, ...]:
        return ("fanout", self.waves, self.wave_link)

    def _template(self, key: int) -> _Template:
        n_waves = min(self.waves, key)
        sizes = [key // n_waves + (1 if i < key % n_waves else 0) for i in range(n_waves)]
        kinds, edges = [PLANNER], []
        previous, subcalls, next_id = [0], [], 1
        for wave, size in enumerate(sizes):
            if wave > 0 and self.wave_link == "replan":
                kinds.append(PLANNER)
                edges += [(p, next_id) for p in previous]
                previous, next_id = [next_id], next_id + 1
            members = list(range(next_id, next_id + size))
            kinds += [SUBCALL] * size
            edges += [(p, v) for p in previous for v in members]
            previous, next_id = members, next_id + size
            subcalls += members
        kinds.append(AGGREGATE)
        edges += [(v, next_id) for v in subcalls]
        return _template(kinds, edges)

    def _roles(self) -> Mapping[int, CallLengths]:
        return {PLANNER: self.planner, SUBCALL: self.subcall, AGGREGATE: self.aggregate}


@dataclass(frozen=True)
class ChainShape(_FixedShape):
    """Sequential ReAct loop: L steps, each waiting for the previous one plus a tool delay.

    Attributes:
        n_steps: Law of L per tree (default workloads.md D6 TraceLab, see CHAIN_STEPS).
        step: Token laws of the steps.
        shared_prefix: Prefix shared by all steps.
        tool_delay: Delay before every step but the first, seconds.
        append_parent_outputs: Append the previous step's output to a step's prompt.
    """

    n_steps: LengthLaw = CHAIN_STEPS
    step: CallLengths = CallLengths()
    shared_prefix: SharedPrefix = SharedPrefix(tokens=AGENT_SHARED_PREFIX_TOKENS)
    tool_delay: DelayLaw = TOOL_DELAY
    append_parent_outputs: bool = True
    kind: ClassVar[str] = "chain"

    def __post_init__(self) -> None:
        if self.n_steps.min_value < 1:
            raise ConfigError("ChainShape.n_steps.min_value", "must be >= 1")
        self._check_bool()

    def expected_calls(self) -> float:
        """E[L]."""
        return self.n_steps.mean()

    def _keys(self, rng: np.random.Generator, n_trees: int) -> NDArray[np.int64]:
        return self.n_steps.sample(rng, n_trees)

    @property
    def _structure(self) -> tuple[Any, ...]:
        return ("chain",)

    def _template(self, key: int) -> _Template:
        return _template([CHAIN_STEP] * key, [(i, i + 1) for i in range(key - 1)])

    def _roles(self) -> Mapping[int, CallLengths]:
        return {CHAIN_STEP: self.step}


@dataclass(frozen=True)
class DebateShape(_FixedShape):
    """Multi-agent debate: A agents x R rounds, then an aggregate (judge) call.

    Round 1's turns are the roots; every turn of round r + 1 depends on every turn of round r;
    the aggregate depends on the last round. All calls share the tree's prefix group.

    Attributes:
        n_agents: A (>= 1).
        n_rounds: R (>= 1).
        turn: Token laws of debate turns.
        aggregate: Token laws of the aggregate call.
        shared_prefix: Prefix shared by all calls.
        tool_delay: Delay before every call that has parents, seconds (default 0).
        append_parent_outputs: Append the previous round's outputs to a turn's prompt.
    """

    n_agents: int = 4
    n_rounds: int = 2
    turn: CallLengths = CallLengths()
    aggregate: CallLengths = CallLengths()
    shared_prefix: SharedPrefix = SharedPrefix(tokens=AGENT_SHARED_PREFIX_TOKENS)
    tool_delay: DelayLaw = NO_DELAY
    append_parent_outputs: bool = True
    kind: ClassVar[str] = "debate"

    def __post_init__(self) -> None:
        require_positive_int("DebateShape.n_agents", self.n_agents)
        require_positive_int("DebateShape.n_rounds", self.n_rounds)
        self._check_bool()

    def expected_calls(self) -> float:
        """A x R + 1."""
        return float(self.n_agents * self.n_rounds + 1)

    @property
    def _structure(self) -> tuple[Any, ...]:
        return ("debate", self.n_agents, self.n_rounds)

    def _template(self, key: int) -> _Template:
        a, r = self.n_agents, self.n_rounds
        edges = [
            (k * a + i, (k + 1) * a + j) for k in range(r - 1) for i in range(a) for j in range(a)
        ]
        edges += [((r - 1) * a + i, a * r) for i in range(a)]
        return _template([DEBATE_TURN] * (a * r) + [AGGREGATE], edges)

    def _roles(self) -> Mapping[int, CallLengths]:
        return {DEBATE_TURN: self.turn, AGGREGATE: self.aggregate}


@dataclass(frozen=True)
class MixtureShape(TreeShape):
    """Each tree takes one component shape, chosen with the given probabilities.

    Attributes:
        components: ``(weight, shape)`` pairs; weights in [0, 1] summing to 1.
    """

    components: tuple[tuple[float, TreeShape], ...]
    kind: ClassVar[str] = "mixture"

    def __post_init__(self) -> None:
        name = "MixtureShape.components"
        if not isinstance(self.components, tuple) or not self.components:
            raise ConfigError(name, "must be a non-empty sequence of (weight, shape)")
        for i, (weight, shape) in enumerate(self.components):
            require_fraction(f"{name}[{i}].weight", weight)
            if not isinstance(shape, TreeShape):
                raise ConfigError(f"{name}[{i}].shape", f"must be a TreeShape, got {shape!r}")
        total = math.fsum(w for w, _ in self.components)
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(name, f"weights must sum to 1, got {total:.6g}")

    def expected_calls(self) -> float:
        """Weighted mean of the components' expected calls."""
        return math.fsum(w * shape.expected_calls() for w, shape in self.components)


SHAPE_CLASSES: Final[dict[str, type[_FixedShape]]] = {
    "chat": ChatShape,
    "fanout": FanoutShape,
    "chain": ChainShape,
    "debate": DebateShape,
}

#: Default workload: a mix of agent trees and chat. The weights are an assumption (no source
#: in workloads.md); the per-call laws are those of lengths.py (workloads.md D1, D6, D7).
MIXED_AGENT_SHAPE: Final = MixtureShape(
    (
        (0.3, FanoutShape()),
        (0.3, ChainShape()),
        (0.1, DebateShape()),
        (0.3, ChatShape()),
    )
)
