"""Daily usage per customer and JST day, recomputed only for the days new readings can change.

Per device of a fetched batch: the affected days run, per channel, from each new reading's stored
predecessor to its successor; they are recomputed from their stored readings plus, per channel, the
readings entering and leaving each run of days. So a batch reads a few days of its device whatever the
history; a device state (first and last instant per channel) bounds the search across gaps. A day whose
totals change emits a computed or revised event (old and new values) with the day's revision as its
version and an id derived from (serial, day, revision), published before the day is stored: a crash in
between republishes the same event on redelivery, which consumers apply once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ppa_contracts import Envelope
from ppa_contracts.metering import DailyUsageComputed, DailyUsageRevised, DailyValues, ReadingBatchAccepted
from ppa_contracts.topics import METERING_DAILY_USAGE, METERING_READINGS
from ppa_metering.devices import DeviceRegistry
from ppa_metering.domain.daily import DailyUsage, affected_days_of, compute_daily, present_kwh
from ppa_metering.domain.readings import Reading, rank
from ppa_metering.store import (CHANNEL_INDEX, Entry, ReadingStore, by_day, day_start_us, jst_day, micros,
                                reading)
from ppa_runtime.bus import EventBus, Record
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.docstore import Collection

DAILY = "daily_usage"
STATES = "device_state"
VALUE_FIELDS = ("generation_kwh", "sold_kwh", "usage_kwh", "import_kwh", "battery_charge_kwh",
                "battery_discharge_kwh", "estimated", "reset", "usage_clamped")
_ONE_DAY = timedelta(days=1)
# the values of a day that had energy from an interval over it until a late reading made that interval a reset:
# none measured, none estimated any more (a rebuild leaves such a day out; the totals are the same)
WITHDRAWN = DailyValues(generation_kwh=Decimal("0.000"), sold_kwh=Decimal("0.000"), usage_kwh=Decimal("0.000"),
                        import_kwh=Decimal("0.000"), battery_charge_kwh=Decimal("0.000"),
                        battery_discharge_kwh=Decimal("0.000"), estimated=True, reset=False, usage_clamped=False)
BATCH_RECORDS = 50
_EVENT_IDS = uuid.UUID("6f1c2d0e-3b0a-4c57-9a39-2f0d5b8e7c11")  # uuid5 namespace of daily usage event ids
_READINGS_TYPE = ReadingBatchAccepted.event_type()
_new = tuple.__new__  # _new(Reading, fields): a named tuple without its Python-level __new__


class UnknownDevice(LookupError):
    """Readings for a serial the registry does not know (yet): retried, then dead-lettered."""


def values_of(day: DailyUsage) -> DailyValues:
    return DailyValues(**{f: getattr(day, f) for f in VALUE_FIELDS})


def runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) pairs, in order."""
    out: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if out and out[-1][1] + _ONE_DAY == day:
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


