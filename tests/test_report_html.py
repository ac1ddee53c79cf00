"""``report.html``: self-contained pages from real runs, escaping, and terminal-only progress."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from planner.app.progress import (
    ProgressDisplay,
    accepts_keyword,
    on_terminal,
    progress_display,
    simulation_progress,
)
from planner.report.html import simulation_report, utilization_timeline
from planner.report.html_parts import Html, esc, fmt_num, fmt_pct, fmt_plain, fmt_usd, table
from planner.report.plots import latency_cdf_png, timeline_png
from planner.sim.config import SloSpec
from planner.sim.engine import simulate
from planner.sim.metrics import summarize
from planner.workload import LengthLaw
from tests.cli_runner import run_cli as run_in_process
from tests.sim_helpers import chat_workload, gpu_fleet

BIN = Path(sys.executable).parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLANNER_SECTIONS = {
    "Fleet and workload",
    "Latency",
    "Utilization",
    "SLO attainment",
    "Power and energy",
    "Cost",
}
ROI_SECTIONS = {
    "Study",
    "Net present value",
    "Sensitivity",
    "Base case",
    "Capacity curves",
    "Spot checks",
}
PROGRESS_MARKS = ("━", "\x1b[", "simulated time", "Monte Carlo", "sizing options")


class Page(HTMLParser):
    """What a report contains: headings, images, links, tags and the visible text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.headings: dict[str, list[str]] = {"h1": [], "h2": [], "h3": []}
        self.images: list[str] = []
        self.urls: list[str] = []
        self.text_parts: list[str] = []
        self._heading: str | None = None
        self.feed(text)
        self.close()
        self.text = " ".join(" ".join(self.text_parts).split())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        for key in ("src", "href", "srcset", "action", "poster", "data"):
            if values.get(key):
                self.urls.append(values[key] or "")
        if tag in self.headings:
            self._heading = tag
            self.headings[tag].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._heading:
            self._heading = None

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)
        if self._heading:
            self.headings[self._heading][-1] += data


def check_self_contained(text: str) -> Page:
    """Parse a report and check it needs nothing outside itself."""
    for needle in ("http://", "https://", 'src="//', 'href="//', "@import", "url("):
        assert needle not in text, needle
    page = Page(text)
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert all(u.startswith(("data:image/png;base64,", "#")) for u in page.urls), page.urls
    for src in page.images:
        data = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    return page


def run_cli(script: str, args: list[str], run_dir: Path) -> subprocess.CompletedProcess[str]:
    result = run_in_process(BIN / script, [f"hydra.run.dir={run_dir}", *args])
    assert result.returncode == 0, result.stderr
    for mark in PROGRESS_MARKS:  # stderr is a pipe here: no progress output at all
        assert mark not in result.stderr, (mark, result.stderr)
    return result


@pytest.fixture(scope="module")
def planner_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("planner") / "run"
    run_cli("planner", ["workload.n_trees=30"], run_dir)
    return run_dir


def test_planner_report_has_every_section_plots_and_the_summary_figures(
    planner_run: Path,
) -> None:
    page = check_self_contained((planner_run / "report.html").read_text())
    summary = json.loads((planner_run / "summary.json").read_text())
    assert set(page.headings["h2"]) >= PLANNER_SECTIONS
    text = page.text
    # four latency CDFs, two tail views, utilization and power over time: inline SVG charts
    assert page.tags.count("svg") >= 8 and page.tags.count("path") >= 8
    assert "Call latency tail" in text and "Tree latency tail" in text
    text = page.text
    assert "p99 tree latency" in text and "SLO attainment" in text
    calls = summary["calls"]
    assert (
        f"{calls['arrived']:,} arrived = {calls['completed']:,} completed + "
        f"{calls['in_flight']:,} in flight + {calls['failed']:,} failed"
    ) in text
    figures = (
        summary["trees"]["e2e_s"]["p99"],
        summary["calls"]["ttft_s"]["p50"],
        summary["calls"]["tpot_s"]["p99"],
        summary["pools"]["gpu"]["power_kw_mean"],
    )
    for value in figures:
        assert fmt_num(value) in text
    assert fmt_pct(summary["slo"]["attainment"]) in text
    assert fmt_pct(summary["pools"]["gpu"]["utilization"]) in text
    for key in ("capex_usd", "opex_usd_per_year", "usd_per_million_output_tokens", "usd_per_tree"):
        assert fmt_usd(summary["cost"][key]) in text
    assert summary["fleet"]["gpu"]["hardware"] in text and summary["fleet"]["gpu"]["model"] in text


