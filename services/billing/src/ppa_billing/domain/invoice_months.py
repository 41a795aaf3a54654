"""Which billing months a customer has an invoice for. Pure, no I/O.

Every customer has an invoice for each billing month from its contract start or its first metered day,
whichever is earlier, through the current month, while it exists. A customer with neither (no contract
start, nothing metered yet) starts with the month it was registered in. A month without readings is still an
invoice: the base fee, and 「計測データなし」 on the screens. Months before 2000/01 have no invoice number
(`YYMM`): a contract starting earlier starts at 2000/01.
"""

from __future__ import annotations

from datetime import date

from .billing_month import BillingMonth, ClosingDay, InvalidBillingMonth, month_of

FIRST = BillingMonth(2000, 1)
NO_DATA = "計測データなし"  # what a month without a metered day says in place of its kWh


def first_month(contract_start: date | None, first_metered: BillingMonth | None, registered: date | None,
                closing_day: ClosingDay) -> BillingMonth | None:
    """The first billing month a customer has an invoice for (None: only after 2099)."""
    starts = [m for m in (_month(contract_start, closing_day), first_metered) if m is not None]
    if not starts and registered is not None:
        starts.append(_month(registered, closing_day) or FIRST)
    return min(starts) if starts else None


def invoice_months(contract_start: date | None, first_metered: BillingMonth | None, registered: date | None,
                   today: date, closing_day: ClosingDay) -> list[BillingMonth]:
    """The billing months a customer has an invoice for on `today` (JST), in order."""
    current = month_of(today, closing_day)
    first = first_month(contract_start, first_metered, registered, closing_day) or current
    months = []
    while first <= current:
        months.append(first)
        first = first.next()
    return months


def _month(day: date | None, closing_day: ClosingDay) -> BillingMonth | None:
    if day is None:
        return None
    try:
        return month_of(day, closing_day)
    except InvalidBillingMonth:  # outside 2000–2099: before, the first month; after, none yet
        return FIRST if day.year <= 2000 else None