@dataclass
class Device:
    """One device's share of a fetched batch, and the days of its stored readings read so far."""

    serial: str
    correlation: str
    causation: str
    new: dict[tuple[int, int], Reading] = field(default_factory=dict)  # (channel index, µs) → reading
    customer: dict[str, Any] = field(default_factory=dict)
    bounds: dict[str, list[int]] = field(default_factory=dict)  # channel index → [first, last] µs applied
    entries: dict[date, list[Entry]] = field(default_factory=dict)  # every stored reading of a loaded day
    counts: dict[date, int] = field(default_factory=dict)
    present: dict[date, set[int]] = field(default_factory=dict)  # channels with a reading on a loaded day
    step: int = 2
    _new_days: dict[date, set[int]] | None = None

    def add(self, r: Reading, key: tuple[int, int] | None = None) -> None:
        """Take a new reading (`key`: its (channel index, µs), when known already)."""
        if key is None:
            key = (CHANNEL_INDEX[r.channel], micros(r.at))
        seen = self.new.get(key)
        if seen is None or rank(r) > rank(seen):
            self.new[key] = r
            self._new_days = None

    def loaded(self, day: date, entries: list[Entry], count: int) -> None:
        self.entries[day] = entries
        self.counts[day] = count
        self.present[day] = {e[0] for e in entries} | self.by_new_day().get(day, set())

    def by_new_day(self) -> dict[date, set[int]]:
        """The channels of the new readings per JST day."""
        if self._new_days is None:
            self._new_days = {}
            for channel, us in self.new:
                self._new_days.setdefault(jst_day(us), set()).add(channel)
        return self._new_days

    def new_days(self) -> set[date]:
        return set(self.by_new_day())

    def around_new_days(self) -> set[date]:
        """The days of the new readings, and the two before and the one after each where readings were applied.

        A neighbour outside the span of applied readings (`bounds`) holds none that were applied: readings the
        device API stored there since come with events still to be consumed, which recompute the days they
        change when they are. Not looking spares a lookup per day (a round trip on MongoDB)."""
        days = self.new_days()
        if not self.bounds:
            return days
        first = min(b[0] for b in self.bounds.values())
        last = max(b[1] for b in self.bounds.values())
        out = set(days)
        for day in days:
            for k in (-2, -1, 1):
                near = day + timedelta(days=k)
                if day_start_us(near) <= last and day_start_us(near + _ONE_DAY) > first:
                    out.add(near)
        return out

    def channels(self) -> set[int]:
        return {int(c) for c in self.bounds} | {c for seen in self.present.values() for c in seen}

    def wanted(self, spans: list[tuple[date, date]], channels: set[int]) -> set[date]:
        """Days to read before each span's readings entering and leaving it are known, per channel."""
        need: set[date] = set()
        for first, last in spans:
            need.update(first + timedelta(days=k) for k in range((last - first).days + 1))
            need.difference_update(self.present)
            for channel in channels:
                bound = self.bounds.get(str(channel))
                day = first - _ONE_DAY
                while day in self.present and channel not in self.present[day]:
                    day -= _ONE_DAY
                if day not in self.present and bound is not None and bound[0] < day_start_us(day + _ONE_DAY):
                    low = max(day - timedelta(days=self.step - 1), jst_day(bound[0]))
                    need.update(low + timedelta(days=k) for k in range((day - low).days + 1))
                day = last + _ONE_DAY
                while day in self.present and channel not in self.present[day]:
                    day += _ONE_DAY
                if day not in self.present and bound is not None and bound[1] >= day_start_us(day):
                    high = min(day + timedelta(days=self.step - 1), jst_day(bound[1]))
                    need.update(day + timedelta(days=k) for k in range((high - day).days + 1))
        return need

    def affected(self) -> set[date]:
        """Days whose totals the new readings can change (their stored neighbours are loaded by now)."""
        fresh: dict[int, list[int]] = {}
        for channel, us in self.new:
            fresh.setdefault(channel, []).append(us)
        known: dict[int, set[int]] = {}
        for entries in self.entries.values():
            for e in entries:
                if (e[0], e[1]) not in self.new:
                    known.setdefault(e[0], set()).add(e[1])
        return affected_days_of({c: sorted(v) for c, v in known.items()}, fresh, jst_day)

    def window(self, days: set[date]) -> list[Reading]:
        """The readings of these days, and per channel every value at the instant entering and leaving
        each run of them (what `compute_daily(..., only=days)` needs)."""
        # Stored readings win over the batch's own values (the store is what a replay derives from);
        # those stored alike are taken as already parsed, those not stored (yet) from the batch.
        out: list[Reading] = []
        new, stored = self.new, set()
        for day in days:
            for e in self.entries[day]:
                key = (e[0], e[1])
                stored.add(key)
                r = new.get(key)
                if r is not None and e[2] == str(r.kwh) and e[3] == (None if r.register_max is None
                                                                     else str(r.register_max)):
                    out.append(r)
                else:
                    out.append(reading(e))
        out += [r for key, r in new.items() if key not in stored]
        for first, last in runs(days):
            start, end = day_start_us(first), day_start_us(last + _ONE_DAY)
            for channel in self.channels():
                day = first - _ONE_DAY
                while day in self.present and channel not in self.present[day]:
                    day -= _ONE_DAY
                if day in self.present:
                    own = [e for e in self.entries[day] if e[0] == channel and e[1] < start]
                    edge = max(e[1] for e in own) if own else None
                    out += [reading(e) for e in own if e[1] == edge]
                day = last + _ONE_DAY
                while day in self.present and channel not in self.present[day]:
                    day += _ONE_DAY
                if day in self.present:
                    own = [e for e in self.entries[day] if e[0] == channel and e[1] >= end]
                    edge = min(e[1] for e in own) if own else None
                    out += [reading(e) for e in own if e[1] == edge]
        return out

    def missing(self) -> dict[date, list[Entry]]:
        """New readings no stored chunk holds (the API crashed before storing them): to store now. A reading is
        stored in its own JST day's chunks, and the new readings' days are loaded, so only those are looked at."""
        stored = {(e[0], e[1]) for day in self.by_new_day() for e in self.entries[day]}
        return by_day(r for key, r in self.new.items() if key not in stored)

    def advanced_bounds(self) -> dict[str, list[int]]:
        """The first and last instant per channel, the new readings included."""
        instants: dict[int, list[int]] = {}
        for channel, us in self.new:
            instants.setdefault(channel, []).append(us)
        out = {c: list(b) for c, b in self.bounds.items()}
        for channel, values in instants.items():
            first, last = min(values), max(values)
            b = out.setdefault(str(channel), [first, last])
            b[0], b[1] = min(b[0], first), max(b[1], last)
        return out


