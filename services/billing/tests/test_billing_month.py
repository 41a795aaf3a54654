"""Billing months: periods under each closing-day setting, short months, leap day, invoice numbers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppa_billing.domain.billing_month import (END_OF_MONTH, BillingMonth, InvalidBillingMonth,
                                              format_date, invoice_number, month_of,
                                              parse_closing_day, parse_invoice_number, period_of)


@pytest.mark.parametrize("month,closing_day,start,end", [
    ((2024, 1), 15, date(2024, 1, 16), date(2024, 2, 15)),  # the seed: 2024/01 = 01/16 .. 02/15
    ((2023, 12), 15, date(2023, 12, 16), date(2024, 1, 15)),  # across the year end
    ((2024, 2), 15, date(2024, 2, 16), date(2024, 3, 15)),  # holds the leap day
    ((2024, 1), END_OF_MONTH, date(2024, 1, 1), date(2024, 1, 31)),
    ((2024, 2), END_OF_MONTH, date(2024, 2, 1), date(2024, 2, 29)),
    ((2023, 2), END_OF_MONTH, date(2023, 2, 1), date(2023, 2, 28)),
    ((2024, 1), 30, date(2024, 1, 31), date(2024, 2, 29)),  # 30 in February is its last day
    ((2024, 2), 30, date(2024, 3, 1), date(2024, 3, 30)),
    ((2023, 1), 30, date(2023, 1, 31), date(2023, 2, 28)),
    ((2023, 1), 29, date(2023, 1, 30), date(2023, 2, 28)),
    ((2023, 2), 29, date(2023, 3, 1), date(2023, 3, 29)),
    ((2024, 1), 28, date(2024, 1, 29), date(2024, 2, 28)),
    ((2024, 2), 28, date(2024, 2, 29), date(2024, 3, 28)),  # leap day opens 2024/02 with closing 28
    ((2024, 4), 30, date(2024, 5, 1), date(2024, 5, 30)),  # April has 30 days: closes on the 30th
    ((2024, 1), 1, date(2024, 1, 2), date(2024, 2, 1)),
])
def test_period_of_a_billing_month(month, closing_day, start, end):
    period = period_of(BillingMonth(*month), closing_day)
    assert (period.start, period.end) == (start, end)
    assert len(period) == (end - start).days + 1 == len(list(period.days()))


def test_default_closing_day_is_fifteen():
    assert period_of(BillingMonth(2024, 1)) == period_of(BillingMonth(2024, 1), 15)


@pytest.mark.parametrize("day,closing_day,month", [
    (date(2024, 1, 16), 15, "2024/01"), (date(2024, 2, 15), 15, "2024/01"),
    (date(2024, 1, 15), 15, "2023/12"), (date(2024, 2, 29), 15, "2024/02"),
    (date(2024, 2, 29), END_OF_MONTH, "2024/02"), (date(2024, 2, 29), 30, "2024/01"),
    (date(2024, 2, 29), 28, "2024/02"), (date(2024, 3, 1), 30, "2024/02"),
    (date(2024, 1, 31), 30, "2024/01"), (date(2023, 12, 31), END_OF_MONTH, "2023/12"),
])
def test_month_of_a_date(day, closing_day, month):
    assert str(month_of(day, closing_day)) == month
    assert day in period_of(month_of(day, closing_day), closing_day)


closing_days = st.sampled_from([*range(1, 31), END_OF_MONTH])
months = st.builds(BillingMonth, st.integers(2000, 2098), st.integers(1, 12))


@given(months, closing_days)
def test_consecutive_periods_tile_the_calendar(month, closing_day):
    this, after = period_of(month, closing_day), period_of(month.next(), closing_day)
    assert after.start == this.end + timedelta(days=1) and 28 <= len(this) <= 31


@given(st.dates(min_value=date(2000, 2, 1), max_value=date(2099, 12, 31)), closing_days)
def test_every_date_lies_in_the_period_of_its_month(day, closing_day):
    assert day in period_of(month_of(day, closing_day), closing_day)


@pytest.mark.parametrize("value,expected", [
    (15, 15), ("15", 15), (1, 1), (30, 30), (END_OF_MONTH, END_OF_MONTH), ("月末", END_OF_MONTH),
])
def test_closing_day_setting_accepts(value, expected):
    assert parse_closing_day(value) == expected


@pytest.mark.parametrize("value", [0, 31, -1, "", "x", "１５", True, None, 15.0])
def test_closing_day_setting_refuses(value):
    with pytest.raises(InvalidBillingMonth):
        parse_closing_day(value)


@pytest.mark.parametrize("text,year,month", [("2024/01", 2024, 1), ("2024-12", 2024, 12),
                                              (" 2099/02 ", 2099, 2), ("2024/1", 2024, 1), ("２０２４/０１", 2024, 1),
                                              ("２０２４－０１", 2024, 1), ("2024 / 01", 2024, 1),
                                              ("2024年1月", 2024, 1), ("2024　-　3", 2024, 3), ("2024−03", 2024, 3)])
def test_billing_month_parses_screen_and_api_forms(text, year, month):
    parsed = BillingMonth.parse(text)
    assert (parsed.year, parsed.month) == (year, month)
    assert str(parsed) == f"{year}/{month:02d}" and parsed.iso() == f"{year}-{month:02d}"


@pytest.mark.parametrize("text", ["2024/13", "2024/00", "2024/001", "24/01", "1999/12", "2100/01",
                                  "2024.01", "2024/01/05", "202401", ""])
def test_billing_month_refuses_malformed_text(text):
    with pytest.raises(InvalidBillingMonth):
        BillingMonth.parse(text)


def test_billing_months_order_and_step_across_years():
    assert BillingMonth(2023, 12).next() == BillingMonth(2024, 1)
    assert BillingMonth(2024, 1).previous() == BillingMonth(2023, 12)
    assert BillingMonth(2024, 1).shift(-13) == BillingMonth(2022, 12)
    assert sorted([BillingMonth(2024, 1), BillingMonth(2023, 12)])[0] == BillingMonth(2023, 12)


@pytest.mark.parametrize("month,customer,number", [
    ((2024, 1), "1120220110", "24011120220110"),  # the seed's 請求管理 詳細
    ((2023, 12), "1120230057", "23121120230057"),  # the seed's 顧客管理 請求一覧
    ((2000, 1), "1100000000", "00011100000000"),
])
def test_invoice_number_is_yymm_and_customer_number(month, customer, number):
    assert invoice_number(BillingMonth(*month), customer) == number
    assert parse_invoice_number(number) == (BillingMonth(*month), customer)


@pytest.mark.parametrize("text", ["2401112022011", "24131120220110", "24011220220110", "x"])
def test_malformed_invoice_numbers_are_refused(text):
    with pytest.raises(InvalidBillingMonth):
        parse_invoice_number(text)


def test_invoice_number_refuses_a_bad_customer_number():
    with pytest.raises(InvalidBillingMonth):
        invoice_number(BillingMonth(2024, 1), "2120220110")


@given(months, st.integers(0, 10**8 - 1))
def test_invoice_numbers_round_trip(month, sequence):
    customer = f"11{sequence:08d}"
    assert parse_invoice_number(invoice_number(month, customer)) == (month, customer)


def test_dates_are_formatted_as_on_the_screens():
    assert format_date(date(2024, 1, 27)) == "2024/01/27"
