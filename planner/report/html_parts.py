"""Building blocks of the HTML reports: escaping, number formats, tables, figures, the page.

Everything returns strings; nothing reads or writes files. Text is escaped with
:func:`html.escape` unless it is wrapped in :class:`Html` (markup built here from escaped
parts). Figures are embedded as base64 ``data:`` URIs and the style sheet is inline, so a page
is one self-contained file that needs no network, fonts or scripts.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from planner.app.formatting import finite as _finite
from planner.app.formatting import fmt_usd as fmt_usd  # re-exported: one money format

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
MISSING: Final = "–"
"""Shown where a figure is absent or undefined (``None``, NaN)."""


class Html(str):
    """Markup that is already safe (built from escaped parts); :func:`esc` passes it through.

    ``Html + text`` escapes the text (``Html + Html`` joins markup), so the sum stays safe.
    """

    __slots__ = ()

    def __add__(self, other: str) -> Html:
        return Html(str.__add__(self, esc(other)))


def esc(value: Any) -> Html:
    """``value`` as HTML text: escaped, unless it already is :class:`Html`."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def fmt_num(value: Any, significant: int = 3) -> str:
    """A number for a table.

    Integers (and whole floats, like rack counts) with thousands separators, others to
    ``significant`` figures (but no fewer than the integer digits, and no exponent); ``–`` when
    undefined.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    number = _finite(value)
    if number is None:
        return MISSING
    magnitude = abs(number)
    if number.is_integer() and magnitude < 1e15:
        return f"{int(number):,}"
    if magnitude == 0:
        return "0"
    decimals = max(0, significant - 1 - math.floor(math.log10(magnitude)))
    return f"{number:,.{decimals}f}"


def fmt_plain(value: Any) -> str:
    """A configured figure as written (``0.08``, ``120``): shortest form, no rounding to show."""
    number = _finite(value)
    return MISSING if number is None else f"{number:,.6g}"


def fmt_pct(value: Any, decimals: int = 1) -> str:
    """A fraction as a percentage (``0.339`` -> ``33.9%``); ``–`` when undefined."""
    number = _finite(value)
    return MISSING if number is None else f"{number * 100:.{decimals}f}%"


def fmt_bool(value: Any, yes: str = "yes", no: str = "no") -> str:
    """``yes`` / ``no`` (``–`` when unknown)."""
    return MISSING if value is None else (yes if value else no)


def get(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...``, or ``None`` where a level is missing or not a mapping."""
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


Cell = Any
"""A table cell: text (escaped) or :class:`Html`; numbers should be formatted first."""


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    *,
    numeric_from: int = 1,
    caption: str | None = None,
    total_row: Sequence[Cell] | None = None,
) -> Html:
    """A table; columns from index ``numeric_from`` on are right-aligned figures."""
    head = "".join(
        f'<th{" class=num" if i >= numeric_from else ""} scope="col">{esc(h)}</th>'
        for i, h in enumerate(headers)
    )
    body_rows = []
    for row in rows:
        cells = "".join(
            f"<td{' class=num' if i >= numeric_from else ''}>{esc(c)}</td>"
            for i, c in enumerate(row)
        )
        body_rows.append(f"<tr>{cells}</tr>")
    foot = ""
    if total_row is not None:
        cells = "".join(
            f"<td{' class=num' if i >= numeric_from else ''}>{esc(c)}</td>"
            for i, c in enumerate(total_row)
        )
        foot = f"<tfoot><tr>{cells}</tr></tfoot>"
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return Html(
        f'<div class="tw"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body_rows)}</tbody>{foot}</table></div>"
    )


def key_values(items: Iterable[tuple[str, Cell]]) -> Html:
    """A two-column table of labels and values."""
    rows = "".join(
        f'<tr><th scope="row">{esc(k)}</th><td class=num>{esc(v)}</td></tr>' for k, v in items
    )
    return Html(f'<table class="kv"><tbody>{rows}</tbody></table>')


