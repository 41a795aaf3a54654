"""Event store on MongoDB without multi-document transactions, and safe on MongoDB-protocol servers
that do not make conditional updates atomic (FerretDB 1.x loses concurrent updates to one document).

Each commit (the events of one command) is ONE inserted document, never changed by writers:
`{_id: "<stream>:<first version, zero-padded>", stream, first, last, events: [...], published}`.
A stream's commits form a chain by `_id`: the commit after one that ends at version v is `<stream>:<v+1>`.
So reading a stream, and finding its head, are point lookups by `_id` (the only filter FerretDB 1.x answers
from an index; a filter on `stream` scans every commit of the service there). An append whose expected version
is not the head is a conflict; two writers racing from one version collide on the unique `_id` (a stale
writer's version is a commit boundary, so its `_id` is taken too). A commit is stored whole or not at all.

The outbox is a small collection of its own (`event_outbox`): an append first records the commit's `_id` there,
then inserts the commit; the relay reads the outbox (only what is not published yet, not the whole history),
publishes the commits it names in stream order, marks them and removes their entries. An entry whose commit
never came (the append lost its race, or its process died in between) is removed once it is older than
`ORPHAN_SECONDS`. The relay is the only process that updates a commit (`published`).

Since a commit never changes once stored, a process keeps the events it has read of recent streams and reads only
what follows them: reading a stream it has read before is one `_id` lookup (the commit after the last one it
knows, usually absent) instead of one per commit, and its events are not decoded again. An owner's page reads the
owner's stream on every request; without this that was three sequential round trips.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from pymongo import ASCENDING, DeleteOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ppa_contracts import Envelope
from ppa_runtime.docstore_mongo import UpdateGate
from ppa_runtime.eventstore import ConcurrencyConflict, Pending, check_versions


ORPHAN_SECONDS = 60.0  # an outbox entry whose commit has not appeared by then never will
KNOWN_STREAMS = 4096  # streams whose events a process keeps after reading them (least recently read go first)
KNOWN_EVENTS = 500  # a longer stream is read in full each time rather than kept


def _commit_id(stream: str, first: int) -> str:
    return f"{stream}:{first:012d}"


class MongoEventStore:
    """Events of one service in its MongoDB database, collections `event_commits` and `event_outbox`."""

    def __init__(self, db: AsyncDatabase, gate: UpdateGate | None = None) -> None:
        self.gate = gate or UpdateGate()
        self.coll = db["event_commits"]
        self.outbox = db["event_outbox"]
        self.appended = asyncio.Event()
        self._ready = False
        self._adopted = False
        self._known: OrderedDict[str, tuple[int, tuple[Envelope, ...]]] = OrderedDict()

    async def _ensure(self) -> None:
        if not self._ready:
            await self.coll.create_index([("stream", ASCENDING), ("first", ASCENDING)])
            self._ready = True

    async def _adopt_unpublished(self) -> None:
        """Commits an earlier version stored unpublished, without an outbox entry, get one (once per process)."""
        if self._adopted:
            return
        missing = [{"_id": c["_id"], "recorded_at": c.get("recorded_at", 0.0)}
                   async for c in self.coll.find({"published": False}, {"recorded_at": 1})]
        await self._record(missing)
        self._adopted = True

    async def _record(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        try:
            await self.outbox.insert_many(entries, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise

    async def _chain(self, stream: str, projection: dict[str, int] | None = None,
                     after: int = 0) -> list[dict[str, Any]]:
        """The stream's commits after version `after` (a commit boundary) in order, one `_id` lookup each (and one
        for the end)."""
        out: list[dict[str, Any]] = []
        version = after
        while (commit := await self.coll.find_one({"_id": _commit_id(stream, version + 1)}, projection)) is not None:
            out.append(commit)
            version = int(commit["last"])
        return out

    async def _head(self, stream: str) -> int:
        known = self._known[stream][0] if stream in self._known else 0
        commits = await self._chain(stream, {"last": 1}, after=known)
        return int(commits[-1]["last"]) if commits else known

    async def append(self, stream: str, expected_version: int, events: list[tuple[str | None, Envelope]]) -> int:
        check_versions(stream, expected_version, events)
        await self._ensure()
        if await self._head(stream) != expected_version:
            raise ConcurrencyConflict(stream, expected_version)
        first, last = expected_version + 1, expected_version + len(events)
        # the outbox entry first, so a commit is never stored without one (a racing writer's entry is the same);
        # its time is renewed, so an orphan left by a writer that died here is not taken for one now
        try:
            async with self.gate.held(self.outbox):
                await self.outbox.replace_one({"_id": _commit_id(stream, first)},
                                              {"_id": _commit_id(stream, first), "recorded_at": time.time()},
                                              upsert=True)
        except DuplicateKeyError:
            pass  # a racing writer's upsert inserted the same entry just now: it is as fresh as ours
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

    async def append_many(self, commits: list[tuple[str, int, list[tuple[str | None, Envelope]]]]) -> set[str]:
        """Many commits in two bulk inserts (outbox entries, then commits). The head of each stream is not read:
        a caller passes versions it saw stored, and a stream that moved on since has a commit at the version after
        the expected one already, so its insert collides on `_id` and the stream is reported as a conflict."""
        for stream, expected, events in commits:
            check_versions(stream, expected, events)
        if not commits:
            return set()
        await self._ensure()
        now = time.time()
        ids = [_commit_id(stream, expected + 1) for stream, expected, _ in commits]
        await self._record([{"_id": i, "recorded_at": now} for i in ids])
        docs = [{"_id": i, "stream": stream, "first": expected + 1, "last": expected + len(events),
                 "events": [{"topic": t, "envelope": e.model_dump(mode="json")} for t, e in events],
                 "published": False, "recorded_at": now}
                for i, (stream, expected, events) in zip(ids, commits, strict=True)]
        conflicts: set[str] = set()
        try:
            await self.coll.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            conflicts = {commits[e["index"]][0] for e in errors}
        self.appended.set()
        return conflicts

    async def read(self, stream: str) -> list[Envelope]:
        await self._ensure()
        version, known = self._known.get(stream, (0, ()))
        commits = await self._chain(stream, after=version)
        if commits:
            known += tuple(Envelope.model_validate(e["envelope"]) for commit in commits for e in commit["events"])
            version = int(commits[-1]["last"])
        if known and len(known) <= KNOWN_EVENTS:
            self._known[stream] = (version, known)
            self._known.move_to_end(stream)
            if len(self._known) > KNOWN_STREAMS:
                self._known.popitem(last=False)
        return list(known)

    async def pending(self, limit: int = 500) -> list[Pending]:
        await self._ensure()
        await self._adopt_unpublished()
        entries = await self.outbox.find({}).limit(limit).to_list(None)
        found = await asyncio.gather(*(self.coll.find_one({"_id": e["_id"]}) for e in entries))
        now = time.time()
        orphans = [e for e, c in zip(entries, found, strict=True)
                   if c is None and now - e.get("recorded_at", 0.0) > ORPHAN_SECONDS]
        if orphans:  # only if no writer renewed the entry since it was read
            await self.outbox.bulk_write([DeleteOne({"_id": e["_id"], "recorded_at": e.get("recorded_at")})
                                          for e in orphans], ordered=False)
        # marked published, but the entry outlived it (the relay stopped in between): only the entry goes
        done = [c["_id"] for c in found if c is not None and c.get("published")]
        if done:
            await self.outbox.bulk_write([DeleteOne({"_id": i}) for i in done], ordered=False)
        commits = [c for c in found if c is not None and not c.get("published")]
        # within a stream, commits go out in version order whatever order the outbox lists them in
        commits.sort(key=lambda c: (c["stream"], c["first"]))
        out: list[Pending] = []
        for commit in commits:
            for item in commit["events"]:
                out.append(Pending(item["topic"], Envelope.model_validate(item["envelope"]), commit["_id"]))
        return out

    async def mark_published(self, items: list[Pending]) -> None:
        ids = sorted({item.marker for item in items})
        if not ids:
            return
        # point writes by `_id` (a `$in` filter would read every commit on FerretDB 1.x), in bulk, then the entries;
        # on FerretDB in commands small enough not to exhaust its connection pool (UpdateGate): a relay batch of
        # 500 updates sent at once wedged it
        await self.gate.bulk_write(self.coll, [UpdateOne({"_id": i}, {"$set": {"published": True}}) for i in ids])
        await self.outbox.bulk_write([DeleteOne({"_id": i}) for i in ids], ordered=False)
