"""Reading ingestion: validate a device's batch, count repeats, publish what is new, keep it for dedupe.

Publishing comes before keeping: a crash in between makes the device's retry publish again, which the
daily projection absorbs (readings are stored by id); the reverse order could lose readings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ppa_contracts import Envelope
from ppa_contracts.metering import ReadingBatchAccepted, ReadingValue
from ppa_contracts.topics import METERING_READINGS
from ppa_metering.domain.readings import Reading, Rejection, validate_batch
from ppa_runtime.bus import EventBus
from ppa_runtime.context import correlation_id
from ppa_runtime.docstore import Collection

READINGS = "readings"


def reading_id(serial: str, channel: str, at: datetime) -> str:
    return f"{serial}|{channel}|{at.astimezone(UTC).isoformat()}"


def reading_doc(serial: str, r: Reading) -> dict:
    return {"_id": reading_id(serial, r.channel, r.at), "serial_number": serial, "channel": r.channel,
            "at": r.at.astimezone(UTC).isoformat(), "kwh": str(r.kwh),
            "register_max": None if r.register_max is None else str(r.register_max)}


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: tuple[Rejection, ...]


class Ingestion:
    """The write path of the device API."""

    def __init__(self, bus: EventBus, readings: Collection) -> None:
        self.bus = bus
        self.readings = readings

    async def setup(self) -> None:
        await self.readings.ensure_index("serial_number", "at")

    async def ingest(self, serial: str, raw: list, now: datetime | None = None) -> IngestResult:
        """Validate and accept a batch; repeats of stored readings count as duplicates."""
        batch = validate_batch(raw, now or datetime.now(UTC))
        ids = [reading_id(serial, r.channel, r.at) for r in batch.accepted]
        stored = {d["_id"] for d in await self.readings.find({"_id": {"$in": ids}})} if ids else set()
        new = [r for r, i in zip(batch.accepted, ids, strict=True) if i not in stored]
        if new:
            payload = ReadingBatchAccepted(serial_number=serial, readings=[
                ReadingValue(channel=r.channel, at=r.at, kwh=r.kwh, register_max=r.register_max) for r in new])
            await self.bus.publish(METERING_READINGS, [
                Envelope.wrap(payload, subject=serial, correlation_id=correlation_id())])
            await self.readings.insert_many([reading_doc(serial, r) for r in new])
        return IngestResult(len(new), batch.duplicates + len(batch.accepted) - len(new), batch.rejected)
