"""Document store on MongoDB (or a MongoDB-protocol server such as FerretDB) via pymongo's async API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from pymongo import ASCENDING, DESCENDING, ReplaceOne, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from ppa_runtime import metrics
from ppa_runtime.docstore import DuplicateKey, Filter, Sort, physical

# FerretDB 1.24 keeps one of a database's pooled connections (100 on SQLite, `pool_max_conns` on PostgreSQL) per
# statement of an `update` command that matched a document until the command ends, and takes one more to write:
# once the held connections reach the pool, every command on that database waits forever (docs/mongodb-server.md).
FERRETDB_UPDATE_STATEMENTS = 40
IN_IDS = 1000  # ids per `$in` query of `get_many` on MongoDB
FIND_BATCH = 2000  # documents per reply of a `find`

log = structlog.get_logger(__name__)


class UpdateGate:
    """How update commands go out: on MongoDB as they come; on FerretDB (`limit`) at most `limit` statements per
    command, and at most `limit` statements in flight per database from this process (a single update is one), so
    a process holds at most about `limit` of a database's connections: the API and a worker of one service
    together stay under the SQLite backend's pool of 100."""

    def __init__(self, limit: int | None = FERRETDB_UPDATE_STATEMENTS) -> None:
        self.limit = limit
        self._free: dict[str, int] = {}
        self._changed: dict[str, asyncio.Condition] = {}

    @asynccontextmanager
    async def held(self, coll: AsyncCollection, statements: int = 1) -> AsyncIterator[None]:
        """Room for an update command of this many statements (≤ limit) on the collection's database."""
        if self.limit is None:
            yield
            return
        db = coll.database.name
        changed = self._changed.setdefault(db, asyncio.Condition())
        async with changed:
            await changed.wait_for(lambda: self._free.setdefault(db, self.limit) >= statements)
            self._free[db] -= statements
        try:
            yield
        finally:
            async with changed:
                self._free[db] += statements
                changed.notify_all()

    async def bulk_write(self, coll: AsyncCollection, ops: list[Any]) -> None:
        """`ops` as unordered bulk writes; BulkWriteError from the first chunk that has one (earlier chunks stay
        written, as some of one unordered bulk write would)."""
        step = self.limit or len(ops) or 1
        for at in range(0, len(ops), step):
            chunk = ops[at:at + step]
            async with self.held(coll, len(chunk)):
                await coll.bulk_write(chunk, ordered=False)


class CommandCounter(monitoring.CommandListener):
    """Counts the commands (round trips) a process sends to MongoDB, by name, in a Prometheus counter; with
    `slow_ms`, logs each command that took longer (`mongodb_command_slow`) with the shape of what it asked, never
    its values: the query that scans a collection is found in the log, not guessed."""

    def __init__(self, slow_ms: int = 0) -> None:
        self._counters: dict[str, Any] = {}
        self.slow_us = slow_ms * 1000
        self._asked: dict[tuple[Any, int], dict[str, Any]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        counter = self._counters.get(event.command_name)
        if counter is None:
            counter = self._counters[event.command_name] = metrics.MONGODB_COMMANDS.labels(event.command_name)
        counter.inc()
        if self.slow_us:
            self._asked[(event.connection_id, event.request_id)] = command_shape(event.command_name, event.command)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._ended(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._ended(event)

    def _ended(self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent) -> None:
        if not self.slow_us:
            return
        asked = self._asked.pop((event.connection_id, event.request_id), None)
        if asked is not None and event.duration_micros >= self.slow_us:
            log.warning("mongodb_command_slow", ms=event.duration_micros // 1000, database=event.database_name,
                        **asked)


SHAPED = ("filter", "sort", "q", "query")  # the parts of a command whose shape says how the server can answer it


def command_shape(name: str, command: Any) -> dict[str, Any]:
    """A command's name, collection and the shape of its filter and sort (keys and operators; every value a `?`,
    a list `[n]`): enough to see which query scans, nothing of the data (a filter may hold a secret's hash)."""
    out: dict[str, Any] = {"command": name, "collection": command.get(name) if isinstance(command.get(name), str)
                           else None}
    for part in SHAPED:
        if part in command:
            out[part] = _shape(command[part])
    for many in ("updates", "deletes"):
        if many in command and command[many]:
            out[f"{many}[0].q"] = _shape(command[many][0].get("q"))
            out[many] = len(command[many])
    if "documents" in command:
        out["documents"] = len(command["documents"])
    return out


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return f"[{len(value)}]"
    return "?"


class MongoCollection:
    """Thin adapter over an AsyncCollection that speaks the port's vocabulary."""

    def __init__(self, db: AsyncDatabase, name: str, gate: UpdateGate | None = None,
                 in_is_pass: bool | None = None) -> None:
        self.db = db
        self.name = name
        self.gate = gate or UpdateGate()
        # FerretDB (see get_many) and mongo-java-server compare every document with every `$in` value
        self.in_is_pass = self.gate.limit is not None if in_is_pass is None else in_is_pass

    @property
    def coll(self) -> AsyncCollection:
        return self.db[physical(self.name)]

    async def ensure_index(self, *fields: str, unique: bool = False) -> None:
        await self.coll.create_index([(f, ASCENDING) for f in fields], unique=unique)

    async def insert(self, doc: dict[str, Any]) -> None:
        try:
            await self.coll.insert_one(dict(doc))
        except DuplicateKeyError as exc:
            raise DuplicateKey(str(exc)) from exc

    async def insert_many(self, docs: list[dict[str, Any]]) -> int:
        if not docs:
            return 0
        try:
            result = await self.coll.insert_many([dict(d) for d in docs], ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            # unordered: every document was inserted or has its error (mongo-java-server miscounts `nInserted`)
            return len(docs) - len({e["index"] for e in errors})

    async def get(self, doc_id: str) -> dict[str, Any] | None:
        return await self.coll.find_one({"_id": doc_id})

    async def get_many(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return {}
        if self.gate.limit is None:  # MongoDB: `$in` on `_id` is an index range, one round trip per 1,000 ids
            out: dict[str, dict[str, Any]] = {}
            for at in range(0, len(ids), IN_IDS):
                out |= {d["_id"]: d async for d in self.coll.find({"_id": {"$in": ids[at:at + IN_IDS]}})}
            return out
        # FerretDB 1.x pushes down only `{_id: value}` (an `$in` compares every document of the collection with
        # every listed id): one point lookup per id, concurrently
        found = await asyncio.gather(*(self.coll.find_one({"_id": i}) for i in ids))
        return {i: d for i, d in zip(ids, found, strict=True) if d is not None}

    async def find(
        self, filter: Filter | None = None, sort: Sort | None = None, skip: int = 0, limit: int = 0,
        without: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        if "_id" in without:
            raise ValueError("cannot leave out '_id'")
        # batches of at most FIND_BATCH documents: mongo-java-server otherwise answers a large find in one reply
        # past the protocol's 48 MB message limit (MongoDB itself caps a batch at 16 MB)
        cursor = self.coll.find(filter or {}, {f: 0 for f in without} or None, batch_size=FIND_BATCH)
        if sort:
            cursor = cursor.sort([(f, DESCENDING if d < 0 else ASCENDING) for f, d in sort])
        if skip:
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        return await cursor.to_list(None)

    async def count(self, filter: Filter | None = None) -> int:
        return await self.coll.count_documents(filter or {})

    async def update(self, filter: Filter, update: dict[str, Any], upsert: bool = False) -> bool:
        try:
            async with self.gate.held(self.coll):
                result = await self.coll.update_one(filter, update, upsert=upsert)
        except DuplicateKeyError as exc:
            raise DuplicateKey(str(exc)) from exc
        except OperationFailure as exc:
            # FerretDB 1.x reports a unique-index violation by an update as InternalError (code 1)
            if "duplicate" in str(exc).lower() or "E11000" in str(exc):
                raise DuplicateKey(str(exc)) from exc
            raise
        return result.matched_count > 0 or result.upserted_id is not None

    async def replace(self, doc: dict[str, Any]) -> None:
        try:
            async with self.gate.held(self.coll):
                await self.coll.replace_one({"_id": doc["_id"]}, dict(doc), upsert=True)
        except DuplicateKeyError as exc:
            raise DuplicateKey(str(exc)) from exc

    async def replace_many(self, docs: list[dict[str, Any]]) -> None:
        if not docs:
            return
        try:
            await self.gate.bulk_write(self.coll, [ReplaceOne({"_id": d["_id"]}, dict(d), upsert=True) for d in docs])
        except BulkWriteError as exc:
            if any(e.get("code") == 11000 for e in exc.details.get("writeErrors", [])):
                raise DuplicateKey(str(exc)) from exc
            raise

    async def delete(self, filter: Filter) -> int:
        return (await self.coll.delete_many(filter)).deleted_count

    async def drop(self) -> None:
        await self.coll.drop()

    async def drop_index(self, *fields: str) -> None:
        try:
            await self.coll.drop_index([(f, ASCENDING) for f in fields])
        except OperationFailure as exc:
            # IndexNotFound, NamespaceNotFound (FerretDB 1.x words them, and numbers some, its own way)
            if exc.code not in (26, 27) and "not found" not in str(exc).lower() and "exist" not in str(exc).lower():
                raise

    async def swap_in(self, shadow: str) -> None:
        target = physical(self.name)
        if shadow not in await self.db.list_collection_names(filter={"name": shadow}):
            await self.db[target].drop()  # an empty rebuild leaves no collection behind
            return
        try:
            await self.db[shadow].rename(target, dropTarget=True)
        except OperationFailure as exc:
            if exc.code != 238:  # NotImplemented: FerretDB 1.x renames only onto a free name
                raise
            # two steps there: readers may find the collection empty for the moment between them
            await self.db[target].drop()
            await self.db[shadow].rename(target)


class MongoDocStore:
    """The documents of one service in its own MongoDB database."""

    def __init__(self, db: AsyncDatabase, gate: UpdateGate | None = None, in_is_pass: bool | None = None) -> None:
        self.db = db
        self.gate = gate or UpdateGate()
        self.in_is_pass = in_is_pass

    def collection(self, name: str) -> MongoCollection:
        return MongoCollection(self.db, name, self.gate, self.in_is_pass)
