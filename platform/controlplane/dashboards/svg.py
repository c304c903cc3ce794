"""Server-rendered SVG charts: a line chart (values by day) and a horizontal bar chart (values by label).

Why our own ~150 lines instead of a charting package: the charts needed are two simple shapes, and the
packages on PyPI that write SVG (pygal, matplotlib) either add scripts and inline styles that need
JavaScript for their tooltips, or write paths without text that a screen reader cannot use, and pull in
large dependencies. Here every chart is plain SVG 1.1 markup: ``role="img"`` with ``aria-labelledby``
pointing at its ``<title>`` and ``<desc>``, text as real ``<text>``, no script, sized by ``viewBox`` so it
scales to a phone's width. Series are told apart by colour *and* by a second cue (dashes for lines, the
value written beside each bar), and the page puts the same numbers in a table next to it.

Every text is escaped here; callers pass plain strings and numbers. Returns ``SafeString``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colours with at least 4.5:1 contrast on white (WCAG AA for the text drawn in them).
PALETTE = ("#1f5fa8", "#a34700", "#2e7d32", "#6a1b9a")
DASHES = ("", "6 4", "2 3", "8 3 2 3")
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _number(value: float) -> str:
    """A value as printed on a chart: whole numbers without decimals, others with up to 2."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= ``value`` (1 for 0): the top of an axis."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _open(chart_id: str, title: str, desc: str, width: int, height: int) -> list[str]:
    cid = escape(chart_id)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="chart" role="img"'
        f' aria-labelledby="{cid}-title {cid}-desc" preserveAspectRatio="xMinYMin meet">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(desc)}</desc>',
    ]


def _legend(names: Sequence[str], x: int, y: int, line: bool) -> list[str]:
    parts = []
    for i, name in enumerate(names):
        colour, lx = PALETTE[i % len(PALETTE)], x + i * 150
        if line:
            dash = f' stroke-dasharray="{DASHES[i % len(DASHES)]}"' if DASHES[i % len(DASHES)] else ""
            parts.append(
                f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 22}" y2="{y - 4}" stroke="{colour}" stroke-width="3"{dash}/>'
            )
        else:
            parts.append(f'<rect x="{lx}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 28}" y="{y}" {FONT} fill="#1a1a1a">{escape(name)}</text>')
    return parts


def svg_line_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    counts: bool = False,
) -> SafeString:
    """A line chart: one line per ``(name, values)`` of ``series`` over ``x_labels`` (same length), with a
    y axis from 0 to a round maximum, five gridlines, and every ~7th x label. Each point carries a
    ``<title>`` with its label and value (a tooltip, no script needed). ``counts``: the values are whole
    numbers, so the axis goes up to at least 5 and every gridline is a whole number."""
    width, height, left, right, top, bottom = 600, 260, 40, 22, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = nice_max(max((v for _, values in series for v in values), default=0))
    if counts:
        top_value = max(top_value, 5.0)  # nice_max's tops of 5 and more divide by 5 into whole steps
    count = max(len(x_labels), 1)

    def px(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top + plot_h - plot_h * v / top_value

    parts = _open(chart_id, title, desc, width, height)
    parts += _legend([name for name, _ in series], left, 16, line=True)
    for step in range(6):
        value = top_value * step / 5
        y = py(value)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#d0d7de"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT} fill="#1a1a1a">{_number(value)}</text>'
        )
    every = max(1, math.ceil(count / 12))
    for i, label in enumerate(x_labels):
        if i % every == 0 or (i == count - 1 and i % every > every / 2):
            parts.append(
                f'<text x="{px(i):.1f}" y="{height - bottom + 18}" text-anchor="middle" {FONT}'
                f' fill="#1a1a1a">{escape(label)}</text>'
            )
    for s, (name, values) in enumerate(series):
        colour, dash = PALETTE[s % len(PALETTE)], DASHES[s % len(DASHES)]
        points = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(values))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>'
        )
        for i, v in enumerate(values):
            parts.append(
                f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="2.5" fill="{colour}">'
                f"<title>{escape(x_labels[i])}: {escape(name)} {_number(v)}</title></circle>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def svg_bar_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    rows: Sequence[tuple[str, Sequence[float | None]]],
    series: Sequence[str],
    max_value: float | None = None,
    unit: str = "",
) -> SafeString:
    """A horizontal bar chart: per row ``(label, values)`` one bar per series (``values`` in the order of
    ``series``; None draws no bar and writes "no data"), each with its value written at its end
    (followed by ``unit``). Bars scale to ``max_value`` (a percentage's 100, a score's 5) or to a round
    maximum of the values."""
    bar_h, gap, label_w, width, top = 16, 10, 150, 600, 30 if len(series) > 1 else 8
    plot_w = width - label_w - 70
    numbers = [v for _, values in rows for v in values if v is not None]
    scale = max_value or nice_max(max(numbers, default=0))
    group_h = bar_h * len(series) + gap
    height = top + max(len(rows), 1) * group_h + 8
    parts = _open(chart_id, title, desc, width, height)
    if len(series) > 1:
        parts += _legend(series, label_w, 16, line=False)
    if not rows:
        parts.append(f'<text x="{label_w}" y="{top + 14}" {FONT} fill="#1a1a1a">No data.</text>')
    for r, (label, values) in enumerate(rows):
        y0 = top + r * group_h
        text = label if len(label) <= 22 else label[:21] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{y0 + bar_h * len(series) / 2 + 4:.1f}" text-anchor="end" {FONT}'
            f' fill="#1a1a1a">{escape(text)}</text>'
        )
        for s, value in enumerate(values):
            y = y0 + s * bar_h
            name = series[s] if s < len(series) else ""
            if value is None:
                parts.append(
                    f'<text x="{label_w + 4}" y="{y + bar_h - 4}" {FONT} fill="#555">'
                    f"{escape(name + ': ' if len(series) > 1 else '')}no data</text>"
                )
                continue
            w = max(0.0, plot_w * min(float(value), scale) / scale)
            parts.append(
                f'<rect x="{label_w}" y="{y + 1}" width="{w:.1f}" height="{bar_h - 2}"'
                f' fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(label)}: {escape(name)} {_number(value)}{escape(unit)}'
                "</title></rect>"
            )
            parts.append(
                f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h - 4}" {FONT} fill="#1a1a1a">'
                f"{_number(value)}{escape(unit)}</text>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped
