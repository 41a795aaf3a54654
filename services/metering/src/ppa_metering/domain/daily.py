"""Daily energy per JST day from all cumulative readings of one device. Pure, no I/O.

Depends on the set of readings only (not their order, not repeats): a replay rebuilds the same
totals. Per channel, sorted by instant: a (channel, instant) sent with several values keeps the
greatest (kwh, register_max); an interval's energy is the difference of its registers; one crossing
JST midnight is split pro rata by time and marks its days `estimated`; a register that goes down
wraps if `register_max` is declared (by the reading, else the one before): (register_max - previous)
+ current; otherwise it is a reset or a new meter: the interval counts 0, the new value is the
baseline and the new reading's day is flagged `reset`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from decimal import (ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow,
                     localcontext)
from functools import lru_cache
from itertools import islice
from operator import attrgetter, eq, itemgetter
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from .readings import CHANNELS, Reading

TOKYO = ZoneInfo("Asia/Tokyo")
KWH = Decimal("0.001")  # stored precision of a day's totals
CENTI = Decimal("0.01")  # presented precision (invoices, API, pages)
ZERO = Decimal("0.000")
_NO_MAX, UTC = Decimal(0), timezone.utc
_DAWN = datetime.min.replace(tzinfo=UTC)
_US = timedelta(microseconds=1)
_ONE_DAY = timedelta(days=1)
_INSTANT = itemgetter(0)
_AT = attrgetter("at")
T = TypeVar("T")
# A fixed context: the caller's thread-local decimal settings must never change a total.
_CONTEXT = Context(prec=40, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow])
_ESTIMATED, _RESET = len(CHANNELS), len(CHANNELS) + 1  # flag slots after the per-channel sums
_EMPTY_ROW = (ZERO,) * len(CHANNELS) + (False, False)
_ENERGY_FIELDS = ("generation_kwh", "sold_kwh", "import_kwh", "battery_charge_kwh", "battery_discharge_kwh")


@dataclass(frozen=True, slots=True)
class DailyUsage:
    """One JST day of a device: kWh per channel (3 decimals) and how much to trust them."""

    date: date
    generation_kwh: Decimal
    sold_kwh: Decimal
    usage_kwh: Decimal
    import_kwh: Decimal
    battery_charge_kwh: Decimal
    battery_discharge_kwh: Decimal
    estimated: bool = False
    reset: bool = False
    usage_clamped: bool = False

    def presented(self) -> DailyUsage:
        """Return the day with 2 decimals, usage re-derived so a printed row adds up."""
        kwh = {name: present_kwh(getattr(self, name)) for name in _ENERGY_FIELDS}
        usage = max(kwh["generation_kwh"] - kwh["sold_kwh"], Decimal("0.00"))
        return replace(self, **kwh, usage_kwh=usage)


@dataclass(frozen=True, slots=True)
class DayChange:
    """A day whose totals differ between two derivations; `None` where the day is absent."""

    date: date
    old: DailyUsage | None
    new: DailyUsage | None


def present_kwh(value: Decimal) -> Decimal:
    """Round kWh to the 2 decimals shown to people, half up."""
    return value.quantize(CENTI, rounding=ROUND_HALF_UP)


def compute_daily(readings: Iterable[Reading],
                  only: Collection[date] | None = None) -> dict[date, DailyUsage]:
    """Derive every JST day's totals (in date order, or only the `only` days) for one device."""
    days: dict[date, list] = {}
    with localcontext(_CONTEXT):
        for column, points in enumerate(_sorted_points(readings)):
            _walk(points, column, days)
        return {day: _finish(day, days[day]) for day in sorted(days) if only is None or day in only}


def affected_days(existing_times: Mapping[str, Sequence[datetime]],
                  new_readings: Iterable[Reading]) -> set[date]:
    """Days whose totals new readings can change, given each channel's stored instants (sorted)."""
    new: dict[str, list[datetime]] = {}
    for reading in new_readings:
        new.setdefault(reading.channel, []).append(reading.at)
    return affected_days_of(existing_times, new, jst_date)


