"""Event store on MongoDB without multi-document transactions.

A stream is one document `{_id: stream, version, events: [...], published, dirty}`: appending is a
single conditional update on `version` (optimistic concurrency) or an insert for a new stream, so a
command's events are stored all together or not at all. `dirty` marks streams the relay still owes.
Streams here are short (an agency, a link, an invoice); high-volume facts bypass the store.
"""

from __future__ import annotations

import asyncio

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ppa_contracts import Envelope
from ppa_runtime.eventstore import ConcurrencyConflict, Pending, check_versions


class MongoEventStore:
    """Events of one service in its MongoDB database, collection `event_streams`."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.coll = db["event_streams"]
        self.appended = asyncio.Event()
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            await self.coll.create_index("dirty")
            self._ready = True

    async def append(self, stream: str, expected_version: int, events: list[tuple[str | None, Envelope]]) -> int:
        check_versions(stream, expected_version, events)
        await self._ensure()
        docs = [{"topic": topic, "envelope": e.model_dump(mode="json")} for topic, e in events]
        new_version = expected_version + len(events)
        if expected_version == 0:
            try:
                await self.coll.insert_one(
                    {"_id": stream, "version": new_version, "events": docs, "published": 0, "dirty": True}
                )
            except DuplicateKeyError as exc:
                raise ConcurrencyConflict(stream, expected_version) from exc
        else:
            result = await self.coll.update_one(
                {"_id": stream, "version": expected_version},
                {"$push": {"events": {"$each": docs}}, "$set": {"version": new_version, "dirty": True}},
            )
            if result.matched_count == 0:
                raise ConcurrencyConflict(stream, expected_version)
        self.appended.set()
        return new_version

    async def read(self, stream: str) -> list[Envelope]:
        doc = await self.coll.find_one({"_id": stream})
        return [Envelope.model_validate(e["envelope"]) for e in (doc or {}).get("events", [])]

    async def pending(self, limit: int = 500) -> list[Pending]:
        await self._ensure()
        out: list[Pending] = []
        async for doc in self.coll.find({"dirty": True}).limit(100):
            for raw in doc["events"][doc.get("published", 0):]:
                env = Envelope.model_validate(raw["envelope"])
                out.append(Pending(raw["topic"], env, (doc["_id"], env.aggregateversion)))
            if len(out) >= limit:
                break
        return out

    async def mark_published(self, items: list[Pending]) -> None:
        last: dict[str, int] = {}
        for item in items:
            stream, version = item.marker
            last[stream] = max(version, last.get(stream, 0))
        for stream, version in last.items():
            await self.coll.update_one({"_id": stream, "published": {"$lt": version}}, {"$set": {"published": version}})
            await self.coll.update_one({"_id": stream, "version": version}, {"$set": {"dirty": False}})
