"""The question each study states: its own, its scenario header's, or its kind's.

A study's summary (``question``) and its report page open with the question it answers, so a
reader knows what the numbers decide before reading them.
"""

from __future__ import annotations

QUESTIONS: dict[str, str] = {
    "fanout_tail": "An agent query that fans out to N sub-calls waits for the slowest: how much "
    "does the tree's p99 exceed a single call's p99 as the fan-out grows, at the same load?",
    "shared_prefix": "Agents that share the model's weights and the prefix KV cache, against "
    "independent calls: what do they cost relative to a single call?",
    "lpu_latency": "How fast does one user get tokens from a Groq LPU versus Blackwell GPUs, and "
    "how many chips and racks does one replica take?",
    "long_context": "How much faster does a hybrid (Gated DeltaNet : full attention) model decode "
    "than its full-attention predecessor as the context grows, and how much less memory does a "
    "sequence hold?",
    "hybrid_vs_gpu": "Does a hybrid rack (GPU prefill + LPU decode) give the per-user decode "
    "speed claimed over GPUs alone, at what TTFT, and at what cost per million output tokens?",
    "tree_cost": "What does one agent tree (task) cost on each fleet, how long does it take, and "
    "how does that compare with the reference prices?",
    "reasoning_split": "Is one long reasoning call or a parallel multi-agent debate cheaper and "
    "faster per answer on GPU, LPU and hybrid fleets, and at what load does the answer flip?",
    "silicon_mix": "What is the cheapest fleet mix of GPUs and ASICs that meets every workload "
    "class's SLOs, and what GPU/ASIC share of spend does it give?",
    "silicon_cases": "How do the chosen models on the chosen accelerators compare for one user's "
    "decode speed and for batch throughput within a TPOT limit, per accelerator and per dollar "
    "of hardware?",
    "long_documents": "What does one very long document cost to process on each model, and does "
    "a sequence of that length fit a replica's memory at all?",
}
"""The question each study kind answers, in general terms; a scenario's own question (its
``study.question`` or its header's ``# Question: ...``) is more specific and wins."""


def header_question(text: str) -> str | None:
    """The question of a scenario file's header comment, up to its question mark.

    The header is the file's leading ``#`` lines; the question starts at ``Question`` (an
    optional parenthesised source such as ``(issue 13)`` and a colon follow) and ends at the
    first ``?``. None when the header states no question.
    """
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    header = " ".join(lines)
    if "Question" not in header:
        return None
    body = header.split("Question", 1)[1].strip()
    if body.startswith("("):  # the source of the question: "(issue 13, ...):"
        body = body.split(")", 1)[-1]
    body = body.lstrip(" :")
    if "?" not in body:
        return None
    question = body.split("?", 1)[0].strip() + "?"
    return question[:1].upper() + question[1:]


def study_question(kind: str, configured: str | None, header: str | None) -> str | None:
    """The question a study's summary and page state.

    ``study.question`` (``configured``), else the one in the scenario file's header (``header``,
    the file's text), else the kind's general one (:data:`QUESTIONS`); None without any.
    """
    for question in (configured, header_question(header or ""), QUESTIONS.get(kind)):
        if question and str(question).strip():
            return str(question).strip()
    return None
