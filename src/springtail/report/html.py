"""HTML of the report: one self-contained page (inline CSS, images as data URIs).

The only script is a self-check: it counts the page's script errors and, once the
page has loaded, the images that failed to decode, and writes both to ``<body>``
attributes (``data-images``, ``data-broken``, ``data-errors``, ``data-check`` =
ok | failed) that a headless browser can read back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

import pandas as pd

CSS = """
:root { --ok: #1d7a46; --bad: #b3261e; --muted: #5f6368; --line: #dadce0; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #202124;
       margin: 0 auto; padding: 16px 24px 48px; max-width: 1400px; background: #fafafa; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 32px 0 4px; padding-top: 8px; border-top: 1px solid var(--line); }
h3 { font-size: 15px; margin: 16px 0 6px; }
p.lead, p.note { color: var(--muted); margin: 4px 0 12px; max-width: 110ch; }
nav a { margin-right: 14px; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 24px; margin: 8px 0; }
.facts b { font-size: 18px; display: block; }
.tables { display: flex; flex-wrap: wrap; gap: 32px; align-items: flex-start; }
table { border-collapse: collapse; background: #fff; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: right; }
th { background: #f1f3f4; font-weight: 600; }
td.code, th.code { text-align: left; white-space: nowrap; }
td.bar { min-width: 64px; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; padding: 6px; background: #fff; border: 1px solid var(--line);
         border-radius: 6px; width: calc(var(--px) + 14px); }
figure img { display: block; width: var(--px); height: var(--px); border-radius: 3px;
             image-rendering: auto; }
figure img.small { image-rendering: pixelated; }
figcaption { font-size: 12px; line-height: 1.3; margin-top: 4px; overflow-wrap: anywhere; }
.tags { display: flex; flex-wrap: wrap; gap: 2px; margin: 2px 0; }
.tag { font-size: 10.5px; padding: 0 3px; border-radius: 3px; background: #e8eaed; }
.tag.ok { background: #d7efe0; color: var(--ok); }
.tag.bad { background: #fbe3e1; color: var(--bad); }
.strong { font-weight: 600; }
.ok { color: var(--ok); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.muted { color: var(--muted); }
.groups { display: flex; flex-wrap: wrap; gap: 0 28px; align-items: flex-start; }
.camrow { display: flex; gap: 10px; align-items: flex-start; margin-bottom: 10px; }
.camrow figure:first-child { border-color: #9aa0a6; background: #f1f3f4; }
.camhead { display: flex; gap: 10px; margin: 0 0 4px; font-size: 12px; }
.camhead > span { width: calc(var(--px) + 14px); text-align: center; }
.camhead b { display: block; font-size: 13px; }
.legend { display: inline-block; width: 160px; height: 10px; vertical-align: middle;
          background: linear-gradient(90deg, #00007f, #0000ff, #00ffff, #ffff00, #ff0000, #7f0000); }
"""

# Runs first: counts uncaught errors and resources that fail to load (capture phase).
HEAD_SCRIPT = """
window.reportErrors = [];
window.addEventListener("error", function (e) {
  window.reportErrors.push(e.message || ("failed to load " + ((e.target && e.target.tagName) || "?")));
}, true);
"""

# Runs at load: every <img> must be decoded with a non-zero natural width.
CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (im) { return !(im.complete && im.naturalWidth > 0); });
  var body = document.body;
  body.setAttribute("data-images", String(images.length));
  body.setAttribute("data-broken", String(broken.length));
  body.setAttribute("data-errors", String(window.reportErrors.length));
  body.setAttribute("data-check", broken.length === 0 && window.reportErrors.length === 0 ? "ok" : "failed");
});
"""


@dataclass
class Card:
    """One picture with caption lines; each line is (text, css class or "")."""

    src: str  # data URI
    lines: list[tuple[str, str]] = field(default_factory=list)
    alt: str = ""
    small: bool = False  # a crop smaller than its display size: draw its pixels sharp
    tags: list[tuple[str, str]] = field(default_factory=list)  # chips, e.g. the four votes
    tags_at: int = 1  # caption lines above the chips

    def render(self) -> str:
        lines = [f'<div class="{escape(c)}">{escape(t)}</div>' for t, c in self.lines]
        if self.tags:
            chips = "".join(f'<span class="tag {escape(c)}">{escape(t)}</span>' for t, c in self.tags)
            lines.insert(min(self.tags_at, len(lines)), f'<div class="tags">{chips}</div>')
        caption = "".join(lines)
        img_class = ' class="small"' if self.small else ""
        return (f'<figure><img{img_class} src="{self.src}" alt="{escape(self.alt)}" loading="eager">'
                f"<figcaption>{caption}</figcaption></figure>")


@dataclass
class Section:
    """A titled part of the page: an anchor id, a lead paragraph and body HTML."""

    id: str
    title: str
    lead: str
    body: str


def grid(cards: list[Card], empty: str = "Nothing to show.") -> str:
    if not cards:
        return f'<p class="note">{escape(empty)}</p>'
    return '<div class="grid">' + "".join(c.render() for c in cards) + "</div>"


def groups(blocks: list[tuple[str, str]], px: int | None = None) -> str:
    """Titled blocks (title, body HTML) laid side by side, wrapping at the page width;
    ``px`` sets another picture size inside them."""
    style = f' style="--px: {int(px)}px"' if px else ""
    return f'<div class="groups"{style}>' + "".join(
        f"<div><h3>{escape(t)}</h3>{b}</div>" for t, b in blocks) + "</div>"


def cam_rows(headers: list[tuple[str, str]], rows: list[list[Card]]) -> str:
    """Heatmaps as rows of cards under one header line: (name, detail) per column."""
    head = '<div class="camhead">' + "".join(
        f'<span><b>{escape(n)}</b><span class="muted">{escape(d)}</span></span>'
        for n, d in headers) + "</div>"
    body = "".join('<div class="camrow">' + "".join(c.render() for c in row) + "</div>" for row in rows)
    return head + body


def _bar(value: float, top: float, colour: str) -> str:
    """Cell background: a bar filling ``value / top`` of the cell."""
    share = 0 if top <= 0 else max(0.0, min(1.0, value / top)) * 100
    return f"background: linear-gradient(90deg, {colour} {share:.1f}%, transparent {share:.1f}%)"


def wide_table(long: pd.DataFrame, column: str, value: str, fmt: str, colour: str,
               top: float | None = None) -> str:
    """A long table (class, ``column``, ``value``) as classes x series, with in-cell bars.

    ``top`` is the value of a full bar (default: the table's maximum).
    """
    wide = long.pivot(index="class", columns=column, values=value)
    wide = wide.loc[list(dict.fromkeys(long["class"])), list(dict.fromkeys(long[column]))]
    top = float(wide.to_numpy().max()) if top is None else top
    head = '<th class="code">class</th>' + "".join(f"<th>{escape(str(c))}</th>" for c in wide.columns)
    rows = []
    for code, values in wide.iterrows():
        cells = "".join(f'<td class="bar" style="{_bar(float(v), top, colour)}">{format(v, fmt)}</td>'
                        for v in values)
        rows.append(f'<tr><td class="code">{escape(str(code))}</td>{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def facts(items: list[tuple[str, str]]) -> str:
    """Headline numbers: (value, what it is)."""
    return '<div class="facts">' + "".join(
        f"<div><b>{escape(v)}</b><span class=\"muted\">{escape(k)}</span></div>" for v, k in items
    ) + "</div>"


def page(title: str, subtitle: str, sections: list[Section], display_px: int) -> str:
    """The whole document."""
    nav = " ".join(f'<a href="#{escape(s.id)}">{escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{escape(s.id)}"><h2>{escape(s.title)}</h2>'
        f'<p class="lead">{s.lead}</p>{s.body}</section>' for s in sections)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style><script>{HEAD_SCRIPT}</script></head>"
        f'<body data-check="pending" style="--px: {int(display_px)}px">'
        f"<h1>{escape(title)}</h1><p class=\"lead\">{escape(subtitle)}</p><nav>{nav}</nav>"
        f"{body}<script>{CHECK_SCRIPT}</script></body></html>\n"
    )