def affected_days_of(existing: Mapping[str, Sequence[T]], new: Mapping[str, Iterable[T]],
                     day_of: Callable[[T], date]) -> set[date]:
    """`affected_days` for instants of any ordered kind, `day_of` giving an instant's JST day.

    A new instant splits the interval between its neighbours (new ones included), and only that one:
    the days from its predecessor's to its successor's. For a run of new instants with no stored one
    between them those ranges chain, so the run's days are its outer neighbours' days and all between.
    """
    days: set[date] = set()
    for channel, instants in new.items():
        fresh = sorted(set(instants))
        if not fresh:
            continue
        known = existing.get(channel, ())
        run_start = None
        for index, at in enumerate(fresh):
            before = bisect_left(known, at)
            if run_start is None:
                run_start = known[before - 1] if before > 0 else at
            follows = index + 1 < len(fresh)
            after = bisect_right(known, at)
            # The run goes on while no stored instant lies between this new instant and the next one.
            if follows and (after == len(known) or known[after] > fresh[index + 1]):
                continue
            run_end = known[after] if after < len(known) else at
            day, end = day_of(run_start), day_of(run_end)
            while day <= end:
                days.add(day)
                day += _ONE_DAY
            run_start = None
    return days


def window(readings: Iterable[Reading], days: Collection[date]) -> list[Reading]:
    """The readings `compute_daily(..., only=days)` needs: those inside each run of consecutive days, and
    per channel the ones at the last instant before a run and at the first instant after it."""
    runs: list[tuple[datetime, datetime]] = []
    for day in sorted(days):
        if runs and runs[-1][1] == day_start(day):
            runs[-1] = (runs[-1][0], day_start(day + _ONE_DAY))
        else:
            runs.append((day_start(day), day_start(day + _ONE_DAY)))
    by_channel: dict[str, list[Reading]] = {}
    for reading in readings:
        by_channel.setdefault(reading.channel, []).append(reading)
    out: list[Reading] = []
    for own in by_channel.values():
        own.sort(key=_AT)
        instants = [x.at for x in own]
        for start, end in runs:
            lo, hi = bisect_left(instants, start), bisect_left(instants, end)
            out += own[lo:hi]
            if lo > 0:  # every value of the last instant before the run (the tie-break picks one)
                out += own[bisect_left(instants, instants[lo - 1]):lo]
            if hi < len(own):
                out += own[hi:bisect_right(instants, instants[hi])]
    return out


def day_start(day: date) -> datetime:
    """The first instant (UTC) of a JST day."""
    return _midnight(day)


def diff_days(old: Mapping[date, DailyUsage], new: Mapping[date, DailyUsage]) -> list[DayChange]:
    """The days (in date order) whose totals or flags differ, with the old and new values."""
    return [DayChange(day, old.get(day), new.get(day))
            for day in sorted(old.keys() | new.keys()) if old.get(day) != new.get(day)]


def jst_date(at: datetime) -> date:
    """The Japanese calendar day of an aware instant."""
    return at.astimezone(TOKYO).date()


def _day_end(day: date) -> datetime:
    return _midnight(day + _ONE_DAY)


def _next_day(day: date) -> date:
    return day + _ONE_DAY


def _sorted_points(readings: Iterable[Reading]) -> list[list[tuple[datetime, Decimal, Decimal]]]:
    """Per channel (in `CHANNELS` order): (UTC instant, kwh, register_max) sorted."""
    column = {channel: index for index, channel in enumerate(CHANNELS)}
    groups: list[list[tuple[datetime, Decimal, Decimal]]] = [[] for _ in CHANNELS]
    appenders = [group.append for group in groups]
    for reading in readings:
        at = reading.at
        if at.tzinfo is not UTC:  # one shared tzinfo makes every later comparison a fast one
            at = at.astimezone(UTC)
        appenders[column[reading.channel]]((at, reading.kwh, reading.register_max or _NO_MAX))
    for group in groups:
        group.sort(key=_INSTANT)  # comparing instants alone is several times faster than tuples
        if any(map(eq, map(_INSTANT, group), map(_INSTANT, islice(group, 1, None)))):
            group.sort()  # repeated instants: order them by (kwh, register_max), the winner last
    return groups


