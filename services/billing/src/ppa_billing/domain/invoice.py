"""Invoice arithmetic: Decimal only, each yen amount rounded once per invoice. Pure, no I/O.

The basis of each fee is the kWh the invoice shows (2 decimals, half up), so anyone can recompute
the printed yen from the printed kWh and unit price; the yen are then rounded once, per the mode.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import (ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, DivisionByZero,
                     InvalidOperation, Overflow, localcontext)
from enum import Enum
from operator import attrgetter
from typing import NamedTuple

from .billing_month import BillingPeriod

YEN = Decimal(1)
CENTI = Decimal("0.01")
ZERO = Decimal("0.00")
_GENERATION, _SOLD, _USAGE = attrgetter("generation_kwh"), attrgetter("sold_kwh"), attrgetter("usage_kwh")
_TRAPS = [InvalidOperation, DivisionByZero, Overflow]
# A fixed context: the caller's thread-local decimal settings must never change an invoice.
_CONTEXT = Context(prec=40, rounding=ROUND_HALF_UP, traps=_TRAPS)


class RoundingMode(str, Enum):
    """The operator's yen rounding setting."""

    HALF_UP = "half_up"  # 四捨五入, the default
    DOWN = "down"  # 切り捨て
    HALF_EVEN = "half_even"  # 銀行丸め

    @property
    def decimal_rounding(self) -> str:
        """Return the matching `decimal` rounding constant."""
        return _DECIMAL_ROUNDING[self.value]


_DECIMAL_ROUNDING = {"half_up": ROUND_HALF_UP, "down": ROUND_DOWN, "half_even": ROUND_HALF_EVEN}
_YEN_CONTEXTS = {mode: Context(prec=40, rounding=_DECIMAL_ROUNDING[mode.value], traps=_TRAPS)
                 for mode in RoundingMode}


class DailyUsage(NamedTuple):
    """One day of metered energy for a customer (kWh, Decimal)."""

    date: dt.date
    generation_kwh: Decimal
    sold_kwh: Decimal
    usage_kwh: Decimal


class DailyAmounts(NamedTuple):
    """One row of the invoice's daily table; every value has 2 decimals, for display only."""

    date: dt.date
    generation_kwh: Decimal
    sold_kwh: Decimal
    usage_kwh: Decimal
    sell_fee: Decimal
    usage_fee: Decimal
    in_contract: bool


@dataclass(frozen=True)
class InvoiceAmounts:
    """The amounts of one invoice: kWh with 2 decimals, yen whole, `daily` in date order."""

    base_fee: Decimal
    generation_kwh: Decimal
    sold_kwh: Decimal
    usage_kwh: Decimal
    billable_usage_kwh: Decimal  # usage on contract days only: the basis of usage_fee
    sell_unit_price: Decimal
    usage_unit_price: Decimal
    sell_fee: Decimal
    usage_fee: Decimal
    total: Decimal
    rounding: RoundingMode
    daily: tuple[DailyAmounts, ...]


def in_contract(day: dt.date, contract_start: dt.date | None, contract_end: dt.date | None) -> bool:
    """Whether a day is inside the contract period; no period at all means no contract day."""
    if contract_start is None and contract_end is None:
        return False
    return (contract_start is None or contract_start <= day) and (contract_end is None or day <= contract_end)


def round_yen(amount: Decimal, mode: RoundingMode | str = RoundingMode.HALF_UP) -> Decimal:
    """Round a yen amount to whole yen with the operator's rounding mode."""
    with localcontext(_CONTEXT):
        return _yen(amount, RoundingMode(mode))


def two_decimals(amount: Decimal) -> Decimal:
    """Return an amount as shown with 2 decimals, half up (kWh, daily fees; not the yen setting)."""
    with localcontext(_CONTEXT):
        return amount.quantize(CENTI) + 0


def compute_invoice(*, base_fee: Decimal, sell_unit_price: Decimal, usage_unit_price: Decimal,
                    period: BillingPeriod, rows: Iterable[DailyUsage],
                    contract_start: dt.date | None = None, contract_end: dt.date | None = None,
                    rounding: RoundingMode | str = RoundingMode.HALF_UP,
                    with_daily: bool = True) -> InvoiceAmounts:
    """Compute an invoice; rows outside `period` are ignored, `with_daily=False` skips the daily table."""
    mode = RoundingMode(rounding)
    _check_prices(base_fee, sell_unit_price, usage_unit_price)
    start, end = period.start, period.end
    by_day: dict[dt.date, DailyUsage] = {}
    for row in rows:
        if start <= row.date <= end:
            if row.date in by_day:
                raise ValueError(f"two daily rows for {row.date.isoformat()}")
            by_day[row.date] = row
    days = [by_day[day] for day in sorted(by_day)]
    flags = [in_contract(row.date, contract_start, contract_end) for row in days]
    billable_days = [row for row, flag in zip(days, flags) if flag]
    # One context per invoice (not per value): it is exact here and cheap enough for bulk drafts.
    with localcontext(_CONTEXT):
        # Summing Decimal with float raises TypeError, so a float kWh cannot slip into an invoice.
        sums = (sum(map(_GENERATION, days), ZERO), sum(map(_SOLD, days), ZERO),
                sum(map(_USAGE, days), ZERO), sum(map(_USAGE, billable_days), ZERO))
        _check_finite(sums)
        daily = tuple(_daily(row, sell_unit_price, usage_unit_price, flag)
                      for row, flag in zip(days, flags)) if with_daily else ()
        return _amounts(base_fee, sell_unit_price, usage_unit_price, sums, mode, daily)