def png_data_uri(data: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URI.

    Raises:
        ValueError: ``data`` is not a PNG.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG image")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure(data: bytes | Html, caption: str) -> Html:
    """A chart with a caption.

    ``data`` is PNG bytes (embedded, the caption as alt text) or inline SVG markup from
    :mod:`planner.report.svg`.
    """
    if isinstance(data, Html):
        return Html(f"<figure>{data}<figcaption>{esc(caption)}</figcaption></figure>")
    return Html(
        f'<figure><img src="{png_data_uri(data)}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def figures(items: Iterable[Html]) -> Html:
    """Figures side by side where the page is wide enough.

    A lone figure is kept to about the width of a pair's (a chart stretched to the full page has
    oversized text).
    """
    listed = list(items)
    cls = "figures one" if len(listed) == 1 else "figures"
    return Html(f'<div class="{cls}">{"".join(listed)}</div>')


def para(*parts: Any, cls: str | None = None) -> Html:
    """A paragraph of escaped text (and :class:`Html` parts)."""
    attribute = f' class="{esc(cls)}"' if cls else ""
    return Html(f"<p{attribute}>{''.join(esc(p) for p in parts)}</p>")


def strong(text: Any) -> Html:
    """Bold text."""
    return Html(f"<strong>{esc(text)}</strong>")


def badge(text: str, good: bool | None) -> Html:
    """A small label: green when ``good``, amber when not, grey when unknown."""
    kind = "neutral" if good is None else "good" if good else "bad"
    return Html(f'<span class="badge {kind}">{esc(text)}</span>')


def section(anchor: str, heading: str, *body: Html) -> Html:
    """A numbered-by-order report section with an anchor for the contents list."""
    return Html(
        f'<section id="{esc(anchor)}"><h2>{esc(heading)}</h2>{"".join(esc(b) for b in body)}'
        "</section>"
    )


def subheading(text: str) -> Html:
    """A heading inside a section."""
    return Html(f"<h3>{esc(text)}</h3>")


CSS: Final = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1f2328;
  font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 36px 48px; background: #fff;
  min-height: 100vh; }
header { border-bottom: 3px solid #1f3a5f; padding-bottom: 10px; margin-bottom: 18px; }
h1 { font-size: 26px; margin: 0 0 4px; color: #1f3a5f; font-weight: 650; }
.subtitle { color: #57606a; margin: 0; }
h2 { font-size: 20px; color: #1f3a5f; border-bottom: 1px solid #d0d7de; padding-bottom: 4px;
  margin: 34px 0 12px; }
h3 { font-size: 16px; margin: 20px 0 8px; color: #24292f; }
.answer { background: #eef3f9; border-left: 5px solid #1f3a5f; padding: 14px 18px;
  margin: 0 0 14px; font-size: 17px; }
.answer p { margin: 4px 0; }
.answer .label { text-transform: uppercase; letter-spacing: .06em; font-size: 12px;
  color: #57606a; font-weight: 600; }
nav { font-size: 14px; color: #57606a; margin: 6px 0 4px; }
nav a { color: #1f3a5f; text-decoration: none; margin-right: 14px; white-space: nowrap; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px;
  font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 2px 0 6px; color: #24292f; }
th, td { padding: 5px 12px; border-bottom: 1px solid #e1e4e8; text-align: left;
  vertical-align: top; }
thead th { background: #f0f2f5; border-bottom: 2px solid #c9d1d9; font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfc; }
tfoot td { border-top: 2px solid #c9d1d9; font-weight: 600; }
.num { text-align: right; white-space: nowrap; }
.tw { max-width: 100%; overflow-x: auto; }
table.kv th { font-weight: 500; color: #444c56; background: none; padding-right: 24px; }
table.kv td { text-align: right; white-space: normal; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr));
  gap: 14px; margin: 10px 0; }
.figures.one { grid-template-columns: minmax(0, 760px); }
figure { margin: 0; border: 1px solid #e1e4e8; padding: 6px; background: #fff;
  max-width: 914px; }
figure img { width: 100%; max-width: 900px; height: auto; display: block; }
svg.chart { width: 100%; height: auto; display: block; font-size: 13px; }
svg.chart text { fill: #1f2328; }
svg.chart text.title { font-size: 15px; font-weight: 600; }
svg.chart line.grid { stroke: #d0d7de; stroke-width: 0.7; }
figcaption { font-size: 13px; color: #57606a; padding: 4px 2px 0; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 13px;
  font-weight: 600; white-space: nowrap; }
.badge.good { background: #dafbe1; color: #116329; }
.badge.bad { background: #fff1c2; color: #7d4e00; }
tr.best td { background: #dafbe1 !important; font-weight: 600; }
tr.infeasible td { color: #8c4a00; }
tr.failed td { background: #fdecea !important; }
.answer .why { font-size: 15px; }
.badge.neutral { background: #eaeef2; color: #444c56; }
.note { color: #57606a; font-size: 13.5px; }
.row { display: flex; flex-wrap: wrap; gap: 8px 40px; align-items: flex-start; }
.row > div { flex: 0 1 auto; min-width: 280px; max-width: 640px; }
footer { margin-top: 40px; color: #8c959f; font-size: 12.5px; border-top: 1px solid #e1e4e8;
  padding-top: 8px; }
@media print { body { background: #fff; } main { padding: 0; max-width: none; }
  section { break-inside: avoid-page; } }
"""


def page(
    title: str,
    subtitle: str,
    answer: Iterable[Html],
    sections: Sequence[tuple[str, str, Html]],
    footer: str = "",
) -> str:
    """The whole document.

    Args:
        title: Page title (also the ``<title>``).
        subtitle: One line under the title (what was run).
        answer: Paragraphs of the answer box at the top.
        sections: ``(anchor, heading, body)`` in order; the contents list links to them.
        footer: A closing note.
    """
    contents = "".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in sections)
    body = "".join(section(a, h, b) for a, h, b in sections)
    answer_html = "".join(answer)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f'<header><h1>{esc(title)}</h1><p class="subtitle">{esc(subtitle)}</p></header>'
        f'<div class="answer" id="answer">{answer_html}</div>'
        f"<nav>{contents}</nav>{body}"
        f"<footer>{esc(footer)}</footer></main></body></html>\n"
    )
