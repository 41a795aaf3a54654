"""Daily usage per customer and JST day, re-derived from the stored readings of the device whenever
new readings arrive; a day whose totals change emits computed/revised events with old and new values."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ppa_contracts import Envelope
from ppa_contracts.metering import DailyUsageComputed, DailyUsageRevised, DailyValues, ReadingBatchAccepted
from ppa_contracts.topics import METERING_READINGS
from ppa_metering.devices import DeviceRegistry
from ppa_metering.domain.daily import DailyUsage, affected_days, compute_daily
from ppa_metering.domain.readings import Reading
from ppa_metering.ingest import reading_doc
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.docstore import Collection
from ppa_runtime.eventstore import ConcurrencyConflict

DAILY = "daily_usage"
VALUE_FIELDS = ("generation_kwh", "sold_kwh", "usage_kwh", "import_kwh", "battery_charge_kwh",
                "battery_discharge_kwh", "estimated", "reset", "usage_clamped")


class UnknownDevice(LookupError):
    """Readings for a serial the registry does not know (yet): retried, then dead-lettered."""


def values_of(day: DailyUsage) -> DailyValues:
    return DailyValues(**{f: getattr(day, f) for f in VALUE_FIELDS})


def _reading(doc: dict[str, Any]) -> Reading:
    rmax = doc.get("register_max")
    return Reading(doc["channel"], datetime.fromisoformat(doc["at"]), Decimal(doc["kwh"]),
                   None if rmax is None else Decimal(rmax))


class DailyProjection:
    """Applies reading batches to the `daily_usage` read model of the metering service."""

    def __init__(self, service, readings: Collection, daily: Collection, devices: DeviceRegistry) -> None:
        self.service = service
        self.readings = readings
        self.daily = daily
        self.devices = devices

    async def setup(self) -> None:
        await self.daily.ensure_index("agency_id", "customer_number", "date")

    async def on_batch(self, event: ReadingBatchAccepted, env: Envelope) -> None:
        serial = event.serial_number
        found = await self.devices.coll.find({"serial_number": serial}, limit=1)
        if not found:
            raise UnknownDevice(serial)
        device = found[0]
        new = [Reading(r.channel, r.at, r.kwh, r.register_max) for r in event.readings]
        await self.readings.insert_many([reading_doc(serial, r) for r in new])  # idempotent by id
        # Correct for any gap length: the whole device history (cost grows with history; see README).
        stored = [_reading(d) for d in await self.readings.find({"serial_number": serial})]
        times: dict[str, list[datetime]] = defaultdict(list)
        for r in stored:
            times[r.channel].append(r.at)
        for channel in times:
            times[channel].sort()
        days = affected_days(times, new)
        computed = compute_daily(stored, only=days)
        for day in sorted(days):
            if day in computed:
                await self._store_day(device, serial, day, values_of(computed[day]))

    async def _store_day(self, device: dict, serial: str, day: date, values: DailyValues) -> None:
        doc_id = f"{serial}|{day.isoformat()}"
        old = await self.daily.get(doc_id)
        old_values = DailyValues.model_validate(old["values"]) if old else None
        if old_values == values:
            return
        revision = old["revision"] if old else 0
        base = {"agency_id": device["agency_id"], "customer_number": device["customer_number"],
                "serial_number": serial, "date": day}
        event = (DailyUsageRevised(**base, old=old_values, new=values) if old_values
                 else DailyUsageComputed(**base, values=values))
        stream = f"daily:{serial}:{day.isoformat()}"
        try:
            await self.service.record(stream, revision, event, subject=device["customer_number"])
        except ConcurrencyConflict:
            # a crash after the event and before the document: the stream already holds this revision
            revision = len(await self.service.events.read(stream)) - 1
        await self.daily.replace({"_id": doc_id, **{k: v for k, v in base.items() if k != "date"},
                                  "date": day.isoformat(), "values": values.model_dump(mode="json"),
                                  "revision": revision + 1})

    async def days(self, agency_id: str, customer_number: str, start: date, end: date) -> list[dict]:
        return await self.daily.find(
            {"agency_id": agency_id, "customer_number": customer_number,
             "date": {"$gte": start.isoformat(), "$lte": end.isoformat()}}, sort=[("date", 1)])

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="metering.daily-usage", name=DAILY, topics=[METERING_READINGS], collections=[DAILY],
            setup=self.setup, dedupe=False, handlers={ReadingBatchAccepted.event_type(): self.on_batch},
        )