def compute_totals(*, base_fee: Decimal, sell_unit_price: Decimal, usage_unit_price: Decimal,
                   period: BillingPeriod, days: Mapping[str, Sequence[str]],
                   contract_start: dt.date | None = None, contract_end: dt.date | None = None,
                   rounding: RoundingMode | str = RoundingMode.HALF_UP) -> InvoiceAmounts:
    """`compute_invoice` without the daily table, for days kept as text (ISO date → generation, sold and usage
    kWh, more items ignored): the same sums and rounding, without a row object per day (the month list
    recomputes thousands of drafts a batch). ISO dates compare as text, so the period and contract need no
    parsing."""
    mode = RoundingMode(rounding)
    _check_prices(base_fee, sell_unit_price, usage_unit_price)
    first, last = period.start.isoformat(), period.end.isoformat()
    contract = contract_start is not None or contract_end is not None
    since = contract_start.isoformat() if contract_start else ""
    until = contract_end.isoformat() if contract_end else "9999-12-31"
    with localcontext(_CONTEXT):
        generation = sold = usage = billable = ZERO
        for day, values in days.items():
            if first <= day <= last:
                if not type(values[0]) is type(values[1]) is type(values[2]) is str:
                    raise TypeError(f"the kWh of {day} must be text, got {values[:3]!r}")
                used = Decimal(values[2])
                generation += Decimal(values[0])
                sold += Decimal(values[1])
                usage += used
                if contract and since <= day <= until:
                    billable += used
        sums = (generation, sold, usage, billable)
        _check_finite(sums)
        return _amounts(base_fee, sell_unit_price, usage_unit_price, sums, mode, ())


def _check_prices(base_fee: Decimal, sell_unit_price: Decimal, usage_unit_price: Decimal) -> None:
    for name, price in (("base_fee", base_fee), ("sell_unit_price", sell_unit_price),
                        ("usage_unit_price", usage_unit_price)):
        if not isinstance(price, Decimal) or not price.is_finite():
            raise TypeError(f"{name} must be a finite Decimal, got {price!r}")


def _check_finite(sums: tuple[Decimal, ...]) -> None:
    if not all(value.is_finite() for value in sums):
        raise ValueError("daily kWh must be finite")


def _amounts(base_fee: Decimal, sell_unit_price: Decimal, usage_unit_price: Decimal,
             sums: tuple[Decimal, Decimal, Decimal, Decimal], mode: RoundingMode,
             daily: tuple[DailyAmounts, ...]) -> InvoiceAmounts:
    """The invoice from the period's kWh sums (generation, sold, usage, usage on contract days); call it inside
    the invoice context, the sums checked."""
    generation, sold, usage, billable = [value.quantize(CENTI) + 0 for value in sums]
    base = _yen(base_fee, mode)
    usage_fee = _yen(billable * usage_unit_price, mode)
    return InvoiceAmounts(
        base_fee=base, generation_kwh=generation, sold_kwh=sold, usage_kwh=usage,
        billable_usage_kwh=billable, sell_unit_price=sell_unit_price,
        usage_unit_price=usage_unit_price, sell_fee=_yen(sold * sell_unit_price, mode),
        usage_fee=usage_fee, total=base + usage_fee, rounding=mode, daily=daily)


def _daily(row: DailyUsage, sell_unit_price: Decimal, usage_unit_price: Decimal,
           billable: bool) -> DailyAmounts:
    # Called inside the half-up context, so a bare quantize rounds half up (keyword args cost ~2x).
    sold, usage = row.sold_kwh.quantize(CENTI), row.usage_kwh.quantize(CENTI)
    return DailyAmounts(row.date, row.generation_kwh.quantize(CENTI), sold, usage,
                        (sold * sell_unit_price).quantize(CENTI),
                        (usage * usage_unit_price).quantize(CENTI) if billable else ZERO, billable)


def _yen(amount: Decimal, mode: RoundingMode) -> Decimal:
    # "+ 0" turns a negative zero into 0 so "-0" never reaches a screen.
    return _YEN_CONTEXTS[mode].quantize(amount, YEN) + 0


def included_consumption_tax(total: Decimal, rate_percent: int = 10) -> Decimal:
    """Return the 内消費税 in a tax-inclusive yen total: total × rate/(100+rate), rounded down."""
    # Rounded down (切り捨て): the usual Japanese practice for the tax shown inside a 税込 amount.
    with localcontext(_CONTEXT):
        return (total * rate_percent / (100 + rate_percent)).quantize(YEN, rounding=ROUND_DOWN) + 0
