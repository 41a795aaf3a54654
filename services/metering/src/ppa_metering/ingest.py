"""Reading ingestion: validate a device's batch, count repeats, publish what is new, store it once.

Publishing comes before storing: a crash in between makes the device's retry publish again, and the daily
projection stores readings it does not find (by their instant), so nothing is lost and nothing counts
twice; the reverse order could lose readings (stored, so a retry is a duplicate, but never published).

An unreachable broker or database is given up on as soon as the readiness probes find it down (Unavailable, a
503 with Retry-After for the device), instead of after the clients' own 30-40 s; a slow one (under load) is
waited for, and a publish at most `timeout` seconds. The same ordering makes that safe: a publish given up on stored
nothing, and a batch the broker took after all is published again by the retry, which the projection stores once;
a store given up on after the publish is that crash in between.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from ppa_contracts import Envelope
from ppa_contracts.metering import ReadingBatchAccepted
from ppa_contracts.topics import METERING_READINGS
from ppa_metering.domain.readings import CHANNELS, Rejection, Row, validate_rows
from ppa_metering.store import Entry, ReadingStore, jst_day
from ppa_runtime import tracing
from ppa_runtime.bus import EventBus
from ppa_runtime.context import correlation_id
from ppa_runtime.readiness import Readiness, store_errors

T = TypeVar("T")
_SOURCE = f"/ppa/{ReadingBatchAccepted.event_service}"
_TYPE = ReadingBatchAccepted.event_type()


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: tuple[Rejection, ...]


def batch_data(serial: str, rows: list[Row]) -> dict[str, Any]:
    """`ReadingBatchAccepted(...).model_dump(mode="json")`, written out: the batch is already validated and
    up to 10,000 readings long, where the model would validate and serialise each one again."""
    return {"serial_number": serial, "readings": [
        {"channel": CHANNELS[r.channel], "at": r.at, "kwh": r.kwh, "register_max": r.register_max} for r in rows]}


class Ingestion:
    """The write path of the device API."""

    def __init__(self, bus: EventBus, store: ReadingStore, readiness: Readiness, timeout: float = 10.0) -> None:
        self.bus = bus
        self.store = store
        self.readiness = readiness
        self.timeout = timeout

    async def stored(self, awaitable: Awaitable[T]) -> T:
        """A step on the document store, given up on when the store is found down."""
        with store_errors():
            return await self.readiness.watch("store", awaitable)

    async def ingest(self, serial: str, raw: list, now: datetime | None = None) -> IngestResult:
        """Validate and accept a batch; repeats of stored readings count as duplicates."""
        batch = validate_rows(raw, now or datetime.now(UTC))
        day_of: dict[int, date] = {}
        for r in batch.rows:
            if r.us not in day_of:
                day_of[r.us] = jst_day(r.us)
        stored, counts = await self.stored(self.store.days((serial, day) for day in set(day_of.values())))
        seen = {(e[0], e[1]) for found in stored.values() for e in found}
        new: list[Row] = []
        by_day: dict[date, list[Entry]] = {}
        for r in batch.rows:
            if (r.channel, r.us) not in seen:
                new.append(r)
                by_day.setdefault(day_of[r.us], []).append(r[:4])
        if new:
            event = Envelope(source=_SOURCE, type=_TYPE, subject=serial, correlationid=correlation_id(),
                             schemaversion=ReadingBatchAccepted.event_version, data=batch_data(serial, new),
                             **tracing.event_context())
            await self.readiness.watch("bus", self.bus.publish(METERING_READINGS, [event], timeout=self.timeout))
            await self.stored(self.store.add(serial, by_day, {day: counts[(serial, day)] for day in by_day}))
        return IngestResult(len(new), batch.duplicates + len(batch.rows) - len(new), batch.rejected)
