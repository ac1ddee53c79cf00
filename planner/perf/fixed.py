"""A replica whose every batch iteration takes the same time: a queueing-theory test bench.

With ``max_batch = 1`` a call of ``n`` output tokens and a 1-token prompt is served in exactly
``n`` iterations, so the pool is a textbook multi-server queue: fixed ``n`` gives M/D/c, a
geometric ``n`` gives (nearly) M/M/c. The validation tests compare the engine against Erlang C
and Pollaczek-Khinchine this way. KV memory is unbounded and every step costs ``step_s``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from planner.specs.errors import require_positive
from planner.specs.hardware import System
from planner.specs.model import Model


def fixed_step_time_s(
    step_s: float,
    decode_sequences: float,
    decode_context_tokens: float,
    prefill_tokens: float = 0.0,
    prefill_attention_flops: float = 0.0,
) -> float:
    """The one step-time function of a fixed-step replica, s.

    ``step_s`` (its only coefficient) for any non-empty iteration, 0 for an empty one.
    """
    return step_s if decode_sequences + prefill_tokens > 0 else 0.0


class FixedStepReplica:
    """One accelerator; each iteration takes ``step_s`` whatever it processes.

    Args:
        model: Model (for naming and the prefill-attention hook only).
        system: System (for power and rack counts only).
        step_s: Time of every batch iteration, s.
    """

    def __init__(self, model: Model, system: System, step_s: float) -> None:
        """Hold ``step_s``; arguments as in the class docstring."""
        self.model = model
        self.system = system
        self.step_s = float(require_positive("step_s", step_s))
        self.accelerators = 1
        self.weight_bytes = 0.0
        self.kv_bytes_per_token = 0.0
        self.state_bytes_per_sequence = 0.0

    @property
    def kv_budget_bytes(self) -> float:
        """Unbounded KV memory."""
        return float("inf")

    def kv_bytes_for_context(self, context_tokens: float) -> float:
        """One unit per context token."""
        return float(context_tokens)

    def sequence_bytes(self, context_tokens: float) -> float:
        """No KV bytes: the fixed step holds no cache."""
        return self.kv_bytes_per_token * context_tokens + self.state_bytes_per_sequence

    def max_batch(self, context_tokens: float) -> int:
        """Effectively unbounded batch."""
        return 1 << 30

    def require_fit(self, context_tokens: float) -> None:
        """Everything fits."""
        return None

    def step_time_s(
        self,
        decode_sequences: int,
        decode_context_tokens: float,
        prefill_tokens: float = 0.0,
        prefill_attention_flops: float = 0.0,
    ) -> float:
        """:func:`fixed_step_time_s` with this replica's ``step_s``."""
        return fixed_step_time_s(
            self.step_s, decode_sequences, decode_context_tokens, prefill_tokens
        )

    def make_step_time_fn(self) -> Callable[[float, float, float, float], float]:
        """:func:`fixed_step_time_s` bound to ``step_s`` (the simulator's entry)."""
        return partial(fixed_step_time_s, self.step_s)

    def prefill_time_s(self, prompt_tokens: float, cached_prefix_tokens: float = 0.0) -> float:
        """One step, whatever the prompt, s."""
        return self.step_s

    def decode_tokens_per_s_per_user(self, context_tokens: float) -> float:
        """One token per step, tokens/s."""
        return 1.0 / self.step_s

    def bytes_read_per_token_at_batch_1(self, context_tokens: float) -> float:
        """No memory model: 0 bytes."""
        return 0.0
