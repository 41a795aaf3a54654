"""売電料金・買電料金 from the owner's 電力料金情報 and half-hour energy. Pure, no I/O.

売電料金 = grid export × 売電単価. 買電料金 = for each half hour, its grid import × the 買電単価 of the segment
covering that half hour on that day's type: 土日祝 for Saturdays, Sundays and Japanese national holidays (the
`holidays` package), 平日 otherwise, 全日 for both. A half hour takes the segment covering its first minute (the
form offers times on the half hour, so a segment never splits one). A half hour no segment covers is 未設定:
its kWh is shown as such and never priced 0. The kWh priced are the exact half-hour values (3 decimals); each
yen total shown (a segment's subtotal, the 買電料金, the 売電料金) is rounded once, down to the yen (円未満
切り捨て), from its exact amount, so the subtotals may differ from the total by a yen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow, localcontext
from functools import lru_cache

import holidays

from ppa_contracts.owner import DAY_TYPE_LABELS, BuyPriceSegment, DayType, ElectricityPrices
from ppa_identity.domain.prices import minutes

SLOTS = 48
WEEKDAY, HOLIDAY = "weekday", "holiday"
YEN = Decimal(1)
ZERO = Decimal("0.000")
_CONTEXT = Context(prec=40, rounding=ROUND_DOWN, traps=[InvalidOperation, DivisionByZero, Overflow])
_APPLIES = {DayType.ALL: (WEEKDAY, HOLIDAY), DayType.WEEKDAY: (WEEKDAY,), DayType.HOLIDAY: (HOLIDAY,)}


@lru_cache(maxsize=256)
def _national(year: int) -> holidays.HolidayBase:
    return holidays.JP(years=year)


def day_class(day: date) -> str:
    """HOLIDAY (土日祝) for a Saturday, Sunday or national holiday, else WEEKDAY (平日)."""
    return HOLIDAY if day.weekday() >= 5 or day in _national(day.year) else WEEKDAY


def holiday_name(day: date) -> str | None:
    """The national holiday's name (English, as the package gives it), else None."""
    return _national(day.year).get(day)


@dataclass(frozen=True)
class SegmentFee:
    """One buy-price segment's share: its label, unit price, the import it priced and the yen (rounded once)."""

    label: str
    price: Decimal
    kwh: Decimal
    yen: Decimal


@dataclass(frozen=True)
class Fees:
    """The fees of a shown period. `None` yen where the price is not set."""

    sell_kwh: Decimal
    sell_price: Decimal | None
    sell_yen: Decimal | None
    segments: tuple[SegmentFee, ...]
    buy_yen: Decimal | None
    uncovered_kwh: Decimal  # import in half hours no segment covers: 未設定, not priced
    uncovered_slots: int  # how many (class, half hour) slots with import had no segment


def segment_label(segment: BuyPriceSegment) -> str:
    return f"{DAY_TYPE_LABELS[segment.day_type]} {segment.start}〜{'24:00' if segment.end == '00:00' else segment.end}"


def covering(segments: Sequence[BuyPriceSegment]) -> dict[str, list[int | None]]:
    """Per day class, the index of the segment covering each half hour (its first minute), or None."""
    out: dict[str, list[int | None]] = {WEEKDAY: [None] * SLOTS, HOLIDAY: [None] * SLOTS}
    for index, segment in enumerate(segments):
        start, end = minutes(segment.start), minutes(segment.end)
        length = (end - start) % 1440 or 1440
        for slot in range(SLOTS):
            if (slot * 30 - start) % 1440 < length:
                for kind in _APPLIES[segment.day_type]:
                    if out[kind][slot] is None:
                        out[kind][slot] = index
    return out


def fees(prices: ElectricityPrices, export_kwh: Decimal,
         import_by_class: Mapping[str, Sequence[Decimal]]) -> Fees:
    """The period's fees from its export and its import per half hour summed over 平日 and over 土日祝 days."""
    segments = prices.buy_segments
    cover = covering(segments)
    with localcontext(_CONTEXT):
        kwh = [ZERO] * len(segments)
        uncovered, uncovered_slots = ZERO, 0
        for kind, values in import_by_class.items():
            for slot, value in enumerate(values):
                index = cover[kind][slot]
                if index is None:
                    if value:
                        uncovered += value
                        uncovered_slots += 1
                else:
                    kwh[index] += value
        exact = [kwh[i] * s.price for i, s in enumerate(segments)]
        shares = tuple(SegmentFee(segment_label(s), s.price, kwh[i], exact[i].quantize(YEN))
                       for i, s in enumerate(segments))
        buy = sum(exact, Decimal(0)).quantize(YEN) if segments else None
        sell = (export_kwh * prices.sell_price).quantize(YEN) if prices.sell_price is not None else None
    return Fees(export_kwh, prices.sell_price, sell, shares, buy, uncovered, uncovered_slots)


def by_class(days: Mapping[date, Sequence[Decimal]]) -> dict[str, list[Decimal]]:
    """Half-hour import of several days summed per day class (the input `fees` takes)."""
    out = {WEEKDAY: [ZERO] * SLOTS, HOLIDAY: [ZERO] * SLOTS}
    for day, values in days.items():
        sums = out[day_class(day)]
        for i, v in enumerate(values):
            sums[i] += v
    return out