class DailyProjection:
    """Applies reading batches to the `daily_usage` read model of the metering service."""

    def __init__(self, bus: EventBus, store: ReadingStore, daily: Collection, states: Collection,
                 devices: DeviceRegistry) -> None:
        self.bus = bus
        self.store = store
        self.daily = daily
        self.states = states
        self.devices = devices

    async def setup(self) -> None:
        await self.daily.ensure_index("agency_id", "customer_number", "date")

    async def on_batch(self, records: list[Record]) -> None:
        """A fetched batch at once: one device's records merged, every read and write batched."""
        devices: dict[str, Device] = {}
        instants: dict[str, tuple[datetime, int]] = {}
        for record in records:
            if record.type != _READINGS_TYPE:
                continue
            data = record.data
            device = devices.get(data["serial_number"])
            if device is None:
                device = devices[data["serial_number"]] = Device(data["serial_number"], record.correlationid,
                                                                 record.id)
            for r in data["readings"]:
                at, channel, rmax = r["at"], r["channel"], r.get("register_max")
                parsed = instants.get(at)  # a batch's channels share their instants: each text parsed once
                if parsed is None:
                    moment = datetime.fromisoformat(at)
                    parsed = instants[at] = (moment, micros(moment))
                kwh = Decimal(r["kwh"])
                device.add(_new(Reading, (channel, parsed[0], kwh, None if rmax is None else Decimal(rmax))),
                           (CHANNEL_INDEX[channel], parsed[1]))
        await self.apply(list(devices.values()))

    async def on_event(self, event: ReadingBatchAccepted, env: Envelope) -> None:
        """One record (the consumer's path when a whole batch failed)."""
        device = Device(event.serial_number, env.correlationid, env.id)
        for r in event.readings:
            device.add(Reading(r.channel, r.at, r.kwh, r.register_max))
        await self.apply([device])

    async def apply(self, devices: list[Device]) -> None:
        if devices:
            await self.derive(devices, await self.prepare(devices))

    async def prepare(self, devices: list[Device]) -> dict[str, set[date]]:
        """Read the devices' customers, states and the stored days needed; the affected days per serial."""
        serials = [d.serial for d in devices]
        customers = await self.devices.by_serials(serials)
        unknown = [s for s in serials if s not in customers]
        if unknown:
            raise UnknownDevice(", ".join(unknown))
        states = await self.states.get_many(serials)
        for d in devices:
            d.customer = customers[d.serial]
            d.bounds = states.get(d.serial, {}).get("channels", {})
        # The days of the new readings with two before and one after: enough for readings in order.
        await self._load({d.serial: d for d in devices}, {d.serial: d.around_new_days() for d in devices})
        await self._reach(devices, lambda d: (runs(d.new_days()), {c for c, _ in d.new}))
        affected = {d.serial: d.affected() for d in devices}
        await self._reach(devices, lambda d: (runs(affected[d.serial]), d.channels()))
        return affected

    async def derive(self, devices: list[Device], affected: dict[str, set[date]]) -> None:
        """Recompute the affected days, publish what changed, store the days and the device states."""
        stored = await self.daily.get_many([f"{d.serial}|{day.isoformat()}" for d in devices
                                            for day in affected[d.serial]])
        events: list[Envelope] = []
        docs: list[dict[str, Any]] = []
        for d in devices:
            computed = compute_daily(d.window(affected[d.serial]), only=affected[d.serial])
            for day, usage in computed.items():
                self._changed(d, day, values_of(usage), stored.get(f"{d.serial}|{day.isoformat()}"), events, docs)
            for day in sorted(affected[d.serial] - computed.keys()):
                # a stored day no interval reaches any more (a late reading made the one over it a reset): its
                # energy is gone, and a revision to zero says so to billing and the owner's view
                if (old := stored.get(f"{d.serial}|{day.isoformat()}")) is not None:
                    self._changed(d, day, WITHDRAWN, old, events, docs)
        for d in devices:
            missing = d.missing()
            if missing:
                await self.store.add(d.serial, missing, {day: d.counts.get(day, 0) for day in missing})
        if events:
            await self.bus.publish(METERING_DAILY_USAGE, events)
        # at once: on the embedded runtime both join one transaction of the service's file (one fsync)
        await asyncio.gather(self.daily.replace_many(docs),
                             self.states.replace_many([{"_id": d.serial, "channels": bounds} for d in devices
                                                       if (bounds := d.advanced_bounds()) != d.bounds]))

    async def _load(self, devices: dict[str, Device], wanted: dict[str, set[date]]) -> None:
        keys = [(serial, day) for serial, days in wanted.items() for day in days
                if day not in devices[serial].present]
        if not keys:
            return
        entries, counts = await self.store.days(keys)
        for serial, day in keys:
            devices[serial].loaded(day, entries[(serial, day)], counts[(serial, day)])

    async def _reach(self, devices: list[Device], spans_of) -> None:
        """Read more days until every span's entering and leaving readings are known (gaps: rarely)."""
        by_serial = {d.serial: d for d in devices}
        while True:
            wanted = {d.serial: d.wanted(*spans_of(d)) for d in devices}
            if not any(wanted.values()):
                return
            await self._load(by_serial, wanted)
            for d in devices:
                d.step *= 2

    def _changed(self, d: Device, day: date, values: DailyValues, old: dict[str, Any] | None,
                 events: list[Envelope], docs: list[dict[str, Any]]) -> None:
        old_values = DailyValues.model_validate(old["values"]) if old else None
        if old_values == values:
            return
        revision = (old["revision"] if old else 0) + 1
        base = {"agency_id": d.customer["agency_id"], "customer_number": d.customer["customer_number"],
                "serial_number": d.serial, "date": day}
        event = (DailyUsageRevised(**base, old=old_values, new=values) if old_values
                 else DailyUsageComputed(**base, values=values))
        env = Envelope.wrap(event, subject=d.customer["customer_number"], correlation_id=d.correlation,
                            causation_id=d.causation, aggregate_version=revision)
        events.append(env.model_copy(update={"id": uuid.uuid5(_EVENT_IDS, f"{d.serial}|{day}|{revision}").hex}))
        docs.append({"_id": f"{d.serial}|{day.isoformat()}", **{k: v for k, v in base.items() if k != "date"},
                     "date": day.isoformat(), "values": values.model_dump(mode="json"), "revision": revision})

    async def days(self, agency_id: str, customer_number: str, start: date, end: date) -> list[dict]:
        return await self.daily.find(
            {"agency_id": agency_id, "customer_number": customer_number,
             "date": {"$gte": start.isoformat(), "$lte": end.isoformat()}}, sort=[("date", 1)])

    async def presented_days(self, agency_id: str, customer_number: str, start: date, end: date) -> list[dict]:
        """The days as people see them: kWh to 2 decimals, usage = generation − sold of those (never below 0); grid
        import and battery charge / discharge too."""
        out = []
        for d in await self.days(agency_id, customer_number, start, end):
            v = d["values"]
            gen, sold = present_kwh(Decimal(v["generation_kwh"])), present_kwh(Decimal(v["sold_kwh"]))
            out.append({"date": d["date"], "generation_kwh": gen, "sold_kwh": sold,
                        "usage_kwh": max(gen - sold, Decimal("0.00")), "estimated": bool(v["estimated"]),
                        **{k: present_kwh(Decimal(v[k])) for k in ("import_kwh", "battery_charge_kwh",
                                                                    "battery_discharge_kwh")}})
        return out

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="metering.daily-usage", name=DAILY, topics=[METERING_READINGS], collections=[DAILY, STATES],
            setup=self.setup, dedupe=False, handlers={_READINGS_TYPE: self.on_event}, on_batch=self.on_batch,
            # records, each a device batch of up to 10,000 readings: 500 of a week each (1,008) held the worker
            # at 785 MB; 50 of a day each (144) still share the costs of a batch
            batch_size=BATCH_RECORDS,
        )
