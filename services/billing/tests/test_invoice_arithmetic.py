"""Invoice arithmetic: the seed's worked rows, contract periods, leap day, rounding modes, properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import ROUND_DOWN, Context, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppa_billing.domain.billing_month import END_OF_MONTH, BillingMonth, period_of
from ppa_billing.domain.invoice import (DailyUsage, RoundingMode, compute_invoice, compute_totals,
                                        included_consumption_tax, round_yen, two_decimals)

D = Decimal
JAN = period_of(BillingMonth(2024, 1))  # 2024-01-16 .. 2024-02-15, closing day 15
SEED_PRICES = {"sell_unit_price": D("16.00"), "usage_unit_price": D("27.00")}  # every seed customer


def spread(period, generation: str, sold: str, days: int = 10) -> list[DailyUsage]:
    """Split monthly totals over the first `days` days so the rows sum exactly to them."""
    gen_total, sold_total = D(generation), D(sold)
    gen_day = (gen_total / days).quantize(D("0.01"), rounding=ROUND_DOWN)
    sold_day = (sold_total / days).quantize(D("0.01"), rounding=ROUND_DOWN)
    rows = []
    for i in range(days):
        last = i == days - 1
        g = gen_total - gen_day * (days - 1) if last else gen_day
        s = sold_total - sold_day * (days - 1) if last else sold_day
        rows.append(DailyUsage(period.start + timedelta(days=i), g, s, g - s))
    return rows


# PRODUCT.md, Flow E — must come out exactly (seed 004, 請求管理 一覧, 利用月 2024/01).
WORKED_ROWS = [
    # customer, base, gen, sold, usage, sell fee, usage fee, total, contract
    ("1120220118", "0", "212.70", "129.60", "83.10", "2074", "2244", "2244",
     (date(2023, 12, 16), date(2037, 12, 15))),  # contract not in the seed pages; any covering one
    ("1120230030", "980", "116.70", "75.30", "41.40", "1205", "1118", "2098",
     (date(2023, 12, 16), date(2037, 12, 15))),  # 顧客管理 一覧: 2023/12/16 ~ 2037/12/15
    ("1120230057", "980", "177.20", "120.20", "57.00", "1923", "0", "980", (None, None)),  # 契約期間 blank
]


@pytest.mark.parametrize("number,base,gen,sold,usage,sell_fee,usage_fee,total,contract", WORKED_ROWS)
def test_seed_worked_rows_come_out_exactly(number, base, gen, sold, usage, sell_fee, usage_fee, total,
                                           contract):
    amounts = compute_invoice(base_fee=D(base), period=JAN, rows=spread(JAN, gen, sold),
                              contract_start=contract[0], contract_end=contract[1], **SEED_PRICES)
    shown = (amounts.base_fee, amounts.generation_kwh, amounts.sold_kwh, amounts.usage_kwh,
             amounts.sell_fee, amounts.usage_fee, amounts.total)
    assert tuple(str(v) for v in shown) == (base, gen, sold, usage, sell_fee, usage_fee, total)


# Other 2024/01 list rows whose contract period the seed's customer list shows (all from 2023/12/16).
OTHER_SEED_ROWS = [
    ("1120220110", "388.20", "302.00", "4832", "2327", (date(2024, 1, 16), date(2034, 1, 15))),
    ("1120230056", "188.70", "129.80", "2077", "1590", (date(2023, 12, 16), date(2037, 12, 15))),
    ("1120230043", "362.70", "307.50", "4920", "1490", (date(2023, 12, 16), date(2033, 12, 15))),
    ("1120230039", "237.10", "214.70", "3435", "0", (None, None)),
    ("1120230012", "384.00", "333.30", "5333", "1369", (date(2023, 12, 16), date(2033, 12, 15))),
    ("1120230038", "217.30", "129.40", "2070", "2373", (date(2023, 12, 16), date(2034, 12, 15))),
]


@pytest.mark.parametrize("number,gen,sold,sell_fee,usage_fee,contract", OTHER_SEED_ROWS)
def test_other_seed_list_rows_agree(number, gen, sold, sell_fee, usage_fee, contract):
    amounts = compute_invoice(base_fee=D(0), period=JAN, rows=spread(JAN, gen, sold),
                              contract_start=contract[0], contract_end=contract[1], **SEED_PRICES)
    shown = (str(amounts.sell_fee), str(amounts.usage_fee), str(amounts.total))
    assert shown == (sell_fee, usage_fee, usage_fee)  # base fee 0: the total is the usage fee


def test_seed_daily_rows_show_two_decimals_and_no_usage_fee_without_contract():
    # 顧客管理 請求詳細 (24011120230057), 2024/01/21..27: 発電量, 売電量, 利用量, 売電料金, 利用料金.
    seed = [("21", "5.60", "2.10", "3.50", "33.60"), ("22", "7.00", "5.30", "1.70", "84.80"),
            ("23", "18.30", "15.20", "3.10", "243.20"), ("24", "15.30", "13.20", "2.10", "211.20"),
            ("25", "20.60", "15.20", "5.40", "243.20"), ("26", "20.60", "18.60", "2.00", "297.60"),
            ("27", "16.00", "7.30", "8.70", "116.80")]
    rows = [DailyUsage(date(2024, 1, int(d)), D(g), D(s), D(u)) for d, g, s, u, _ in seed]
    amounts = compute_invoice(base_fee=D(980), period=JAN, rows=rows, **SEED_PRICES)
    shown = [(f"{r.date.day}", str(r.generation_kwh), str(r.sold_kwh), str(r.usage_kwh), str(r.sell_fee))
             for r in amounts.daily]
    assert shown == seed
    assert all(str(r.usage_fee) == "0.00" and not r.in_contract for r in amounts.daily)


def test_daily_usage_fee_counts_contract_days():
    # 請求管理 詳細 (24011120220110), 2024/01/27: 36.00 / 30.60 / 5.40, 売電料金 489.60.
    row = DailyUsage(date(2024, 1, 27), D("36.00"), D("30.60"), D("5.40"))
    daily = compute_invoice(base_fee=D(0), period=JAN, rows=[row], contract_start=date(2024, 1, 16),
                            contract_end=date(2034, 1, 15), **SEED_PRICES).daily[0]
    assert (str(daily.sell_fee), str(daily.usage_fee)) == ("489.60", "145.80")


def _ones(period) -> list[DailyUsage]:
    return [DailyUsage(day, D("3.00"), D("2.00"), D("1.00")) for day in period.days()]


@pytest.mark.parametrize("start,end,billable_days", [
    (date(2024, 1, 20), date(2024, 2, 10), 22),  # starts and ends inside the month
    (date(2024, 1, 20), None, 27),  # starts inside, open end
    (None, date(2024, 1, 31), 16),  # only an end, inside the month
    (date(2023, 1, 1), date(2024, 1, 15), 0),  # ended the day before the period
    (date(2024, 2, 15), date(2024, 2, 15), 1),  # one day: the closing day itself
    (None, None, 0),  # no contract period at all
])
def test_usage_fee_counts_only_days_inside_the_contract(start, end, billable_days):
    amounts = compute_invoice(base_fee=D(980), period=JAN, rows=_ones(JAN), contract_start=start,
                              contract_end=end, **SEED_PRICES)
    assert amounts.usage_kwh == D("31.00") and amounts.sell_fee == D(31 * 2 * 16)
    assert amounts.billable_usage_kwh == D(billable_days)
    assert amounts.usage_fee == D(billable_days * 27) and amounts.total == D(980 + billable_days * 27)
    assert sum(r.in_contract for r in amounts.daily) == billable_days


def test_seed_december_row_fits_a_contract_starting_inside_the_month():
    # 1120230057 2023/12 shows usage 130.30 but 利用料金 97: only part of the usage was billed
    # (3.59 kWh × 27 = 96.93). The seed doesn't show that month's contract; these rows are made up
    # to show a contract starting on the period's last day reproduces the row.
    dec = period_of(BillingMonth(2023, 12))
    rows = spread(dec, "406.40", "279.69", days=30) + [
        DailyUsage(date(2024, 1, 15), D("5.00"), D("1.41"), D("3.59"))]
    amounts = compute_invoice(base_fee=D(980), period=dec, rows=rows, contract_start=date(2024, 1, 15),
                              contract_end=date(2037, 12, 15), **SEED_PRICES)
    assert (amounts.generation_kwh, amounts.sold_kwh, amounts.usage_kwh) == (
        D("411.40"), D("281.10"), D("130.30"))
    assert (amounts.sell_fee, amounts.usage_fee, amounts.total) == (D(4498), D(97), D(1077))


@pytest.mark.parametrize("closing_day,month,days", [(15, BillingMonth(2024, 2), 29),
                                                     (END_OF_MONTH, BillingMonth(2024, 2), 29)])
def test_leap_day_is_billed_in_its_month(closing_day, month, days):
    period = period_of(month, closing_day)
    assert date(2024, 2, 29) in period
    rows = _ones(period)
    amounts = compute_invoice(base_fee=D(0), period=period, rows=rows, contract_start=date(2024, 2, 29),
                              contract_end=date(2024, 2, 29), **SEED_PRICES)
    assert len(amounts.daily) == days and amounts.usage_fee == D(27)
    assert [r.date for r in amounts.daily if r.in_contract] == [date(2024, 2, 29)]


@pytest.mark.parametrize("amount,half_up,down,half_even", [
    ("0.5", 1, 0, 0), ("1.5", 2, 1, 2), ("2.5", 3, 2, 2), ("2254.5", 2255, 2254, 2254),
    ("2281.5", 2282, 2281, 2282), ("2.49", 2, 2, 2), ("2.99", 3, 2, 3), ("7", 7, 7, 7),
])
def test_half_yen_rounds_per_mode(amount, half_up, down, half_even):
    assert [round_yen(D(amount), mode) for mode in RoundingMode] == [D(half_up), D(down), D(half_even)]


@pytest.mark.parametrize("mode,sell_fee,usage_fee", [
    ("half_up", 2075, 2255), ("down", 2074, 2254), ("half_even", 2074, 2254),
])
def test_invoice_rounds_half_yen_once_with_the_operator_mode(mode, sell_fee, usage_fee):
    # Both fees land exactly on half a yen: 138.30 × 15.00 = 2074.50 and 83.50 × 27.00 = 2254.50.
    rows = [DailyUsage(date(2024, 1, 20), D("221.80"), D("138.30"), D("83.50"))]
    amounts = compute_invoice(base_fee=D(980), sell_unit_price=D("15.00"), usage_unit_price=D("27.00"),
                              period=JAN, rows=rows, contract_start=date(2024, 1, 1), rounding=mode)
    assert (amounts.sell_fee, amounts.usage_fee, amounts.total) == (D(sell_fee), D(usage_fee),
                                                                    D(980 + usage_fee))


def test_daily_fees_are_display_values_not_the_basis_of_the_total():
    rows = [DailyUsage(date(2024, 1, 16) + timedelta(days=i), D("0.10"), D("0.00"), D("0.10"))
            for i in range(3)]
    amounts = compute_invoice(base_fee=D(0), sell_unit_price=D(0), usage_unit_price=D("5.55"),
                              period=JAN, rows=rows, contract_start=date(2024, 1, 1))
    assert [r.usage_fee for r in amounts.daily] == [D("0.56")] * 3  # 0.555 each, shown half up
    assert amounts.usage_fee == D(2)  # 0.30 × 5.55 = 1.665 → 2, not 3 × 0.56 = 1.68


def test_rows_outside_the_billing_period_are_ignored_and_duplicates_refused():
    outside = DailyUsage(date(2024, 2, 16), D("99"), D("9"), D("90"))
    inside = DailyUsage(date(2024, 2, 15), D("1"), D("0"), D("1"))
    amounts = compute_invoice(base_fee=D(0), period=JAN, rows=[outside, inside],
                              contract_start=date(2024, 1, 1), **SEED_PRICES)
    assert amounts.usage_kwh == D("1.00") and [r.date for r in amounts.daily] == [inside.date]
    with pytest.raises(ValueError, match="two daily rows"):
        compute_invoice(base_fee=D(0), period=JAN, rows=[inside, inside], **SEED_PRICES)


def test_floats_and_non_finite_kwh_are_refused():
    with pytest.raises(TypeError):
        compute_invoice(base_fee=D(0), period=JAN, rows=[DailyUsage(date(2024, 1, 16), 1.1, D(1), D("0.1"))],
                        **SEED_PRICES)
    with pytest.raises(TypeError):
        compute_invoice(base_fee=980.0, period=JAN, rows=[], **SEED_PRICES)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        compute_invoice(base_fee=D(0), period=JAN, rows=[DailyUsage(date(2024, 1, 16), D(1), D("NaN"), D(1))],
                        **SEED_PRICES)


def test_without_daily_the_totals_are_the_same():
    rows = spread(JAN, "212.70", "129.60")
    full = compute_invoice(base_fee=D(0), period=JAN, rows=rows, contract_start=JAN.start, **SEED_PRICES)
    lean = compute_invoice(base_fee=D(0), period=JAN, rows=rows, contract_start=JAN.start,
                           with_daily=False, **SEED_PRICES)
    assert lean.daily == () and len(full.daily) == 10
    assert replace(full, daily=()) == lean


def test_a_callers_decimal_context_does_not_change_the_invoice():
    rows = spread(JAN, "212.70", "129.60")
    expected = compute_invoice(base_fee=D(0), period=JAN, rows=rows, contract_start=JAN.start, **SEED_PRICES)
    with localcontext(Context(prec=3, rounding=ROUND_DOWN)):
        assert compute_invoice(base_fee=D(0), period=JAN, rows=rows, contract_start=JAN.start,
                               **SEED_PRICES) == expected


@pytest.mark.parametrize("total,tax", [(2244, 204), (2098, 190), (980, 89), (110, 10), (109, 9), (0, 0)])
def test_included_consumption_tax_is_rounded_down(total, tax):
    assert included_consumption_tax(D(total)) == D(tax)


def test_two_decimals_rounds_half_up():
    shown = [str(two_decimals(D(v))) for v in ("1.005", "1.004", "2", "-0.001")]
    assert shown == ["1.01", "1.00", "2.00", "0.00"]


kwh_values = st.decimals(min_value=0, max_value=60, places=3, allow_nan=False, allow_infinity=False)
prices = st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False)
days = st.dates(min_value=date(2024, 1, 1), max_value=date(2024, 3, 1))


@st.composite
def invoices(draw):
    dates = draw(st.sets(st.dates(min_value=JAN.start, max_value=JAN.end), max_size=31))
    rows = [DailyUsage(day, g + s, s, g) for day in sorted(dates)
            for g, s in [(draw(kwh_values), draw(kwh_values))]]
    start, end = draw(st.none() | days), draw(st.none() | days)
    if start is not None and end is not None and end < start:
        start, end = end, start
    return dict(base_fee=draw(prices), sell_unit_price=draw(prices), usage_unit_price=draw(prices),
                period=JAN, rows=rows, contract_start=start, contract_end=end,
                rounding=draw(st.sampled_from(list(RoundingMode))))


@given(invoices())
def test_total_is_base_plus_usage_fee_and_every_yen_is_whole(kwargs):
    amounts = compute_invoice(**kwargs)
    assert amounts.total == amounts.base_fee + amounts.usage_fee
    for value in (amounts.base_fee, amounts.sell_fee, amounts.usage_fee, amounts.total):
        assert value == value.to_integral_value() and value >= 0
    assert abs(amounts.usage_fee - amounts.billable_usage_kwh * kwargs["usage_unit_price"]) <= 1


@given(invoices(), st.data())
def test_rows_outside_the_contract_never_change_the_usage_fee(kwargs, data):
    before = compute_invoice(**kwargs)
    start, end = kwargs["contract_start"], kwargs["contract_end"]
    changed = [row if (start or end) and (start or date.min) <= row.date <= (end or date.max)
               else DailyUsage(row.date, row.generation_kwh, row.sold_kwh, data.draw(kwh_values))
               for row in kwargs["rows"]]
    after = compute_invoice(**{**kwargs, "rows": changed})
    assert (after.usage_fee, after.total) == (before.usage_fee, before.total)


@given(invoices())
def test_no_contract_period_means_no_usage_fee(kwargs):
    amounts = compute_invoice(**{**kwargs, "contract_start": None, "contract_end": None})
    assert amounts.usage_fee == 0 and amounts.total == amounts.base_fee


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_rounding_modes_stay_within_one_yen_and_in_order(amount):
    up, down, even = (round_yen(amount, mode) for mode in RoundingMode)
    assert down <= amount < down + 1 and down <= even <= up <= down + 1
    assert abs(up - amount) <= D("0.5") and abs(even - amount) <= D("0.5")


@given(st.integers(min_value=0, max_value=10**9))
def test_included_tax_is_the_floor_of_ten_elevenths(total):
    tax = included_consumption_tax(D(total))
    assert tax * 110 <= total * 10 < (tax + 1) * 110


@st.composite
def days_as_text(draw):
    """Days as the month list keeps them (ISO date → kWh as text), some outside the period, and a contract."""
    dates = draw(st.sets(days, max_size=40))
    kept = {day.isoformat(): [str(draw(kwh_values)), str(draw(kwh_values)), str(draw(kwh_values)), 1]
            for day in sorted(dates)}
    bounds = st.none() | days | (st.sampled_from(sorted(dates)) if dates else st.none())  # often a kept day
    start, end = draw(bounds), draw(bounds)
    if start is not None and end is not None and end < start:
        start, end = end, start
    return kept, dict(base_fee=draw(prices), sell_unit_price=draw(prices), usage_unit_price=draw(prices),
                      period=JAN, contract_start=start, contract_end=end,
                      rounding=draw(st.sampled_from(list(RoundingMode))))


@given(days_as_text())
def test_totals_from_days_kept_as_text_are_the_invoice_without_its_daily_table(case):
    kept, kwargs = case
    rows = [DailyUsage(date.fromisoformat(day), D(v[0]), D(v[1]), D(v[2])) for day, v in kept.items()]
    assert compute_totals(days=kept, **kwargs) == compute_invoice(rows=rows, with_daily=False, **kwargs)


def test_totals_from_text_refuse_numbers_and_non_finite_kwh():
    with pytest.raises(TypeError):
        compute_totals(base_fee=D(0), period=JAN, days={"2024-01-16": [1.1, "1", "0.1"]}, **SEED_PRICES)
    with pytest.raises(ValueError):
        compute_totals(base_fee=D(0), period=JAN, days={"2024-01-16": ["1", "NaN", "1"]}, **SEED_PRICES)
    outside = compute_totals(base_fee=D(0), period=JAN, days={"2024-01-15": [1.1, "x", None]}, **SEED_PRICES)
    assert outside.generation_kwh == 0  # a day outside the period is not read at all
