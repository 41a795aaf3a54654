"""Half-hour usage per device and JST day, and a rollup per device and month, from the readings.

A consumer group of its own on the readings topic (the daily usage group's pace is untouched). It finds the
days a batch can change exactly as the daily projection does (the same `Device` loading, the same affected
days) and recomputes them with the same walk at half-hour grain (`domain.intervals`). Per device and day one
document holds 48 half-hours per channel (kWh as text): a day view is one point read, a month view at most 31.
Per device and month one rollup holds each day's totals and its grid import per half-hour, and the month's totals
and its import per half-hour summed over 平日 and over 土日祝 days (a day written again replaces its entry, and its
old values leave the sums as its new ones enter them):
and per device and year one summary holds each month's totals and sums (no days): a year view is one point read
and prices a year of half-hours from 2 × 48 sums per month. A year's summary is made from the stored rollups the
first time a batch touches that year, then kept with each rollup written; without one (data from before it) a year
view reads the 12 rollups.

Stored packed: the arrays and the per-day entries of a document are kept as one JSON text each (`h` for a day's
channels, `d` and `i` for a rollup's days and sums), which the accessors unpack. A MongoDB-protocol server then
returns a document as a few strings instead of ~1,600 values one by one (FerretDB 1.24 spent most of a year
view's 650 ms returning 12 rollups as nested arrays); documents written before still read as they are.

Idempotent: a day document is the state recomputed from the stored readings, and a rollup's sums change by the
difference between a day's entry in that same document and its new values, so a batch applied twice (a
redelivery after a crash between the writes) writes the same documents again. Readings the
API published but had not stored when it crashed are stored by the daily usage group, not here.
"""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Any

import orjson

from ppa_contracts.topics import METERING_READINGS
from ppa_metering.daily_projection import _READINGS_TYPE, DailyProjection, Device
from ppa_metering.devices import DeviceRegistry
from ppa_metering.domain.calendar import HOLIDAY, WEEKDAY, day_class
from ppa_metering.domain.intervals import SLOTS, IntervalDay, compute_intervals
from ppa_metering.domain.readings import CHANNELS
from ppa_metering.store import ReadingStore
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.docstore import Collection

INTERVALS = "interval_usage"
MONTHS = "interval_months"
YEARS = "interval_years"
INTERVAL_STATES = "interval_state"
ZERO = Decimal("0.000")
PACKED = {"channels": "h", "days": "d", "import_by_class": "i"}


