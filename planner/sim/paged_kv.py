"""Paged KV memory of a unified or decode replica: block sizes and the blocks decoding takes.

Unified and decode replicas page KV memory as vLLM and SGLang do: a sequence holds whole blocks
of ``KV_BLOCK_TOKENS`` tokens (``state + blocks x block bytes``), admission takes the blocks of
its prompt and first token, and decoding takes a block each time a sequence's context crosses a
block boundary. Within a segment every decoding sequence grows by one token per iteration, so
the blocks taken by iteration ``j`` are the sequences whose charged context is a multiple of the
block size then: a histogram of charged context modulo the block size (``phase``, kept by
:class:`planner.sim.replica.ReplicaSim`) gives the growth of a whole segment in O(block size),
and a segment never runs past the iteration whose blocks would not fit. A lone decoding sequence
needs no histogram: its growth has a closed form, so the replica keeps ``phase`` only while two
or more decode. All counts are whole blocks (Python integers: no rounding drifts).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from librt.vecs import vec
from mypy_extensions import i64

KV_BLOCK_TOKENS = 16
"""[V] Tokens per KV block: vLLM's default ``block_size`` (16 on CUDA; SGLang pages by 1 token,
TensorRT-LLM's ``tokens_per_block`` defaults to 32 or 64). Only the rounding up of a sequence's
last block depends on it."""

KV_WATERMARK_FRACTION = 0.01
"""[V] Share of a replica's KV memory admission leaves free while other sequences run, so they
can grow: vLLM's scheduler ``watermark`` (default 0.01)."""

_SLOPE_TOKENS = 1024
"""Context over which a block's bytes are measured (exact for full attention; for sliding-window
layers, whose KV stops growing past the window, the mean slope over the first 1,024 tokens)."""


def paged_kv_bytes(kv_bytes_for_context: Callable[[float], float]) -> tuple[int, int]:
    """(per-sequence state bytes, bytes per block) of a replica's KV, whole bytes rounded up.

    A sequence of ``t`` charged tokens holds ``state + ceil(t / KV_BLOCK_TOKENS) x block``.

    Args:
        kv_bytes_for_context: The cost model's bytes of one sequence of a given context.
    """
    state = kv_bytes_for_context(0.0)
    slope = (kv_bytes_for_context(float(_SLOPE_TOKENS)) - state) / _SLOPE_TOKENS
    block = slope * KV_BLOCK_TOKENS
    if not (math.isfinite(state) and math.isfinite(block)):
        return 0, 0
    return math.ceil(state), math.ceil(block)


def lone_new_blocks(charged_tokens: int, steps: int) -> int:
    """Blocks one sequence of ``charged_tokens`` takes over its next ``steps`` iterations.

    Iteration ``j`` needs a block when ``charged_tokens + j`` is a multiple of
    ``KV_BLOCK_TOKENS``: ``ceil((charged + steps) / B) - ceil(charged / B)`` of them.
    """
    return -(-(charged_tokens + steps) // KV_BLOCK_TOKENS) + -charged_tokens // KV_BLOCK_TOKENS


def lone_iterations_kv_allows(charged_tokens: int, free_blocks: int) -> int:
    """Iterations ``free_blocks`` free blocks feed one sequence of ``charged_tokens``.

    It runs up to the iteration that would need block ``free_blocks + 1``: ``B`` iterations per
    block, plus those left before its next block boundary.
    """
    return free_blocks * KV_BLOCK_TOKENS + -charged_tokens % KV_BLOCK_TOKENS


def histogram_new_blocks(phase: vec[i64], decoding: int, step: int, steps: int) -> int:
    """Blocks ``decoding`` sequences (two or more) take over their next ``steps`` iterations.

    Iteration ``j`` (step ``S + j``) gives a new block to every sequence whose charged context
    ``c + S + j`` is a multiple of the block size, i.e. ``c = -(S + j) mod B``: ``phase[c mod
    B]`` of them. Every full cycle of ``B`` iterations gives each sequence one.

    Args:
        phase: How many decoding sequences have each charged offset ``c`` modulo the block size.
        decoding: How many sequences decode.
        step: The replica's step counter now (``S``).
        steps: Iterations to count.
    """
    full, part = divmod(steps, KV_BLOCK_TOKENS)
    blocks = full * decoding
    for j in range(part):
        blocks += phase[-(step + j) % KV_BLOCK_TOKENS]
    return blocks


def histogram_iterations_kv_allows(
    phase: vec[i64], decoding: int, step: int, free_blocks: int
) -> int:
    """Iterations ``free_blocks`` free blocks feed ``decoding`` sequences (two or more).

    Full cycles first (``decoding`` blocks each), then iteration by iteration up to the first
    whose blocks would not fit. Arguments as :func:`histogram_new_blocks`.
    """
    full = free_blocks // decoding
    left = free_blocks - full * decoding
    at = step + full * KV_BLOCK_TOKENS
    iterations = full * KV_BLOCK_TOKENS
    for j in range(KV_BLOCK_TOKENS):
        need = phase[-(at + j) % KV_BLOCK_TOKENS]
        if need > left:
            return iterations + j
        left -= need
    return iterations + KV_BLOCK_TOKENS  # unreachable: a full cycle needs `decoding` blocks
