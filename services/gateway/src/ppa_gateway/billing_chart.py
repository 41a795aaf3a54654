"""A server-rendered SVG bar chart of an invoice's days: generation, sold and usage side by side."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape

SERIES = (("generation_kwh", "発電量", "#f2a900"), ("sold_kwh", "売電量", "#1b6ca8"),
          ("usage_kwh", "利用量", "#2e8b57"))
WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 36, 44


def _nice_max(value: Decimal) -> Decimal:
    """A round axis maximum at or above the value (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (1, 2, 5, 10):
        top = Decimal(step).scaleb(exponent)
        if top >= value:
            return top
    return Decimal(10).scaleb(exponent)  # pragma: no cover - the loop always returns


def daily_chart(daily: list[dict[str, Any]], title: str = "日別 発電量・売電量・利用量",
                series: tuple[tuple[str, str, str], ...] = SERIES) -> Markup:
    """An accessible SVG (role=img, a title, one <rect> per value with its own <title>); `series` are
    (key, label, colour) of the bars of each day."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_max(max((Decimal(d[key]) for d in daily for key, _, _ in series), default=Decimal(0)))
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" '
             f'xmlns="http://www.w3.org/2000/svg"><title id="chart-title">{escape(title)}</title>']
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#d8dde3"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
                     f'{value.quantize(Decimal("0.01")).normalize():f}</text>')  # quarters of 1, 2 or 5 × 10^k
    parts.append(f'<text x="6" y="{TOP - 14}" font-size="11">(kWh)</text>')
    slot = plot_w / max(len(daily), 1)
    bar = max(slot * 0.8 / len(series), 1)
    for index, day in enumerate(daily):
        x0 = LEFT + index * slot + slot * 0.1
        for n, (key, label, colour) in enumerate(series):
            value = Decimal(day[key])
            height = float(value / top) * plot_h if top else 0.0
            parts.append(f'<rect class="bar {key}" x="{x0 + n * bar:.1f}" y="{TOP + plot_h - height:.1f}" '
                         f'width="{bar:.1f}" height="{height:.1f}" fill="{colour}" data-value="{value}">'
                         f'<title>{escape(day["date"])} {label} {value} kWh</title></rect>')
        parts.append(f'<text x="{x0 + bar * len(series) / 2:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" '
                     f'font-size="10">{int(day["date"][8:10])}</text>')
    for n, (_, label, colour) in enumerate(series):
        x = WIDTH - RIGHT - 90 * len(series) + n * 90
        parts.append(f'<rect x="{x}" y="10" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{x + 16}" y="21" font-size="12">{label}</text>')
    if not daily:
        parts.append(f'<text x="{WIDTH / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" font-size="14">'
                     'この期間の利用データはまだありません</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
