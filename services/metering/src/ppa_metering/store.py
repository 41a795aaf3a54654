"""Stored readings: insert-only chunks, each holding readings of one device and one JST day.

A chunk is `{_id: "<serial>|<YYYY-MM-DD>|<n>", c: [channel index], t: [µs since the epoch (UTC)], k: [kwh],
m: [register_max or null]}` (parallel arrays: FerretDB 1.x stores no nested arrays).
A day's chunks are numbered 0, 1, 2, … in the order they were stored, so reading a day is a few lookups
by `_id` (the only filter FerretDB 1.x answers from an index) whatever the device's history, and writing
never changes a document: two writers racing for a number collide on the `_id`, the loser takes the next
one. The device API stores each batch's new readings once; the daily projection reads the same chunks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from ppa_metering.domain.readings import CHANNEL_INDEX, CHANNELS, EPOCH, Reading, micros
from ppa_runtime.docstore import Collection

READINGS = "readings"
# Japan keeps UTC+9 all year (no daylight saving since 1951; readings start in 2000): day arithmetic on
# integers, equal to `jst_date` and `day_start` of the domain (a test holds them together).
_JST_US, _DAY_US, _EPOCH_DAY = 9 * 3600 * 10**6, 86_400 * 10**6, date(1970, 1, 1).toordinal()
_new = tuple.__new__  # _new(Reading, fields): a named tuple without its Python-level __new__
_FIRST_PROBE = 4  # chunk numbers asked for at once; doubled while every one exists

DayKey = tuple[str, date]  # (serial, JST day)
Entry = tuple  # (channel index, µs since the epoch, kwh text, register_max text or None)


def jst_day(us: int) -> date:
    """The JST day of an instant given in microseconds since the epoch."""
    return date.fromordinal(_EPOCH_DAY + (us + _JST_US) // _DAY_US)


def day_start_us(day: date) -> int:
    """The first instant of a JST day, in microseconds since the epoch."""
    return (day.toordinal() - _EPOCH_DAY) * _DAY_US - _JST_US


def entry(r: Reading) -> Entry:
    return CHANNEL_INDEX[r.channel], micros(r.at), str(r.kwh), None if r.register_max is None else str(r.register_max)


@lru_cache(maxsize=1 << 14)  # a fleet's readings share the instants of one half-hourly grid
def instant(us: int) -> datetime:
    """The aware UTC instant of µs since the epoch."""
    return EPOCH + timedelta(microseconds=us)


def reading(e: Entry) -> Reading:
    return _new(Reading, (CHANNELS[e[0]], instant(e[1]), Decimal(e[2]), None if e[3] is None else Decimal(e[3])))


def chunk_id(serial: str, day: date, number: int) -> str:
    return f"{serial}|{day.isoformat()}|{number}"


def by_day(readings: Iterable[Reading]) -> dict[date, list[Entry]]:
    """Entries grouped by the JST day of their instant."""
    out: dict[date, list[Entry]] = {}
    for r in readings:
        e = entry(r)
        out.setdefault(jst_day(e[1]), []).append(e)
    return out


class ReadingStore:
    """The chunks of every device, in one collection."""

    def __init__(self, coll: Collection) -> None:
        self.coll = coll

    async def days(self, wanted: Iterable[DayKey]) -> tuple[dict[DayKey, list[Entry]], dict[DayKey, int]]:
        """Every stored entry of these device days, and how many chunks each has."""
        entries: dict[DayKey, list[Entry]] = {key: [] for key in wanted}
        counts: dict[DayKey, int] = {}
        probing = {key: (0, _FIRST_PROBE) for key in entries}
        while probing:
            found = await self.coll.get_many([chunk_id(*key, n) for key, (lo, size) in probing.items()
                                              for n in range(lo, lo + size)])
            further = {}
            for key, (lo, size) in probing.items():
                number = lo
                while number < lo + size and (doc := found.get(chunk_id(*key, number))) is not None:
                    entries[key].extend(zip(doc["c"], doc["t"], doc["k"], doc["m"], strict=True))
                    number += 1
                if number == lo + size:
                    further[key] = (number, size * 2)
                else:
                    counts[key] = number
            probing = further
        return entries, counts

    async def add(self, serial: str, entries: dict[date, list[Entry]], counts: dict[date, int]) -> None:
        """Store each day's entries as that day's next chunk (`counts`: chunks known to exist already)."""
        token = uuid.uuid4().hex
        numbers = {day: counts.get(day, 0) for day in entries}
        pending = dict(entries)
        for _ in range(100):
            docs = {chunk_id(serial, day, numbers[day]): day for day in pending}
            written = await self.coll.insert_many([_chunk(i, token, serial, day, pending[day]) for i, day in docs.items()])
            if written == len(docs):
                return
            # Someone stored a chunk with one of those numbers first: take the next free one there.
            stored = await self.coll.get_many(list(docs))
            pending = {day: pending[day] for i, day in docs.items() if stored.get(i, {}).get("b") != token}
            _, now = await self.days((serial, day) for day in pending)
            numbers.update({day: now[(serial, day)] for day in pending})
        raise RuntimeError(f"could not store readings of {serial}: chunk numbers keep colliding")


def _chunk(doc_id: str, token: str, serial: str, day: date, entries: list[Entry]) -> dict:
    columns = list(zip(*entries, strict=True))
    return {"_id": doc_id, "b": token, "serial_number": serial, "date": day.isoformat(),
            "c": list(columns[0]), "t": list(columns[1]), "k": list(columns[2]), "m": list(columns[3])}
