"""Stored readings: insert-only chunks, each holding readings of one device and one JST day.

A chunk is `{_id: "<serial>|<YYYY-MM-DD>|<n>", b, serial_number, date, e}` where `e` is the JSON text of four
parallel lists: [channel index], [µs since the epoch (UTC)], [kwh text], [register_max text or null]. One text
value, not four arrays of values: a MongoDB-protocol server encodes, decodes and indexes a document's values one
by one (FerretDB 1.24 spent 4.6 ms of CPU to return a day's chunk of 144 readings as arrays), while orjson reads
the text in microseconds. Chunks stored before held the lists as arrays `c`, `t`, `k`, `m`: they read alike.
A day's chunks are numbered 0, 1, 2, … in the order they were stored, so reading a day is a few lookups
by `_id` (the only filter FerretDB 1.x answers from an index) whatever the device's history, and writing
never changes a document: two writers racing for a number collide on the `_id`, the loser takes the next
one. The device API stores each batch's new readings once; the daily projection reads the same chunks.

Because a stored chunk never changes and never goes away, a process keeps the chunks it has read or written
(`ChunkCache`): a day whose chunks 0..n-1 it knows is read again as one lookup of chunk n (usually absent),
not of every chunk. On a MongoDB-protocol server each lookup is a command; with a day's readings per batch
this takes the device API from 4 lookups per day to 2, and the daily projection from 16 per device and
batch (the days D-2..D+1 of a day D) to about 6.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

import orjson

from ppa_metering.domain.readings import CHANNEL_INDEX, CHANNELS, EPOCH, Reading, micros
from ppa_runtime.docstore import Collection

READINGS = "readings"
# Japan keeps UTC+9 all year (no daylight saving since 1951; readings start in 2000): day arithmetic on
# integers, equal to `jst_date` and `day_start` of the domain (a test holds them together).
_JST_US, _DAY_US, _EPOCH_DAY = 9 * 3600 * 10**6, 86_400 * 10**6, date(1970, 1, 1).toordinal()
_new = tuple.__new__  # _new(Reading, fields): a named tuple without its Python-level __new__
_FIRST_PROBE = 2  # chunk numbers asked for at once on a day not known yet; doubled while every one exists
CACHED_ENTRIES = 200_000  # readings of known chunks a process keeps (≈ 30 MB), least recently used dropped first

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


class ChunkCache:
    """The entries of the first n chunks of recently used device days (chunks never change: always valid)."""

    def __init__(self, max_entries: int = CACHED_ENTRIES) -> None:
        self.max_entries = max_entries
        self.size = 0
        self._days: OrderedDict[DayKey, tuple[int, tuple[Entry, ...]]] = OrderedDict()

    def get(self, key: DayKey) -> tuple[int, tuple[Entry, ...]]:
        """(n, the entries of chunks 0..n-1) as known; (0, ()) for a day not known."""
        found = self._days.get(key)
        if found is None:
            return 0, ()
        self._days.move_to_end(key)
        return found

    def put(self, key: DayKey, count: int, entries: tuple[Entry, ...]) -> None:
        """Know chunks 0..count-1 of a day (a smaller count than the one known changes nothing)."""
        known = self._days.get(key)
        if known is not None:
            if known[0] >= count:
                return
            self.size -= len(known[1])
        self._days[key] = (count, entries)
        self._days.move_to_end(key)
        self.size += len(entries)
        while self.size > self.max_entries and len(self._days) > 1:
            _, (_, dropped) = self._days.popitem(last=False)
            self.size -= len(dropped)


class ReadingStore:
    """The chunks of every device, in one collection."""

    def __init__(self, coll: Collection, cache: ChunkCache | None = None) -> None:
        self.coll = coll
        self.cache = cache or ChunkCache()

    async def days(self, wanted: Iterable[DayKey]) -> tuple[dict[DayKey, list[Entry]], dict[DayKey, int]]:
        """Every stored entry of these device days, and how many chunks each has."""
        entries: dict[DayKey, list[Entry]] = {}
        counts: dict[DayKey, int] = {}
        probing: dict[DayKey, tuple[int, int]] = {}
        known_before: dict[DayKey, int] = {}
        for key in wanted:
            known, cached = self.cache.get(key)
            known_before[key] = known
            entries[key] = list(cached)
            # a known day most often has no further chunk: one lookup says so
            probing[key] = (known, 1 if known else _FIRST_PROBE)
        while probing:
            found = await self.coll.get_many([chunk_id(*key, n) for key, (lo, size) in probing.items()
                                              for n in range(lo, lo + size)])
            further = {}
            for key, (lo, size) in probing.items():
                number = lo
                while number < lo + size and (doc := found.get(chunk_id(*key, number))) is not None:
                    entries[key].extend(chunk_entries(doc))
                    number += 1
                if number == lo + size:
                    further[key] = (number, size * 2)
                else:
                    counts[key] = number
                    if number > known_before[key]:
                        self.cache.put(key, number, tuple(entries[key]))
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
                for day in pending:
                    known, cached = self.cache.get((serial, day))
                    if known == numbers[day]:
                        self.cache.put((serial, day), known + 1, cached + tuple(pending[day]))
                return
            # Someone stored a chunk with one of those numbers first: take the next free one there.
            stored = await self.coll.get_many(list(docs))
            pending = {day: pending[day] for i, day in docs.items() if stored.get(i, {}).get("b") != token}
            _, now = await self.days((serial, day) for day in pending)
            numbers.update({day: now[(serial, day)] for day in pending})
        raise RuntimeError(f"could not store readings of {serial}: chunk numbers keep colliding")


def chunk_entries(doc: dict) -> Iterable[Entry]:
    """The entries a stored chunk holds, in the order they were stored."""
    if "e" in doc:
        return zip(*orjson.loads(doc["e"]), strict=True)
    return zip(doc["c"], doc["t"], doc["k"], doc["m"], strict=True)  # a chunk stored before the text form


def _chunk(doc_id: str, token: str, serial: str, day: date, entries: list[Entry]) -> dict:
    columns = [list(c) for c in zip(*entries, strict=True)]
    return {"_id": doc_id, "b": token, "serial_number": serial, "date": day.isoformat(),
            "e": orjson.dumps(columns).decode()}
