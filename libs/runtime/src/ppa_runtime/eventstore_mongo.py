"""Event store on MongoDB without multi-document transactions, and safe on MongoDB-protocol servers
that do not make conditional updates atomic (FerretDB 1.x loses concurrent updates to one document).

Each commit (the events of one command) is ONE inserted document, never changed by writers:
`{_id: "<stream>:<first version, zero-padded>", stream, first, last, events: [...], published}`.
An append reads the stream's last commit: if it does not end at the expected version the append is
a conflict; two writers racing from the same version collide on the unique `_id`. A commit is
stored whole or not at all. The relay is the only process that updates a commit (`published`).
"""

from __future__ import annotations

import asyncio
import time

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ppa_contracts import Envelope
from ppa_runtime.eventstore import ConcurrencyConflict, Pending, check_versions


def _commit_id(stream: str, first: int) -> str:
    return f"{stream}:{first:012d}"


class MongoEventStore:
    """Events of one service in its MongoDB database, collection `event_commits`."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.coll = db["event_commits"]
        self.appended = asyncio.Event()
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            await self.coll.create_index([("stream", ASCENDING), ("first", ASCENDING)])
            await self.coll.create_index([("published", ASCENDING), ("recorded_at", ASCENDING)])
            self._ready = True

    async def _head(self, stream: str) -> int:
        last = await self.coll.find_one({"stream": stream}, {"last": 1}, sort=[("first", DESCENDING)])
        return int(last["last"]) if last else 0

    async def append(self, stream: str, expected_version: int, events: list[tuple[str | None, Envelope]]) -> int:
        check_versions(stream, expected_version, events)
        await self._ensure()
        if await self._head(stream) != expected_version:
            raise ConcurrencyConflict(stream, expected_version)
        first, last = expected_version + 1, expected_version + len(events)
        try:
            await self.coll.insert_one({
                "_id": _commit_id(stream, first), "stream": stream, "first": first, "last": last,
                "events": [{"topic": t, "envelope": e.model_dump(mode="json")} for t, e in events],
                "published": False, "recorded_at": time.time(),
            })
        except DuplicateKeyError as exc:
            raise ConcurrencyConflict(stream, expected_version) from exc
        self.appended.set()
        return last

    async def read(self, stream: str) -> list[Envelope]:
        await self._ensure()
        out: list[Envelope] = []
        async for commit in self.coll.find({"stream": stream}, sort=[("first", ASCENDING)]):
            out += [Envelope.model_validate(e["envelope"]) for e in commit["events"]]
        return out

    async def pending(self, limit: int = 500) -> list[Pending]:
        await self._ensure()
        out: list[Pending] = []
        cursor = self.coll.find({"published": False}, sort=[("recorded_at", ASCENDING)]).limit(limit)
        commits = await cursor.to_list(None)
        # within a stream, commits go out in version order whatever the writers' clocks said
        commits.sort(key=lambda c: (c["stream"], c["first"]))
        for commit in commits:
            for item in commit["events"]:
                out.append(Pending(item["topic"], Envelope.model_validate(item["envelope"]), commit["_id"]))
        return out

    async def mark_published(self, items: list[Pending]) -> None:
        ids = sorted({item.marker for item in items})
        if ids:
            await self.coll.update_many({"_id": {"$in": ids}}, {"$set": {"published": True}})
