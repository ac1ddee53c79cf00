"""``make scenarios``: run every scenario and publish its answer.

Each ``scenarios/NAME.yaml`` extends one primary config (``planner``, ``size`` or ``roi``); the
script runs it with the matching command into ``outputs/scenarios/NAME/``, reads the answer
from its ``summary.json`` and writes ``scenarios/RESULTS.md`` plus the README's scenario table
(between the ``scenarios:start`` / ``scenarios:end`` markers).

Usage: python scripts/run_scenarios.py [NAME ...]   (names given: only their rows are replaced;
the others are kept from scenarios/RESULTS.md)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from planner.app.formatting import fmt_usd

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"planner": "planner", "size": "planner-size", "roi": "planner-roi"}
START, END = "<!-- scenarios:start -->", "<!-- scenarios:end -->"
HEADER = ["| scenario | question | the planner's answer | run time |", "|---|---|---|---|"]


def question(path: Path) -> str:
    """The question of the scenario's header comment, up to its question mark."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    text = " ".join(lines).split("Question", 1)[-1].strip()
    if text.startswith("("):  # a source reference: "(calibration.md sec. 6):"
        text = text.split(")", 1)[-1]
    text = text.lstrip(" :")
    return text.split("?")[0].strip() + "?" if "?" in text else text


def answer(summary: dict) -> str:
    """The run's answer sentence (a generic one for plain simulations)."""
    if "answer" in summary:
        return str(summary["answer"])
    verdict = str(summary.get("verdict", "")).split(":")[0]  # PASS / FAIL / OVERLOADED
    trees, pools = summary["trees"], summary["pools"]
    loads = ", ".join(
        f"{n} at {p['headroom']['load_fraction']:.0%} of its knee"
        for n, p in pools.items()
        if (p.get("headroom") or {}).get("load_fraction") is not None
    )
    headline = summary.get("cost", {}).get("headline") or {}
    cost = f", {fmt_usd(headline['usd'])} {headline['unit']}" if headline.get("usd") else ""
    return (
        f"{verdict}: {trees['completed']:,} agent trees, p99 tree latency "
        f"{trees['e2e_s']['p99']:,.1f} s, SLO attainment {summary['slo']['attainment']:.1%}"
        + (f", {loads}" if loads else "")
        + cost
        + "."
    )


def run(name: str) -> dict:
    """Run one scenario with its command; its row's figures, the wall time measured around it."""
    path = ROOT / "scenarios" / f"{name}.yaml"
    base = yaml.safe_load(path.read_text())["defaults"][0]
    command = COMMANDS[base]
    run_dir = ROOT / "outputs" / "scenarios" / name
    load = os.getloadavg()[0]  # the machine's 1-minute load when the run starts
    start = time.perf_counter()
    executable = str(Path(sys.executable).parent / command)
    completed = subprocess.run(
        [executable, f"scenario={name}", f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    row = {
        "name": name,
        "command": command,
        "seconds": seconds,
        "load": load,
        "question": question(path),
    }
    if completed.returncode != 0:
        return {**row, "answer": f"FAILED: {completed.stderr.strip()[-300:]}"}
    summary = json.loads((run_dir / "summary.json").read_text())
    return {**row, "answer": answer(summary)}


def table_line(row: dict) -> str:
    """One table row: command, question, answer and the measured wall time (with the load)."""
    cores = os.cpu_count() or 1
    return (
        f"| `{row['command']} scenario={row['name']}` | {row['question']} | {row['answer']} "
        f"| {row['seconds']:.0f} s (load {row['load']:.1f}, {cores} cores) |"
    )


def table_rows(text: str) -> dict[str, str]:
    """The rows of a scenario table in ``text``, by scenario name (header rows skipped)."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\| `[\w-]+ scenario=(\w+)`", line)
        if match:
            rows[match.group(1)] = line
    return rows


def main() -> None:
    """Run the named scenarios (all without names) and rewrite RESULTS.md and the README table.

    With names, only their rows are replaced: the other rows are kept from RESULTS.md as they
    were measured (scenarios whose file is gone are dropped).
    """
    names = sys.argv[1:] or sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))
    known = {p.stem for p in (ROOT / "scenarios").glob("*.yaml")}
    unknown = sorted(set(names) - known)
    if unknown:
        sys.exit(
            f"error: no scenario named {', '.join(unknown)}; one of {', '.join(sorted(known))}"
        )
    results = ROOT / "scenarios" / "RESULTS.md"
    kept = table_rows(results.read_text()) if sys.argv[1:] and results.exists() else {}
    fresh = {}
    for name in names:
        row = run(name)
        fresh[name] = table_line(row)
        print(
            f"{name} ({row['command']}, {row['seconds']:.0f} s at load {row['load']:.1f}): "
            f"{row['answer']}",
            flush=True,
        )
    merged = {**kept, **fresh}
    lines = [merged[name] for name in sorted(merged) if name in known]
    text = "\n".join([*HEADER, *lines])
    readme = ROOT / "README.md"
    content = readme.read_text()
    if START in content and END in content:
        head, rest = content.split(START, 1)
        _, tail = rest.split(END, 1)
        readme.write_text(f"{head}{START}\n{text}\n{END}{tail}")
    results.write_text(
        "# Scenario results\n\nRegenerated by `make scenarios` (scripts/run_scenarios.py); "
        "`python scripts/run_scenarios.py NAME ...` re-runs only those rows. Run time: the wall "
        "time of the command, measured, with the machine's 1-minute load average when it "
        "started.\n\n" + text + "\n"
    )


if __name__ == "__main__":
    main()
