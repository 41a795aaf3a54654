"""The invoice PDF (請求書): reportlab with its built-in Japanese CID font, so no font file is needed.

HeiseiKakuGo-W5 is one of the Adobe-Japan1 fonts every PDF reader provides, which is why it is
referenced rather than embedded; digits and Japanese text stay extractable (UniJIS-UCS2-H).
"""

from __future__ import annotations

import io
from decimal import Decimal

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from ppa_billing.domain.invoice_months import NO_DATA
from ppa_billing.documents import InvoiceDocument
from ppa_billing.formatting import kwh, slash_date, yen
from ppa_contracts.billing import InvoiceFigures

FONT = "HeiseiKakuGo-W5"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))
SERIES = (("発電量", colors.HexColor("#f2a900")), ("売電量", colors.HexColor("#1b6ca8")),
          ("利用量", colors.HexColor("#2e8b57")))


def _style(size: float, leading: float | None = None, align: int = 0) -> ParagraphStyle:
    return ParagraphStyle(f"s{size}{align}", fontName=FONT, fontSize=size, leading=leading or size * 1.4,
                          alignment=align)


def _grid(rows: list[list[str]], widths: list[float], header: bool = False, numeric_from: int = 99,
          size: float = 9) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    style = [("FONT", (0, 0), (-1, -1), FONT, size), ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
             ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("ALIGN", (numeric_from, 0), (-1, -1), "RIGHT")]
    if header:
        style += [("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2f6")), ("ALIGN", (0, 0), (-1, 0), "CENTER")]
    table.setStyle(TableStyle(style))
    return table


def chart(figures: InvoiceFigures, width: float = 170 * mm, height: float = 62 * mm) -> Drawing:
    """Daily generation, sold and usage as grouped bars, with a legend."""
    drawing = Drawing(width, height)
    days = figures.daily
    bars = VerticalBarChart()
    bars.x, bars.y, bars.width, bars.height = 32, 22, width - 40, height - 44
    bars.data = [[float(getattr(d, field)) for d in days] or [0.0]
                 for field in ("generation_kwh", "sold_kwh", "usage_kwh")]  # drawing coordinates only
    bars.categoryAxis.categoryNames = [f"{d.date.day}" for d in days] or [""]
    bars.categoryAxis.labels.fontName = FONT
    bars.categoryAxis.labels.fontSize = 6
    bars.valueAxis.valueMin = 0
    bars.valueAxis.labels.fontSize = 6
    bars.valueAxis.labels.fontName = FONT
    bars.barSpacing = 0
    bars.groupSpacing = 2
    for index, (_, colour) in enumerate(SERIES):
        bars.bars[index].fillColor = colour
        bars.bars[index].strokeColor = None
    drawing.add(bars)
    legend = Legend()
    legend.x, legend.y = width - 190, height - 6
    legend.fontName, legend.fontSize = FONT, 8
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.deltax = 60
    legend.colorNamePairs = [(colour, label) for label, colour in SERIES]
    drawing.add(legend)
    drawing.add(String(0, height - 10, "(kWh)", fontName=FONT, fontSize=7))
    return drawing


def render_invoice_pdf(doc: InvoiceDocument) -> bytes:
    """Render the invoice; deterministic for the same input apart from the PDF's creation date."""
    f = doc.figures
    buffer = io.BytesIO()
    title = "請求書" if doc.revision == 1 else f"請求書（訂正 第{doc.revision}版）"
    pdf = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm, title=f"{title} {doc.invoice_number}", author=doc.issuer.name,
                            subject=f"利用月 {doc.month}", creator="家庭用PPA platform")
    story: list = []
    if doc.voided_on is not None:
        story.append(Paragraph(f"【取消】この請求書は {slash_date(doc.voided_on)} に取り消されました。",
                               ParagraphStyle("void", fontName=FONT, fontSize=14, leading=20, textColor=colors.red)))
    story.append(Paragraph(title, _style(20, align=1)))
    story.append(Spacer(1, 4 * mm))
    issuer_lines = [doc.issuer.name, doc.issuer.address]
    if doc.issuer.registration_number:
        issuer_lines.append(f"登録番号 {doc.issuer.registration_number}")
    head = Table([[Paragraph(f"{f.name} 様<br/>顧客番号 {doc.customer_number}", _style(12)),
                   Paragraph("<br/>".join(
                       [f"請求番号 {doc.invoice_number}", f"発行日 {slash_date(doc.issued_on)}", f"利用月 {doc.month}",
                        *[line for line in issuer_lines if line]]), _style(9, align=2))]],
                 colWidths=[90 * mm, 84 * mm])
    head.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [head, Spacer(1, 5 * mm)]
    story.append(_grid([["ご請求金額（税込）", f"{yen(f.total)} 円"],
                        [f"（内消費税 {f.tax_rate_percent}%）", f"{yen(f.consumption_tax)} 円"]],
                       [60 * mm, 50 * mm], numeric_from=1, size=11))
    story.append(Spacer(1, 4 * mm))
    contract = (f"{slash_date(f.contract_start) if f.contract_start else ''} 〜 "
                f"{slash_date(f.contract_end) if f.contract_end else ''}"
                if f.contract_start or f.contract_end else "")
    info = [
        ["利用期間", f"{slash_date(f.period_start)} 〜 {slash_date(f.period_end)}", "契約期間", contract],
        ["基本料金", f"{yen(f.base_fee)} 円", "発電量", f"{kwh(f.generation_kwh)} kWh"],
        ["売電量", f"{kwh(f.sold_kwh)} kWh", "利用量", f"{kwh(f.usage_kwh)} kWh"],
        ["売電単価", f"{kwh(f.sell_unit_price)} 円", "利用単価", f"{kwh(f.usage_unit_price)} 円"],
        ["売電料金（参考）", f"{yen(f.sell_fee)} 円", "利用料金", f"{yen(f.usage_fee)} 円"],
        ["利用料金合計", f"{yen(f.total)} 円", f"{f.tax_rate_percent}%対象（税込）",
         f"{yen(f.total)} 円（内消費税 {yen(f.consumption_tax)} 円）"],
    ]
    story.append(_grid(info, [28 * mm, 45 * mm, 30 * mm, 71 * mm], size=8.5))
    story += [Spacer(1, 4 * mm), Paragraph("日別グラフ", _style(10)), chart(f), Spacer(1, 3 * mm)]
    rows = [["利用日", "発電量 (kWh)", "売電量 (kWh)", "利用量 (kWh)", "売電料金 (円)", "利用料金 (円)"]]
    rows += [[slash_date(d.date), kwh(d.generation_kwh), kwh(d.sold_kwh), kwh(d.usage_kwh), kwh(d.sell_fee),
              kwh(d.usage_fee)] for d in f.daily]
    story.append(_grid(rows, [29 * mm] * 6, header=True, numeric_from=1, size=8))
    if not f.daily:  # a month without readings: the base fee only
        story.append(Paragraph(f"{NO_DATA}（この期間の計測データがありません。基本料金のみの請求です。）", _style(8.5)))
    story.append(Spacer(1, 3 * mm))
    story.append(Paragraph("金額は税込です。円未満の端数は請求書ごとに一度だけ処理しています。", _style(7.5)))
    pdf.build(story)
    return buffer.getvalue()


def total_text(total: Decimal) -> str:
    """The total as the PDF prints it (tests and mails use the same form)."""
    return f"{yen(total)} 円"
