"""Reading ingestion: validate a device's batch, count repeats, publish what is new, store it once.

Publishing comes before storing: a crash in between makes the device's retry publish again, and the daily
projection stores readings it does not find (by their instant), so nothing is lost and nothing counts
twice; the reverse order could lose readings (stored, so a retry is a duplicate, but never published).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from ppa_contracts import Envelope
from ppa_contracts.metering import ReadingBatchAccepted
from ppa_contracts.topics import METERING_READINGS
from ppa_metering.domain.readings import Reading, Rejection, validate_batch
from ppa_metering.store import Entry, ReadingStore, entry, jst_day
from ppa_runtime.bus import EventBus
from ppa_runtime.context import correlation_id

_SOURCE = f"/ppa/{ReadingBatchAccepted.event_service}"
_TYPE = ReadingBatchAccepted.event_type()


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: tuple[Rejection, ...]


def batch_data(serial: str, readings: list[Reading]) -> dict[str, Any]:
    """`ReadingBatchAccepted(...).model_dump(mode="json")`, written out: the batch is already validated and
    up to 10,000 readings long, where the model would validate and serialise each one again."""
    return {"serial_number": serial, "readings": [
        {"channel": r.channel, "at": r.at.isoformat().replace("+00:00", "Z"), "kwh": str(r.kwh),
         "register_max": None if r.register_max is None else str(r.register_max)} for r in readings]}


class Ingestion:
    """The write path of the device API."""

    def __init__(self, bus: EventBus, store: ReadingStore) -> None:
        self.bus = bus
        self.store = store

    async def ingest(self, serial: str, raw: list, now: datetime | None = None) -> IngestResult:
        """Validate and accept a batch; repeats of stored readings count as duplicates."""
        batch = validate_batch(raw, now or datetime.now(UTC))
        entries = [entry(r) for r in batch.accepted]
        days = [jst_day(e[1]) for e in entries]
        stored, counts = await self.store.days((serial, day) for day in set(days))
        seen = {(e[0], e[1]) for found in stored.values() for e in found}
        new: list[Reading] = []
        by_day: dict[date, list[Entry]] = {}
        for r, e, day in zip(batch.accepted, entries, days, strict=True):
            if (e[0], e[1]) not in seen:
                new.append(r)
                by_day.setdefault(day, []).append(e)
        if new:
            event = Envelope(source=_SOURCE, type=_TYPE, subject=serial, correlationid=correlation_id(),
                             schemaversion=ReadingBatchAccepted.event_version, data=batch_data(serial, new))
            await self.bus.publish(METERING_READINGS, [event])
            await self.store.add(serial, by_day, {day: counts[(serial, day)] for day in by_day})
        return IngestResult(len(new), batch.duplicates + len(batch.accepted) - len(new), batch.rejected)

