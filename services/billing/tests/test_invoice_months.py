"""Which billing months a customer has an invoice for: the contract start or the first metered day, whichever is
earlier, to the current month."""

from __future__ import annotations

from datetime import date

from ppa_billing.domain.billing_month import END_OF_MONTH, BillingMonth
from ppa_billing.domain.invoice_months import invoice_months


def months(*args, closing=15) -> list[str]:
    return [str(m) for m in invoice_months(*args, closing_day=closing)]


TODAY = date(2024, 3, 20)  # 2024/03 with closing day 15


def test_a_contract_starting_mid_period_opens_its_billing_month():
    assert months(date(2024, 2, 10), None, None, TODAY) == ["2024/01", "2024/02", "2024/03"]
    assert months(date(2024, 2, 10), None, None, TODAY, closing=END_OF_MONTH) == ["2024/02", "2024/03"]


def test_readings_before_the_contract_open_the_months_from_the_first_metered_day():
    assert months(date(2024, 3, 1), BillingMonth(2023, 12), None, TODAY) == [
        "2023/12", "2024/01", "2024/02", "2024/03"]
    assert months(date(2023, 11, 1), BillingMonth(2024, 1), None, TODAY)[0] == "2023/10"


def test_a_contract_starting_later_opens_no_month_yet_and_without_any_start_the_registration_month():
    assert months(date(2024, 5, 1), None, None, TODAY) == []
    assert months(None, None, date(2024, 2, 20), TODAY) == ["2024/02", "2024/03"]
    assert months(None, None, None, TODAY) == ["2024/03"]


def test_a_contract_before_2000_starts_at_the_first_month_an_invoice_number_can_name():
    assert months(date(1999, 12, 1), None, None, date(2000, 2, 20))[0] == "2000/01"