def _walk(points: list[tuple[datetime, Decimal, Decimal]], column: int, days: dict,
          bucket: Callable[[datetime], Any] = jst_date, end_of: Callable[[Any], datetime] = _day_end,
          after: Callable[[Any], Any] = _next_day) -> None:
    """Add one channel's energy to the per-bucket rows (JST days unless `bucket` / `end_of` / `after` say
    otherwise: a bucket of an instant, the first instant after a bucket, the bucket that follows one).

    A reading exactly at 00:00 JST ends the interval of the day before: it opens no row of its own (day, or
    half-hour 00:00–00:30). Its bucket gets a row once a later reading falls inside it or an interval from it
    reaches into it, so a lone 00:00 reading never makes a day of 0 kWh."""
    end = _DAWN  # the end of the previous reading's day; the first reading takes the slow path
    row: list | None = []
    day: Any = None
    last_at, last_kwh, base, last_max = None, ZERO, ZERO, ZERO
    for index, (at, kwh, register_max) in enumerate(points):
        if at < end and kwh >= last_kwh:
            # Same day, register up: a run whose energy is its last value minus its base. Repeats
            # of one instant sort by value, so the run ends on the winner whatever came between.
            if row is None:  # a reading inside the day its 00:00 reading left without a row
                row = days.setdefault(day, [*_EMPTY_ROW])
            last_at, last_kwh, last_max = at, kwh, register_max
            continue
        if index + 1 < len(points) and points[index + 1][0] == at:
            continue  # a losing value of a repeated instant
        if row is None and at <= end:  # inside the day after its 00:00 reading, or ending it at the next
            row = days.setdefault(day, [*_EMPTY_ROW])
        energy: Decimal | None = None
        if last_at is not None:
            if row is not None:
                row[column] += last_kwh - base
            if kwh >= last_kwh:
                energy = kwh - last_kwh
            elif (wrap := register_max or last_max) and last_kwh <= wrap:
                energy = wrap - last_kwh + kwh  # the register rolled over at its declared size
            if energy is not None and at <= end:
                row[column] += energy  # one ending exactly at midnight is all the earlier day's
            elif energy is not None:
                _split(days, column, last_at, at, energy, bucket, end_of, after)
        if at >= end:
            day = bucket(at)
            end = end_of(day)
            # a reading at 00:00 JST closes the day before: no row for its own bucket yet
            row = None if _at_midnight(at) else days.setdefault(day, [*_EMPTY_ROW])
        if energy is None and last_at is not None:
            # a reset: flagged on the reading's day (at 00:00: on the day whose interval it ends)
            flagged = row if row is not None else days.setdefault(bucket(at - _US), [*_EMPTY_ROW])
            flagged[_RESET] = True
        base = last_kwh = kwh
        last_at, last_max = at, register_max
    if last_at is not None and row is not None:
        row[column] += last_kwh - base


def _at_midnight(at: datetime) -> bool:
    """Whether a UTC instant is 00:00 JST (15:00 UTC; Japan has no daylight saving)."""
    return at.hour == 15 and not (at.minute or at.second or at.microsecond)


def _split(days: dict, column: int, start: datetime, stop: datetime, energy: Decimal,
           bucket: Callable[[datetime], Any], end_of: Callable[[Any], datetime], after: Callable[[Any], Any]) -> None:
    """Share an interval crossing a bucket's end (midnight for days) between its buckets, pro rata by time."""
    total = (stop - start) // _US
    day = bucket(start)
    allocated = ZERO
    while True:
        row = days.setdefault(day, [*_EMPTY_ROW])
        row[_ESTIMATED] = True
        end = end_of(day)
        if stop <= end:
            row[column] += energy - allocated  # the remainder: the shares add up to the interval
            return
        # Rounding the running total (not each share) keeps every share >= 0 and the sum exact.
        share = (energy * ((end - start) // _US) / total).quantize(KWH)
        row[column] += share - allocated
        allocated = share
        day = after(day)


def _finish(day: date, row: list) -> DailyUsage:
    generation, sold, bought, charge, discharge = (value.quantize(KWH) for value in row[:_ESTIMATED])
    usage = generation - sold
    clamped = usage < 0  # more sold than generated is impossible physically: a meter error
    return DailyUsage(day, generation, sold, ZERO if clamped else usage, bought, charge, discharge,
                      estimated=row[_ESTIMATED], reset=row[_RESET], usage_clamped=clamped)


@lru_cache(maxsize=8192)
def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TOKYO).astimezone(UTC)
