"""Document store on MongoDB (or a MongoDB-protocol server such as FerretDB) via pymongo's async API."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from ppa_runtime.docstore import DuplicateKey, Filter, Sort


class MongoCollection:
    """Thin adapter over an AsyncCollection that speaks the port's vocabulary."""

    def __init__(self, coll: AsyncCollection) -> None:
        self.coll = coll

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
            return int(exc.details.get("nInserted", 0))

    async def get(self, doc_id: str) -> dict[str, Any] | None:
        return await self.coll.find_one({"_id": doc_id})

    async def find(
        self, filter: Filter | None = None, sort: Sort | None = None, skip: int = 0, limit: int = 0
    ) -> list[dict[str, Any]]:
        cursor = self.coll.find(filter or {})
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
            await self.coll.replace_one({"_id": doc["_id"]}, dict(doc), upsert=True)
        except DuplicateKeyError as exc:
            raise DuplicateKey(str(exc)) from exc

    async def delete(self, filter: Filter) -> int:
        return (await self.coll.delete_many(filter)).deleted_count

    async def drop(self) -> None:
        await self.coll.drop()


class MongoDocStore:
    """The documents of one service in its own MongoDB database."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db

    def collection(self, name: str) -> MongoCollection:
        return MongoCollection(self.db[name])