def packed(doc: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a day document or a rollup: its array-heavy fields as JSON text."""
    return {PACKED.get(k, k): orjson.dumps(v).decode() if k in PACKED else v for k, v in doc.items()}


def unpacked(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored document as the views read it (one stored unpacked, before packing, passes through)."""
    if doc is None:
        return None
    out = dict(doc)
    for key, short in PACKED.items():
        if short in out:
            out[key] = orjson.loads(out.pop(short))
    return out


def day_doc(d: Device, day: IntervalDay) -> dict[str, Any]:
    return {"_id": f"{d.serial}|{day.date.isoformat()}", "serial_number": d.serial,
            "agency_id": d.customer["agency_id"], "customer_number": d.customer["customer_number"],
            "date": day.date.isoformat(), "estimated": day.estimated, "reset": day.reset,
            "channels": {c: [str(v) for v in values] for c, values in day.channels.items()}}


def rolled_up(month_id: str, d: Device, before: dict[str, Any] | None, days: list[IntervalDay]) -> dict[str, Any]:
    """The month's rollup with these days put in, each replacing its earlier entry: the sums lose the entry's
    old values and gain its new ones, both read from and written to the one document (a repeat changes nothing)."""
    before = before or {}
    entries = dict(before.get("days", {}))
    totals = {c: Decimal(before.get("totals", {}).get(c, "0")) for c in CHANNELS}
    imports = {k: [Decimal(v) for v in before.get("import_by_class", {}).get(k, ())] or [ZERO] * SLOTS
               for k in (WEEKDAY, HOLIDAY)}
    for day in days:
        key = f"{day.date.day:02d}"
        old = entries.get(key)
        if old is not None:
            for c in CHANNELS:
                totals[c] -= Decimal(old["totals"][c])
            sums = imports[old["class"]]
            for i, v in enumerate(old["import"]):
                if v != "0.000":
                    sums[i] -= Decimal(v)
        entry = entries[key] = {"class": day_class(day.date), "estimated": day.estimated,
                                "totals": {c: str(day.total(c)) for c in CHANNELS},
                                "import": [str(v) for v in day.channels["grid_import"]]}
        for c in CHANNELS:
            totals[c] += Decimal(entry["totals"][c])
        sums = imports[entry["class"]]
        for i, v in enumerate(day.channels["grid_import"]):
            if v:
                sums[i] += v
    return {"_id": month_id, "serial_number": d.serial, "agency_id": d.customer["agency_id"],
            "customer_number": d.customer["customer_number"], "month": month_id.split("|")[1],
            "days": dict(sorted(entries.items())), "totals": {c: str(v) for c, v in totals.items()},
            "import_by_class": {k: [str(v) for v in sums] for k, sums in imports.items()}}


def month_summary(rollup: dict[str, Any]) -> dict[str, Any]:
    """What a year view needs of an (unpacked) month rollup: its totals, sums, whether a day is estimated, and whose."""
    return {"month": rollup["month"], "agency_id": rollup["agency_id"], "customer_number": rollup["customer_number"],
            "totals": rollup["totals"], "import_by_class": rollup["import_by_class"],
            "estimated": any(e.get("estimated") for e in rollup["days"].values())}


def year_doc(serial: str, year: str, summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The stored summary of a device's year: its months' summaries (by YYYY-MM) as one JSON text."""
    return {"_id": f"{serial}|{year}", "serial_number": serial, "year": year,
            "m": orjson.dumps(dict(sorted(summaries.items()))).decode()}


class IntervalProjection(DailyProjection):
    """Applies reading batches to `interval_usage` (device × day) and `interval_months` (device × month)."""

    def __init__(self, store: ReadingStore, intervals: Collection, months: Collection, states: Collection,
                 devices: DeviceRegistry, years: Collection) -> None:
        super().__init__(None, store, intervals, states, devices)
        self.months = months
        self.years = years

    async def setup(self) -> None:
        """Point reads by `_id` only: no index to make."""

    async def derive(self, devices: list[Device], affected: dict[str, set[date]]) -> None:
        docs: list[dict[str, Any]] = []
        by_month: dict[str, tuple[Device, list[IntervalDay]]] = {}
        gone: list[tuple[Device, date]] = []
        for d in devices:
            computed = compute_intervals(d.window(affected[d.serial]), only=affected[d.serial])
            gone += [(d, day) for day in sorted(affected[d.serial] - computed.keys())]
            for day in computed.values():
                docs.append(day_doc(d, day))
                by_month.setdefault(f"{d.serial}|{day.date:%Y-%m}", (d, []))[1].append(day)
        # a stored day no interval reaches any more (a late reading made the one over it a reset) loses its energy:
        # its half-hours become zero, and its month's sums lose them
        stored = await self.daily.get_many([f"{d.serial}|{day.isoformat()}" for d, day in gone]) if gone else {}
        for d, day in gone:
            if f"{d.serial}|{day.isoformat()}" in stored:
                empty = IntervalDay(day, {c: (ZERO,) * SLOTS for c in CHANNELS}, estimated=True)
                docs.append(day_doc(d, empty))
                by_month.setdefault(f"{d.serial}|{day:%Y-%m}", (d, []))[1].append(empty)
        year_ids = sorted({month_id[:-3] for month_id in by_month})  # "serial|YYYY"
        before, years_before = await asyncio.gather(self.months.get_many(list(by_month)),
                                                    self.years.get_many(year_ids))
        rollups = [rolled_up(month_id, d, unpacked(before.get(month_id)), days)
                   for month_id, (d, days) in by_month.items()]
        years = {yid: orjson.loads(doc["m"]) for yid, doc in years_before.items()}
        for yid in year_ids:
            if yid not in years:  # the year's first summary: from the months stored so far
                serial, year = yid.rsplit("|", 1)
                years[yid] = {r["month"]: month_summary(r) for r in await self.months_of(
                    serial, [f"{year}-{m:02d}" for m in range(1, 13)])}
        for rollup in rollups:
            years[rollup["_id"][:-3]][rollup["month"]] = month_summary(rollup)
        await asyncio.gather(self.daily.replace_many([packed(doc) for doc in docs]),
                             self.months.replace_many([packed(r) for r in rollups]),
                             self.years.replace_many([year_doc(*yid.rsplit("|", 1), summaries)
                                                      for yid, summaries in years.items()]),
                             self.states.replace_many([{"_id": d.serial, "channels": bounds} for d in devices
                                                       if (bounds := d.advanced_bounds()) != d.bounds]))

    async def day(self, serial: str, day: date) -> dict[str, Any] | None:
        """One device's half-hours of a JST day (one point read)."""
        return unpacked(await self.daily.get(f"{serial}|{day.isoformat()}"))

    async def days(self, serial: str, first: date, last: date) -> list[dict[str, Any]]:
        """The stored days of a range (one read of at most a month's ids), in date order."""
        ids, day = [], first
        while day <= last:
            ids.append(f"{serial}|{day.isoformat()}")
            day = date.fromordinal(day.toordinal() + 1)
        found = await self.daily.get_many(ids)
        return [unpacked(found[i]) for i in ids if i in found]

    async def months_of(self, serial: str, months: list[str]) -> list[dict[str, Any]]:
        """The rollups of these YYYY-MM months that exist, in the given order."""
        found = await self.months.get_many([f"{serial}|{m}" for m in months])
        return [unpacked(found[f"{serial}|{m}"]) for m in months if f"{serial}|{m}" in found]

    async def year_of(self, serial: str, year: int) -> list[dict[str, Any]]:
        """The month summaries of a year (`month_summary`), in month order: one point read, or the 12 rollups
        when the year has no summary yet."""
        doc = await self.years.get(f"{serial}|{year:04d}")
        if doc is not None:
            return list(orjson.loads(doc["m"]).values())
        return [month_summary(r) for r in await self.months_of(serial, [f"{year:04d}-{m:02d}" for m in range(1, 13)])]

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="metering.interval-usage", name=INTERVALS, topics=[METERING_READINGS],
            collections=[INTERVALS, MONTHS, YEARS, INTERVAL_STATES], setup=self.setup, dedupe=False,
            handlers={_READINGS_TYPE: self.on_event}, on_batch=self.on_batch, batch_size=50)
