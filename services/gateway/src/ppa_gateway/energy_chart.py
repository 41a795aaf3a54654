"""A server-rendered SVG bar chart of 「電力データを見る」: one group of bars per row (half hour, day or month),
drawn as the agency's daily usage chart is (billing_chart): role=img, a title, one <rect> per value."""

from __future__ import annotations

from decimal import Decimal

from markupsafe import Markup, escape

from ppa_gateway.billing_chart import _nice_max
from ppa_gateway.owner_energy import SERIES, EnergyView

COLOURS = {"generation": "#f2a900", "export": "#1b6ca8", "import": "#c0392b", "consumption": "#2e8b57",
           "charge": "#8e44ad", "discharge": "#16a085"}
WIDTH, HEIGHT = 960, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 44, 44


def energy_chart(view: EnergyView, title: str) -> Markup:
    """Bars of 発電量・売電量・買電量・消費量 (and 蓄電池 充電/放電 when the home has them) per row."""
    keys = [k for k in COLOURS if k in view.series]
    rows = view.rows
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_max(max((r.presented[k] for r in rows for k in keys), default=Decimal(0)))
    parts = [f'<svg class="chart energy" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" '
             f'xmlns="http://www.w3.org/2000/svg"><title id="chart-title">{escape(title)}</title>']
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#d8dde3"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
                     f'{value.quantize(Decimal("0.01")).normalize():f}</text>')
    parts.append(f'<text x="6" y="{TOP - 22}" font-size="11">(kWh)</text>')
    slot = plot_w / max(len(rows), 1)
    bar = max(slot * 0.8 / len(keys), 0.5)
    every = max(1, len(rows) // 16)  # at most ~16 axis labels
    for index, row in enumerate(rows):
        x0 = LEFT + index * slot + slot * 0.1
        values = row.presented
        for n, key in enumerate(keys):
            value = values[key]
            height = float(value / top) * plot_h if top else 0.0
            parts.append(f'<rect class="bar {key}" x="{x0 + n * bar:.2f}" y="{TOP + plot_h - height:.1f}" '
                         f'width="{bar:.2f}" height="{height:.1f}" fill="{COLOURS[key]}" data-value="{value}">'
                         f'<title>{escape(row.label)} {SERIES[key]} {value} kWh</title></rect>')
        if index % every == 0:
            parts.append(f'<text x="{x0 + bar * len(keys) / 2:.1f}" y="{HEIGHT - BOTTOM + 14}" '
                         f'text-anchor="middle" font-size="10">{escape(row.label.split("（")[0])}</text>')
    for n, key in enumerate(keys):
        x = LEFT + n * 110
        parts.append(f'<rect x="{x}" y="10" width="12" height="12" fill="{COLOURS[key]}"/>'
                     f'<text x="{x + 16}" y="21" font-size="12">{SERIES[key]}</text>')
    if not rows:
        parts.append(f'<text x="{WIDTH / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" font-size="14">'
                     'この期間の電力データはまだありません</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
