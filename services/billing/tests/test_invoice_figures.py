"""Invoice figures as issued: the seed rows with their 内消費税, contract periods inside a month, a leap day
and half-yen cases per rounding mode under each closing-day setting (table-driven)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from ppa_billing.domain.billing_month import END_OF_MONTH, BillingMonth, invoice_number, period_of
from ppa_billing.domain.invoice import DailyUsage, RoundingMode
from ppa_billing.invoices import draft_of, figures_of, public


def customer(base: str = "0", start: str | None = "2023-12-16", end: str | None = "2037-12-15",
             usage_price: str = "27.00", sell_price: str = "16.00") -> dict:
    return {"name": "顧客", "base_fee": base, "sell_unit_price": sell_price, "usage_unit_price": usage_price,
            "contract_start": start, "contract_end": end}


def even_days(period, gen: str, sold: str, days: int = 4) -> list[DailyUsage]:
    """Monthly totals over the first `days` days, summing exactly (the remainder on the last day)."""
    g, s = D(gen), D(sold)
    g_day, s_day = (g / days).quantize(D("0.01"), "ROUND_DOWN"), (s / days).quantize(D("0.01"), "ROUND_DOWN")
    out = []
    for i in range(days):
        gi = g - g_day * (days - 1) if i == days - 1 else g_day
        si = s - s_day * (days - 1) if i == days - 1 else s_day
        out.append(DailyUsage(period.start + timedelta(days=i), gi, si, gi - si))
    return out


JAN = period_of(BillingMonth(2024, 1))

# customer, base, gen, sold, contract (start, end), sell fee, usage fee, total, 内消費税 (PRODUCT.md Flow E)
SEED = [
    ("1120220118", "0", "212.70", "129.60", ("2023-12-16", "2037-12-15"), "2074", "2244", "2244", "204"),
    ("1120230030", "980", "116.70", "75.30", ("2023-12-16", "2037-12-15"), "1205", "1118", "2098", "190"),
    ("1120230057", "980", "177.20", "120.20", (None, None), "1923", "0", "980", "89"),
]


@pytest.mark.parametrize("number,base,gen,sold,contract,sell_fee,usage_fee,total,tax", SEED)
def test_seed_rows_as_issued_figures(number, base, gen, sold, contract, sell_fee, usage_fee, total, tax):
    f = figures_of(customer(base, *contract), JAN, even_days(JAN, gen, sold), RoundingMode.HALF_UP)
    assert (str(f.generation_kwh), str(f.sold_kwh)) == (gen, sold)
    assert (str(f.sell_fee), str(f.usage_fee), str(f.total), str(f.consumption_tax)) == \
        (sell_fee, usage_fee, total, tax)
    assert f.tax_rate_percent == 10 and len(f.daily) == 4


def _every_day(period, usage: str = "1.00") -> list[DailyUsage]:
    return [DailyUsage(d, D(usage) + 1, D(1), D(usage)) for d in period.days()]


# closing day, month, contract start, contract end, billable days (1.00 kWh a day at 27.00)
CONTRACTS = [
    (15, (2024, 1), "2024-01-20", "2024-02-10", 22),   # start and end inside a 16th–15th month
    (END_OF_MONTH, (2024, 1), "2024-01-20", None, 12),  # starts inside a calendar month
    (END_OF_MONTH, (2024, 1), None, "2024-01-10", 10),  # ends inside a calendar month
    (END_OF_MONTH, (2024, 2), "2024-02-29", "2024-02-29", 1),  # only the leap day
    (15, (2024, 2), "2024-02-28", "2024-03-01", 3),     # across the leap day
    (10, (2024, 2), None, None, 0),                     # no contract period: no usage fee
]


@pytest.mark.parametrize("closing,month,start,end,billable", CONTRACTS)
def test_only_contract_days_are_charged_under_each_closing_day(closing, month, start, end, billable):
    period = period_of(BillingMonth(*month), closing)
    f = figures_of(customer("980", start, end), period, _every_day(period), RoundingMode.HALF_UP)
    assert f.usage_kwh == D(len(period)) and f.usage_fee == D(27 * billable) and f.total == D(980 + 27 * billable)
    assert sum(1 for d in f.daily if d.usage_fee) == billable


# usage kWh × 27.00 lands on half a yen; results per mode: half up, down, half even
HALF_YEN = [("0.50", "13.5", 14, 13, 14), ("1.50", "40.5", 41, 40, 40), ("83.50", "2254.5", 2255, 2254, 2254),
            ("41.50", "1120.5", 1121, 1120, 1120), ("3.50", "94.5", 95, 94, 94)]


@pytest.mark.parametrize("usage,exact,half_up,down,half_even", HALF_YEN)
@pytest.mark.parametrize("closing", [15, END_OF_MONTH, 1, 28])
def test_half_yen_per_rounding_mode_under_each_closing_day(usage, exact, half_up, down, half_even, closing):
    period = period_of(BillingMonth(2024, 2), closing)
    rows = [DailyUsage(period.start, D(usage), D("0.00"), D(usage))]
    assert D(usage) * D("27.00") == D(exact)
    fees = [figures_of(customer("0", "2024-01-01", None), period, rows, mode).usage_fee for mode in RoundingMode]
    assert fees == [D(half_up), D(down), D(half_even)]


def test_figures_round_trip_through_json_unchanged():
    f = figures_of(customer("980"), JAN, even_days(JAN, "116.70", "75.30"), RoundingMode.HALF_EVEN)
    assert type(f).model_validate_json(f.model_dump_json()) == f
    assert f.rounding == "half_even"


@pytest.mark.parametrize("number,base,gen,sold,contract,sell_fee,usage_fee,total,tax", SEED)
@pytest.mark.parametrize("closing", [15, END_OF_MONTH, 1, 28])
@pytest.mark.parametrize("mode", list(RoundingMode))
def test_a_drafts_json_from_its_kept_days_is_the_invoice_json_of_its_figures(
        number, base, gen, sold, contract, sell_fee, usage_fee, total, tax, closing, mode):
    month = BillingMonth(2024, 1)
    period = period_of(month, closing)
    rows = even_days(period, gen, sold, days=6)
    kept = {row.date.isoformat(): [str(row.generation_kwh), str(row.sold_kwh), str(row.usage_kwh), 1] for row in rows}
    kept[(period.end + timedelta(days=1)).isoformat()] = ["9.00", "1.00", "8.00", 1]  # not in the month: not billed
    owner = {**customer(base, *contract), "customer_number": number}
    expected = public(invoice_number(month, number), str(month), number,
                      figures_of(owner, period, rows, mode).model_dump(mode="json"), "draft", 0, False)
    assert draft_of(owner, month, closing, kept, mode) == expected
    if mode is RoundingMode.HALF_UP and closing == 15:
        assert (expected["sell_fee"], expected["usage_fee"], expected["total"], expected["consumption_tax"]) == \
            (sell_fee, usage_fee, total, tax)
