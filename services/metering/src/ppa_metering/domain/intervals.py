"""Half-hour energy per channel from all cumulative readings of one device. Pure, no I/O.

The same walk as the daily totals (`daily.compute_daily`): repeated instants, register wraps, resets and new
meters, all order-independent, with half-hours for buckets instead of JST days. An interval between two
readings that crosses a half-hour's end is shared pro rata by time between the half-hours it covers (so a
device reading once a day spreads its energy evenly over the day's 48 half-hours, each marked estimated).
JST is UTC+9 with no daylight saving: every JST half-hour is a UTC half-hour, 48 in every JST day.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from functools import lru_cache

from .daily import _CONTEXT, _ESTIMATED, _RESET, KWH, ZERO, _sorted_points, _walk, day_start, jst_date
from .readings import CHANNELS, Reading

SLOTS = 48
HALF_HOUR = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class IntervalDay:
    """One JST day of a device: per channel 48 half-hour kWh (3 decimals), slot 0 = 00:00–00:30 JST."""

    date: date
    channels: dict[str, tuple[Decimal, ...]]
    estimated: bool = False
    reset: bool = False

    def total(self, channel: str) -> Decimal:
        return sum(self.channels[channel], ZERO)


@lru_cache(maxsize=65536)
def slot_of(at: datetime) -> datetime:
    """The start of the half-hour holding an aware instant (its own tzinfo kept). Cached: a fleet's readings
    share the half-hour grid, and a device's channels share their instants."""
    return at.replace(minute=at.minute - at.minute % 30, second=0, microsecond=0)


@lru_cache(maxsize=65536)
def _slot_end(slot: datetime) -> datetime:
    return slot + HALF_HOUR


def compute_intervals(readings: Iterable[Reading], only: Collection[date] | None = None) -> dict[date, IntervalDay]:
    """Every JST day's half-hours (in date order, or only the `only` days) for one device."""
    slots: dict[datetime, list] = {}
    with localcontext(_CONTEXT):
        for column, points in enumerate(_sorted_points(readings)):
            _walk(points, column, slots, slot_of, _slot_end, _slot_end)
    by_day: dict[date, list[tuple[datetime, list]]] = {}
    for slot, row in slots.items():
        day = jst_date(slot)
        if only is None or day in only:
            by_day.setdefault(day, []).append((slot, row))
    out: dict[date, IntervalDay] = {}
    columns = range(len(CHANNELS))
    for day in sorted(by_day):
        start = day_start(day)
        values = [[ZERO] * SLOTS for _ in CHANNELS]
        estimated = reset = False
        for slot, row in by_day[day]:
            index = (slot - start) // HALF_HOUR
            for column in columns:
                if row[column]:
                    values[column][index] = row[column].quantize(KWH)
            estimated |= row[_ESTIMATED]
            reset |= row[_RESET]
        out[day] = IntervalDay(day, {c: tuple(values[i]) for i, c in enumerate(CHANNELS)}, estimated, reset)
    return out