@pytest.fixture(scope="module")
def roi_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("roi")
    run_cli(
        "planner-roi",
        [
            "roi.n_trees=300",
            "roi.curve_points=3",
            "mc.samples=200",
            "mc.backend=serial",
            f"cache_dir={root / 'cache'}",
        ],
        root / "run",
    )
    return root / "run"


@pytest.fixture(scope="module")
def size_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("size") / "run"
    run_cli("planner-size", ["demand.n_trees=200"], run_dir)
    return run_dir


def test_roi_report_embeds_the_study_plots_and_numbers(roi_run: Path) -> None:
    run_dir = roi_run
    page = check_self_contained((run_dir / "report.html").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(page.headings["h2"]) >= ROI_SECTIONS
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in page.images}
    for name in ("npv_histogram.png", "tornado.png"):
        assert (run_dir / name).read_bytes() in embedded
    assert " ".join(summary["answer"].split()) in page.text
    roi = summary["roi"]
    for key in ("p5", "p50", "p95"):
        assert fmt_usd(roi["npv_usd"][key]) in page.text
    assert fmt_pct(roi["prob_npv_positive"]) in page.text
    assert all(bar["input"] in page.text for bar in roi["tornado"])


def test_size_report_compares_the_options_against_the_question(size_run: Path) -> None:
    run_dir = size_run
    page = check_self_contained((run_dir / "report.html").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {"Question", "Options"} <= set(page.headings["h2"])
    assert f"{fmt_plain(summary['demand_trees_per_s'])} trees/s" in page.text
    assert f"p99 TPOT ≤ {fmt_plain(summary['slo']['tpot_p99_s'])} s" in page.text
    for name, option in summary["options"].items():
        assert name in page.text
        for key in ("capex_usd", "opex_usd_per_year", "usd_per_million_output_tokens"):
            assert fmt_usd(option[key]) in page.text
        assert fmt_num(option["p99"]["tree_e2e_s"]) in page.text


def _small_run() -> tuple[dict[str, Any], Any]:
    result = simulate(
        gpu_fleet(replicas=2),
        chat_workload(4.0, 60, LengthLaw.fixed(64), LengthLaw.fixed(512)),
        seed=1,
    )
    return summarize(result, SloSpec()), result


def test_text_is_escaped_and_an_answer_key_is_shown() -> None:
    summary, result = _small_run()
    summary["scenario"] = "<script>alert('x')</script>"
    summary["answer"] = "Buy 3 racks & <b>stop</b>"
    text = simulation_report(summary, result, run_info={"fleet": '"><img src=x>'})
    page = check_self_contained(text)
    assert "<script" not in text and "<b>stop" not in text and "<img src=x>" not in text
    assert "Buy 3 racks & <b>stop</b>" in page.text  # shown as text, not markup
    assert "Capacity review: <script>alert('x')</script>" in page.headings["h1"]
    assert set(page.headings["h2"]) >= PLANNER_SECTIONS  # renders without fleet / cost keys


def test_utilization_timeline_averages_to_the_summary_utilization() -> None:
    summary, result = _small_run()
    (pool,) = result.pools
    expected = summary["pools"][pool.name]["utilization"]
    for max_bins in (None, 37):  # as recorded, and merged into at most 37 bins
        times, utilization = utilization_timeline(pool, result.sim_time_s, max_bins)
        assert np.all(np.diff(times) > 0) and np.all((utilization >= 0) & (utilization <= 1))
        assert max_bins is None or times.size <= max_bins
        # Bins are contiguous from t = 0: each ends as far past its midpoint as it began before.
        edges = [0.0]
        for midpoint in times:
            edges.append(2 * midpoint - edges[-1])
        spans = np.diff(edges)
        assert edges[-1] == pytest.approx(result.sim_time_s)
        mean = float((utilization * spans).sum() / result.sim_time_s)
        assert mean == pytest.approx(expected, rel=1e-6)


def test_pools_with_timelines_of_different_lengths_share_one_time_axis() -> None:
    summary, result = _small_run()
    (pool,) = result.pools
    short = replace(pool, name="decode", busy_timeline_s=pool.busy_timeline_s[:50])
    two_pools = replace(result, pools=(pool, short))
    times, _ = utilization_timeline(pool, result.sim_time_s, max_bins=None)
    short_times, short_utilization = utilization_timeline(short, result.sim_time_s, None)
    np.testing.assert_array_equal(times, short_times)
    assert not short_utilization[50:].any()
    check_self_contained(simulation_report(summary, two_pools))


def test_formats_and_tables() -> None:
    assert fmt_num(1234567) == "1,234,567" and fmt_num(16.0) == "16"
    assert fmt_num(0.006296) == "0.00630" and fmt_num(79.66) == "79.7"
    assert fmt_num(None) == fmt_num(float("nan")) == "–"
    assert fmt_usd(10.2e6) == "$10.20 M" and fmt_usd(-987_416.4) == "-$0.99 M"
    assert fmt_usd(190_541) == "$0.19 M" and fmt_usd(12_345.6) == "$12,346"
    assert fmt_usd(62.377) == "$62.38" and fmt_pct(0.3392) == "33.9%"
    assert fmt_plain(0.08) == "0.08" and fmt_plain(120.0) == "120"
    assert esc("<a&b>") == "&lt;a&amp;b&gt;" and esc(Html("<b>")) == "<b>"
    assert Html("<p>") + "<x>" == "<p>&lt;x&gt;"
    html = table(["a<", "b"], [("x&", Html("<i>1</i>"))])
    assert "a&lt;" in html and "x&amp;" in html and "<i>1</i>" in html


def test_new_plots_are_pngs_and_refuse_mismatched_series() -> None:
    samples = np.random.default_rng(0).lognormal(0.0, 2.0, 20_000)  # thinned to 4,000 points
    png = latency_cdf_png(
        {"ttft": samples}, title="t", xlabel="s", markers={"SLO": 10.0}, log_x=True
    )
    assert png.startswith(PNG_SIGNATURE)
    assert png == latency_cdf_png(
        {"ttft": samples}, title="t", xlabel="s", markers={"SLO": 10.0}, log_x=True
    )
    line = timeline_png(
        [0, 1, 2],
        {"gpu": [0.1, 0.5, 0.2]},
        title="u",
        xlabel="s",
        ylabel="%",
        markers={"last arrival": 1.5},
    )
    assert line.startswith(PNG_SIGNATURE)
    with pytest.raises(ValueError, match="gpu"):
        timeline_png([0, 1], {"gpu": [0.1]}, title="u", xlabel="s", ylabel="%")


def test_progress_is_silent_off_a_terminal_and_drawn_on_one() -> None:
    assert not on_terminal(io.StringIO())
    with progress_display() as display:  # pytest's stderr is not a terminal
        assert not display.enabled
        display.counter("Monte Carlo", 10)(5, 10)
        display.simulation()(1.0, 2.0)
        assert simulation_progress(simulate, display) == {}
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with progress_display(enabled=True, console=console) as display:
        update = display.counter("Monte Carlo", 200, unit="samples")
        update(100, 200)
        hook = display.simulation()
        hook(50.0, 100.0)
        hook(150.0, 100.0)  # past the last arrival: draining
    assert "Monte Carlo" in buffer.getvalue() and "simulated time" in buffer.getvalue()


def test_simulation_hook_is_passed_only_where_simulate_takes_it() -> None:
    def with_hook(*, seed: int, progress: Any = None) -> None: ...

    def without_hook(*, seed: int) -> None: ...

    def with_kwargs(**kwargs: Any) -> None: ...

    display = ProgressDisplay(True, Console(file=io.StringIO(), force_terminal=True))
    assert set(simulation_progress(with_hook, display)) == {"progress"}
    assert simulation_progress(without_hook, display) == {}
    assert accepts_keyword(with_kwargs, "progress") and not accepts_keyword(len, "progress")
    assert simulation_progress(with_hook, None) == {}
    # The real engine: with the hook (when it has one) the run completes as without it.
    kwargs = simulation_progress(simulate, display)
    result = simulate(
        gpu_fleet(replicas=2), chat_workload(4.0, 20, LengthLaw.fixed(8)), seed=0, **kwargs
    )
    assert result.complete


def test_planner_draws_progress_on_a_terminal(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    process = subprocess.Popen(
        [str(BIN / "planner"), f"hydra.run.dir={tmp_path / 'run'}", "workload.n_trees=20"],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(master)
    assert process.wait(timeout=60) == 0
    assert b"simulated time" in output
    assert (tmp_path / "run" / "report.html").exists()


CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
NO_CHROMIUM = "chromium is not installed (Debian: apt-get install chromium; CI installs it)"

CHECKER = """<script>
window.__problems = [];
window.addEventListener("error", (e) => {
  const t = e.target;
  window.__problems.push(t && t.tagName ? "failed to load <" + t.tagName.toLowerCase() + ">"
                                        : "error: " + e.message);
}, true);
for (const level of ["error", "warn"]) {
  const original = console[level];
  console[level] = (...args) => {
    window.__problems.push("console." + level + ": " + args.join(" "));
    original.apply(console, args);
  };
}
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter((i) => !i.complete || i.naturalWidth < 100 || i.naturalHeight < 100)
    .map((i) => "broken image: " + i.alt);
  const charts = [...document.querySelectorAll("svg.chart")];
  const empty = charts.filter((c) => { const r = c.getBoundingClientRect();
      return r.width < 200 || r.height < 100 || !c.querySelector("path"); })
    .map((c) => "empty chart: " + c.getAttribute("aria-label"));
  const out = document.createElement("pre");
  out.id = "__check";
  out.textContent = JSON.stringify({images: images.length, charts: charts.length,
                                    problems: [...window.__problems, ...broken, ...empty]});
  document.body.appendChild(out);
});
</script>"""
"""Injected at the top of a copy of the page (the reports themselves carry no script): records
load errors and console errors, then checks every image decoded and every chart has a size."""


def chromium_check(page: Path, tmp_path: Path, screenshot: Path | None = None) -> dict[str, Any]:
    """Open a copy of ``page`` in headless Chromium and return the checker's findings.

    The console messages Chromium logged at error level are added to ``problems``.
    """
    assert CHROMIUM is not None
    text = page.read_text(encoding="utf-8")
    probe = tmp_path / f"probe_{page.parent.name}_{page.name}"
    probe.write_text(text.replace("<head>", "<head>" + CHECKER, 1), encoding="utf-8")
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,2400",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
    ]
    done = subprocess.run(
        [*flags, "--dump-dom", probe.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = re.search(r'<pre id="__check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the checker did not run: {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    result["problems"] += [
        line
        for line in done.stderr.splitlines()
        if ":CONSOLE(" in line and ("ERROR" in line or "Uncaught" in line)
    ]
    if screenshot is not None:
        subprocess.run(
            [*flags, f"--screenshot={screenshot}", page.resolve().as_uri()],
            capture_output=True,
            timeout=120,
            check=True,
        )
    return result


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "sweep"
    done = run_in_process(
        BIN / "planner",
        ["-m", f"hydra.sweep.dir={out}", "workload.n_trees=10", "fleet.pools.gpu.racks=1,2"],
    )
    assert done.returncode == 0, done.stderr
    return out / "report.html"


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_the_checker_catches_a_broken_image_and_a_console_error(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        '<img alt="truncated" src="data:image/png;base64,iVBORw0KGgo=">'
        "<svg class=chart></svg></body></html>"
    )
    problems = chromium_check(page, tmp_path)["problems"]
    assert any("broken image: truncated" in p for p in problems), problems
    assert any("failed to load <img>" in p for p in problems), problems
    assert any("empty chart" in p for p in problems), problems


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
@pytest.mark.parametrize("kind", ["run", "sweep", "size", "roi"])
def test_every_page_kind_renders_in_headless_chromium(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    page = {
        "run": lambda: request.getfixturevalue("planner_run") / "report.html",
        "sweep": lambda: request.getfixturevalue("sweep_report"),
        "size": lambda: request.getfixturevalue("size_run") / "report.html",
        "roi": lambda: request.getfixturevalue("roi_run") / "report.html",
    }[kind]()
    screenshot = tmp_path / f"{kind}.png"
    found = chromium_check(page, tmp_path, screenshot)
    assert found["problems"] == [], found["problems"]
    minimum = {"run": (0, 8), "sweep": (1, 0), "size": (0, 0), "roi": (2, 0)}[kind]
    assert found["images"] >= minimum[0] and found["charts"] >= minimum[1], found
    from PIL import Image  # matplotlib's dependency

    with Image.open(screenshot) as image:
        assert image.size == (1400, 2400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50  # text, tables and plots, not a blank page


def test_the_clis_start_without_matplotlib_and_a_report_draws_fast() -> None:
    code = (
        "import sys, planner.cli.simulate, planner.cli.size, planner.cli.roi, planner.cli.roofline;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]", done.stdout  # imported when a PNG is drawn, not before
    summary, result = _small_run()
    simulation_report(summary, result)  # warm: numpy's first calls
    started = time.perf_counter()
    text = simulation_report(summary, result)
    elapsed_s = time.perf_counter() - started
    assert text.count('<svg class="chart"') == 8
    assert elapsed_s < 0.5, elapsed_s  # about 5 ms measured; the budget of the whole report


def test_output_report_false_skips_the_page_and_a_bad_value_is_one_line(tmp_path: Path) -> None:
    run_cli("planner", ["workload.n_trees=5", "output.report=false"], tmp_path / "off")
    assert (tmp_path / "off" / "summary.json").exists()
    assert not (tmp_path / "off" / "report.html").exists()
    done = run_in_process(
        BIN / "planner",
        [f"hydra.run.dir={tmp_path / 'bad'}", "workload.n_trees=5", "output.report=maybe"],
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: output.report:"), lines
    assert not (tmp_path / "bad").exists()  # checked before anything is written
