"""The invoice PDF read back with pypdf: issuer, T-number, 内消費税, totals, daily rows, revisions and 取消."""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal as D

import pypdf
import pytest

from ppa_billing.domain.billing_month import BillingMonth, period_of
from ppa_billing.domain.invoice import DailyUsage, RoundingMode
from ppa_billing.invoices import figures_of
from ppa_billing.pdf import InvoiceDocument, render_invoice_pdf
from ppa_contracts.billing import InvoiceIssuer

JAN = period_of(BillingMonth(2024, 1))
CUSTOMER = {"name": "顧客0170", "base_fee": "0", "sell_unit_price": "16.00", "usage_unit_price": "27.00",
            "contract_start": "2024-01-16", "contract_end": "2034-01-15"}
# The seed's 請求管理/詳細 rows (24011120220110), 2024/01/21..27
SEED_DAYS = [(21, "16.20", "11.10"), (22, "13.50", "8.20"), (23, "44.20", "35.90"), (24, "46.00", "35.00"),
             (25, "46.30", "40.40"), (26, "44.50", "34.00"), (27, "36.00", "30.60")]


def text_of(pdf: bytes) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def document(revision: int = 1, registration: str | None = "T1234567890123", voided: date | None = None,
             days: int = 0) -> InvoiceDocument:
    rows = [DailyUsage(date(2024, 1, d), D(g), D(s), D(g) - D(s)) for d, g, s in SEED_DAYS]
    rows += [DailyUsage(date(2024, 1, 28) + timedelta(days=i), D("10.00"), D("5.00"), D("5.00")) for i in range(days)]
    figures = figures_of(CUSTOMER, JAN, rows, RoundingMode.HALF_UP)
    issuer = InvoiceIssuer(name="太陽電力株式会社", address="東京都中央区日本橋兜町1-13",
                           registration_number=registration)
    return InvoiceDocument("24011120220110", "1120220110", "2024/01", revision, date(2024, 2, 20), issuer, figures,
                           voided_on=voided)


def test_pdf_shows_issuer_tax_totals_and_every_daily_row():
    text = text_of(render_invoice_pdf(document()))
    # 51.50 kWh × 27.00 = 1,390.50 → 1,391 (half up); 内消費税 floor(1,391 × 10/110) = 126
    for expected in ("請求書", "顧客0170 様", "請求番号 24011120220110", "発行日 2024/02/20", "太陽電力株式会社",
                     "東京都中央区日本橋兜町1-13", "登録番号 T1234567890123", "ご請求金額（税込）", "1,391 円",
                     "内消費税 10%", "126 円", "3,123 円", "246.70 kWh", "195.20 kWh", "51.50 kWh",
                     "2024/01/16 〜 2024/02/15", "日別グラフ"):
        assert expected in text, expected
    for day, gen, sold in SEED_DAYS:
        assert f"2024/01/{day}" in text and gen in text and sold in text
    assert "【取消】" not in text and "訂正" not in text


def test_pdf_without_a_registration_number_leaves_it_out():
    assert "登録番号" not in text_of(render_invoice_pdf(document(registration=None)))


@pytest.mark.parametrize("revision,title", [(1, "請求書"), (2, "請求書（訂正 第2版）"), (3, "請求書（訂正 第3版）")])
def test_revisions_say_so_in_the_title(revision, title):
    assert text_of(render_invoice_pdf(document(revision))).splitlines()[0] == title


def test_a_voided_copy_is_stamped():
    text = text_of(render_invoice_pdf(document(voided=date(2024, 3, 1))))
    assert "【取消】この請求書は 2024/03/01 に取り消されました。" in text


def test_a_full_month_flows_onto_a_second_page_with_the_header_repeated():
    reader = pypdf.PdfReader(io.BytesIO(render_invoice_pdf(document(days=19))))
    assert len(reader.pages) == 2
    assert "利用日" in reader.pages[1].extract_text() and "2024/02/15" in reader.pages[1].extract_text()
