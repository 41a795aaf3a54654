"""Document store port: the small MongoDB subset every service's read models and state use.

Documents are JSON values only (strings, numbers, booleans, lists, objects); decimals are stored as
strings, dates as ISO strings. Filters use MongoDB's syntax: equality, `$eq $ne $gt $gte $lt $lte
$in $nin $exists $regex` (with `$options: "i"`), `$or` and `$and`. Updates: `$set $unset $inc $push
$setOnInsert`. Every update touches one document atomically.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

Filter = dict[str, Any]
Sort = list[tuple[str, int]]


class DuplicateKey(Exception):
    """A document with the same `_id` or unique index key exists already."""


class Collection(Protocol):
    # True where a filter other than `_id` equality (`$in` on `_id` too) is one pass over the whole collection,
    # comparing every document with every listed value (FerretDB 1.x): a caller with thousands of ids to look up
    # reads what it needs once instead of asking batch by batch.
    in_is_pass: bool

    async def ensure_index(self, *fields: str, unique: bool = False) -> None: ...

    async def insert(self, doc: dict[str, Any]) -> None: ...

    async def insert_many(self, docs: list[dict[str, Any]]) -> int:
        """Insert documents, skipping any whose `_id` exists already; returns how many were new."""
        ...

    async def get(self, doc_id: str) -> dict[str, Any] | None: ...

    async def get_many(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The documents with these `_id`s that exist, by id: point lookups, one round trip where possible."""
        ...

    async def find(
        self, filter: Filter | None = None, sort: Sort | None = None, skip: int = 0, limit: int = 0,
        without: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        """Matching documents; `without` names top-level fields left out of them (never `_id`)."""
        ...

    async def count(self, filter: Filter | None = None) -> int: ...

    async def update(self, filter: Filter, update: dict[str, Any], upsert: bool = False) -> bool:
        """Update the first matching document; True when one matched or was inserted."""
        ...

    async def replace(self, doc: dict[str, Any]) -> None:
        """Insert or overwrite the document with this `_id`."""
        ...

    async def replace_many(self, docs: list[dict[str, Any]]) -> None:
        """Insert or overwrite each document by `_id` (one transaction on SQLite, one bulk write on MongoDB)."""
        ...

    async def delete(self, filter: Filter) -> int: ...

    async def drop(self) -> None: ...

    async def drop_index(self, *fields: str) -> None:
        """Drop the index `ensure_index(*fields)` made (nothing when there is none)."""
        ...

    async def swap_in(self, shadow: str) -> None:
        """Atomically replace this collection (documents and indexes) with the collection `shadow`, which ends."""
        ...


# Collection names redirected for the task in hand: a rebuild writes a projection into a shadow copy
# through the very handlers the live consumer uses, while readers and that consumer keep the original.
_redirects: ContextVar[dict[str, str]] = ContextVar("collection_redirects", default={})


@contextmanager
def redirected(mapping: dict[str, str]) -> Iterator[None]:
    """Within this block (and the tasks it starts), collections named in `mapping` use the mapped name."""
    token = _redirects.set({**_redirects.get(), **mapping})
    try:
        yield
    finally:
        _redirects.reset(token)


def physical(name: str) -> str:
    """The collection name actually used for `name` in the current context."""
    return _redirects.get().get(name, name)


class DocStore(Protocol):
    def collection(self, name: str) -> Collection: ...


def apply_update(doc: dict[str, Any], update: dict[str, Any], inserting: bool) -> dict[str, Any]:
    """Apply MongoDB update operators to a copy of `doc` (for backends that have none)."""
    out = copy.deepcopy(doc)
    for op, fields in update.items():
        if op == "$setOnInsert" and not inserting:
            continue
        for path, value in fields.items():
            parent, key = _walk(out, path)
            if op in ("$set", "$setOnInsert"):
                parent[key] = value
            elif op == "$unset":
                parent.pop(key, None)
            elif op == "$inc":
                parent[key] = parent.get(key, 0) + value
            elif op == "$push":
                items = value["$each"] if isinstance(value, dict) and "$each" in value else [value]
                parent[key] = list(parent.get(key, [])) + list(items)
            else:
                raise ValueError(f"unsupported update operator {op}")
    return out


def _walk(doc: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = dict(child or {})
            node[part] = child
        node = child
    return node, parts[-1]


def equality_fields(filter: Filter) -> dict[str, Any]:
    """The plain `field: value` parts of a filter (what an upsert copies into the new document)."""
    out: dict[str, Any] = {}
    for key, value in filter.items():
        if key.startswith("$"):
            continue
        if isinstance(value, dict) and any(k.startswith("$") for k in value):
            if "$eq" in value:
                out[key] = value["$eq"]
            continue
        out[key] = value
    return out
