"""Consumer groups: decode, dispatch by event type, retry with backoff, then dead-letter.

At-least-once: a batch's positions are committed only after every record in it was applied or
dead-lettered. Idempotence: handlers with `dedupe` record each applied event id in the service's
`inbox` collection, so a redelivered event is a no-op; projections keyed by aggregate version
(`apply_versioned`) are idempotent by themselves.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from pydantic import ValidationError

from ppa_contracts import Envelope, Payload, dlq
from ppa_contracts.envelope import new_id
from ppa_contracts.ops import DeadLetter, RecordHeader
from ppa_runtime import metrics, tracing
from ppa_runtime.bus import EventBus, Record, Wire
from ppa_runtime.context import correlated
from ppa_runtime.docstore import Collection, DuplicateKey

log = structlog.get_logger(__name__)

Handler = Callable[[Payload, Envelope], Awaitable[None]]


DIGITS = "0123456789"


@dataclass(frozen=True)
class Shard:
    """One of `count` consumers that split a group's records between them, each with its own positions (like
    partitions, on topics that have one).

    A record of one of `topics` belongs to the shard its subject (its key) leads to: the digit at `position`
    (counted from the end), divided by `count`, leaves `index`; a subject without a digit there belongs to
    shard 0. A record of any other topic (e.g. a whole agency's settings) belongs to every shard, whose handler
    does its shard's part of it (`current_shard`). Subjects that share that digit stay together: a document kept
    per group of subjects that share it has one writer."""

    index: int
    count: int
    topics: frozenset[str]
    position: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count <= len(DIGITS) or self.position >= 0:
            raise ValueError(f"no such shard: {self.index} of {self.count} by the digit at {self.position}")

    def digits(self, index: int | None = None) -> str:
        """The digits that lead to a shard (this one by default)."""
        return DIGITS[self.index if index is None else index::self.count]

    def of(self, subject: str) -> int:
        """The shard a subject of a split topic leads to."""
        ch = subject[self.position] if len(subject) >= -self.position else ""
        return int(ch) % self.count if ch and ch in DIGITS else 0

    def owns(self, topic: str, subject: str) -> bool:
        return topic not in self.topics or self.of(subject) == self.index

    def group(self, group: str) -> str:
        """The shard's own consumer group (its positions)."""
        return f"{group}.shard{self.index}of{self.count}"


def shards_of(spec: ConsumerSpec, count: int) -> list[Shard | None]:
    """The shards a group runs as: [None] (the group itself) unless the spec can be split and count > 1."""
    if spec.split_by is None or count <= 1:
        return [None]
    topics, position = spec.split_by
    return [Shard(i, count, topics, position) for i in range(count)]


def group_of(spec: ConsumerSpec, shard: Shard | None) -> str:
    return spec.group if shard is None else shard.group(spec.group)


_shard: ContextVar[Shard | None] = ContextVar("shard", default=None)


def current_shard() -> Shard | None:
    """The shard of the group whose handler is running (None: the whole group, or a rebuild's replay)."""
    return _shard.get()


@dataclass
class ConsumerSpec:
    """A consumer group: the topics it reads and a handler per event type (an explicit registry)."""

    group: str
    topics: list[str]
    handlers: dict[str, Handler]
    dedupe: bool = True
    batch_size: int = 500
    name: str = ""
    collections: list[str] = field(default_factory=list)  # the read model a rebuild starts afresh
    setup: Callable[[], Awaitable[None]] | None = None  # indexes, run again after a rebuild drops them
    # a whole fetched batch at once (faster); on failure each record goes through `handlers` instead
    on_batch: Callable[[list[Record]], Awaitable[None]] | None = field(default=None)
    # JSON paths `on_batch` picks from each record (Record.pick): the embedded log reads them as it reads the log,
    # and hands over records of `picked_only` types without their JSON (read again if the batch falls back)
    fields: tuple[str, ...] = ()
    picked_only: frozenset[str] = frozenset()
    # (topics, position): the group may run as shards that split these topics' records by a digit of their
    # subject (`Shard`)
    split_by: tuple[frozenset[str], int] | None = None
    # run when the group starts and between fetches (at most every half second), by the group's own task: work
    # that time brings (a new billing month) written by the single writer; it returns at once when nothing is due,
    # and one that fails is tried again at the next turn
    on_tick: Callable[[], Awaitable[None]] | None = None


class Consumer:
    """Runs one consumer group until stopped."""

    def __init__(
        self,
        spec: ConsumerSpec,
        bus: EventBus,
        inbox: Collection,
        max_attempts: int = 5,
        backoff: float = 0.2,
        shard: Shard | None = None,
    ) -> None:
        self.spec = spec
        self.shard = shard
        self.group = group_of(spec, shard)
        self.bus = bus
        self.inbox = inbox
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.applied = 0
        self.running = False

    async def run(self, stop: asyncio.Event) -> None:
        metrics.consumer_started(self.spec.group, self.spec.topics, list(self.spec.handlers))
        sub = await self.bus.subscribe(self.group, self.spec.topics, self.spec.fields, self.spec.picked_only,
                                       shard=self.shard)
        self.running = True
        log.info("consumer_started", group=self.group, topics=self.spec.topics)
        token = _shard.set(self.shard)
        try:
            while not stop.is_set():
                await self._tick()
                fetched = await sub.fetch(timeout=0.5, max_records=self.spec.batch_size)
                if not fetched:
                    continue
                records = [r for r in fetched if not r.skip] if self.shard is not None else fetched
                if records and (self.spec.on_batch is None or not await self.handle_batch(records)):
                    for record in await sub.complete(records):
                        await self.handle(record)
                await sub.commit(fetched)  # another shard's records too: they are that shard's to apply
        finally:
            _shard.reset(token)
            self.running = False
            await sub.close()

    async def _tick(self) -> None:
        if self.spec.on_tick is None:
            return
        try:
            await self.spec.on_tick()
        except Exception as exc:  # tried again at the next turn; the records keep coming meanwhile
            metrics.HANDLER_ERRORS.labels(self.spec.group, "tick").inc()
            log.warning("tick_failed", group=self.group, error=repr(exc))

    async def handle_batch(self, records: list[Record]) -> bool:
        """Apply a fetched batch at once with `on_batch`; False when it failed (then each record is applied
        alone, with retries and dead letters: handlers are idempotent, a partial batch is harmless)."""
        assert self.spec.on_batch is not None
        try:
            with tracing.consuming_batch(self.group, (r.trace for r in records) if tracing.enabled() else ()):
                await self.spec.on_batch(records)
        except Exception as exc:  # any failure: fall back to one record at a time
            log.warning("batch_failed", group=self.spec.group, records=len(records), error=repr(exc))
            return False
        self.applied += len(records)
        metrics.CONSUMER_BATCHES.labels(self.spec.group).inc()
        per_topic: dict[str, int] = {}
        for record in records:
            per_topic[record.topic] = per_topic.get(record.topic, 0) + 1
        for topic, n in per_topic.items():
            metrics.EVENTS_CONSUMED.labels(self.spec.group, topic).inc(n)
        return True

    async def handle(self, record: Record) -> None:
        """Apply one record (retries, then dead letter); never returns having dropped it silently."""
        try:
            env = record.envelope
        except ValidationError as exc:  # not an event at all: no handler can apply it, and retrying cannot help
            await self.dead_letter(record, exc, 1)
            self.applied += 1
            metrics.EVENTS_CONSUMED.labels(self.spec.group, record.topic).inc()
            return
        handler = self.spec.handlers.get(env.type)
        if handler is None:
            return
        with tracing.consuming(self.group, record.topic, env):
            await self._apply(record, env, handler)

    async def _apply(self, record: Record, env: Envelope, handler: Handler) -> None:
        key = f"{self.spec.group}:{env.id}"
        if self.spec.dedupe and await self.inbox.get(key) is not None:
            metrics.EVENTS_DUPLICATE.labels(self.spec.group, record.topic).inc()
            return
        attempt, dead = 0, False
        while True:
            attempt += 1
            try:
                with correlated(env.correlationid, env.id), tracing.span(f"handle {env.type}", attempt=attempt):
                    await handler(env.payload(), env)
                break
            except Exception as exc:  # a handler failure of any kind: retry, then dead-letter
                metrics.HANDLER_ERRORS.labels(self.spec.group, env.type).inc()
                log.warning("handler_failed", group=self.spec.group, event_type=env.type, event_id=env.id,
                            attempt=attempt, error=repr(exc))
                if attempt >= self.max_attempts:
                    await self.dead_letter(record, exc, attempt)
                    dead = True
                    break
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        if self.spec.dedupe:
            try:
                # a dead letter's mark says so: replaying it removes exactly this mark (see ppa_runtime.ops)
                await self.inbox.insert({"_id": key, "topic": record.topic, "offset": record.offset,
                                         **({"dead_letter": True} if dead else {})})
            except DuplicateKey:
                pass
        self.applied += 1
        metrics.EVENTS_CONSUMED.labels(self.spec.group, record.topic).inc()

    async def dead_letter(self, record: Record, exc: Exception, attempts: int) -> None:
        """Publish the original event with the error to `<topic>.dlq` (a record that is no valid envelope too,
        as it was read: an operator can only discard that one)."""
        try:
            env: Envelope | None = record.envelope
        except ValidationError:
            env = None
        if isinstance(exc, ValidationError):  # where and what, without the input (it may hold a secret)
            error = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(record)'}: {e['msg']}"
                              for e in exc.errors(include_input=False, include_url=False))
            error = f"{type(exc).__name__}: {error}"
        else:
            error = f"{type(exc).__name__}: {exc}"
        original = record.as_json()
        letter = DeadLetter(original=original, original_topic=record.topic, consumer_group=self.spec.group,
                            error=error[:2000], attempts=attempts, original_partition=record.partition,
                            original_offset=record.offset, **_as_read(record.wire))
        key = letter.original_key or ""
        if env is not None:
            subject, correlation, cause, kind = env.subject, env.correlationid, env.id, env.type
        else:
            # a dead letter is a CloudEvent too: its subject (and so its key) is never empty
            subject = _text(original.get("subject")) or key or f"{record.topic}/{record.partition}/{record.offset}"
            cause, kind = None, _text(original.get("type"))
            correlation = _text(original.get("correlationid")) or new_id()
        await self.bus.publish(
            dlq(record.topic), [Envelope.wrap(letter, subject=subject, correlation_id=correlation, causation_id=cause)])
        metrics.DEAD_LETTERS.labels(self.spec.group, record.topic).inc()
        log.error("event_dead_lettered", group=self.spec.group, event_type=kind, event_id=cause or original.get("id"),
                  attempts=attempts, offset=record.offset, valid_envelope=env is not None)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _text_or_base64(raw: bytes) -> tuple[str | None, str | None]:
    try:
        return raw.decode(), None
    except UnicodeDecodeError:
        return None, base64.b64encode(raw).decode()


def _as_read(wire: Wire | None) -> dict[str, Any]:
    """A dead letter's copy of the record as the broker handed it over: key, headers, and value unless it is JSON
    (that is `original.data` already)."""
    if wire is None:
        return {}
    out: dict[str, Any] = {}
    if wire.key is not None:
        out["original_key"], out["original_key_base64"] = _text_or_base64(wire.key)
    out["original_headers"] = [RecordHeader(name=name, **dict(zip(("value", "value_base64"), _text_or_base64(raw),
                                                                  strict=True)))
                               for name, raw in wire.headers]
    if wire.value:
        try:
            orjson.loads(wire.value)
        except orjson.JSONDecodeError:
            out["original_value_base64"] = base64.b64encode(wire.value).decode()
    return out


async def apply_versioned(coll: Collection, doc_id: str, version: int, update: dict) -> bool:
    """Apply an update to a projection document once per aggregate version (idempotent, order-safe).

    The document records the last applied version in `_v`; a repeat or older event matches nothing.

    The document is read by `_id` first: a repeat ends there, and a new document is inserted. Only a newer version
    of a stored document is the conditional update `{_id, _v < version}`, which stays atomic on MongoDB; on a
    MongoDB-protocol server that serves nothing but `{_id: x}` from an index (FerretDB 1.24) that filter reads the
    whole collection, so the repeats and first applications (most of them: every consumer applies every event,
    a bulk import writes the read model before its consumers apply it) no longer pay it.
    """
    update = {**update, "$set": {**update.get("$set", {}), "_v": version}}
    stored = await coll.get(doc_id)
    if stored is not None and stored.get("_v", 0) >= version:
        return False
    if stored is None and (doc := _inserted(doc_id, update)) is not None:
        try:
            await coll.insert(doc)
            return True
        except DuplicateKey:
            pass  # written meanwhile (or another unique index): decided by the conditional update, as before
    try:
        return await coll.update({"_id": doc_id, "_v": {"$lt": version}}, update, upsert=True)
    except DuplicateKey:
        return False


async def apply_versioned_new(coll: Collection, updates: list[tuple[str, int, dict]]) -> dict[str, dict] | None:
    """`apply_versioned` for many documents at once (doc id, version, update), where each is new or already at its
    version (first applications and repeats: an import's registrations), in two round trips: one read, one insert.
    The documents as they now are, by id; None when that does not hold (a document named twice, stored at an older
    version, or written meanwhile): nothing more is written then, and the caller applies each update with
    `apply_versioned` (what was inserted is a repeat there)."""
    ids = [doc_id for doc_id, _, _ in updates]
    if len(set(ids)) != len(ids):
        return None
    stored = await coll.get_many(ids)
    if any(doc.get("_v", 0) < version for doc_id, version, _ in updates if (doc := stored.get(doc_id)) is not None):
        return None
    fresh = [_inserted(doc_id, {**update, "$set": {**update.get("$set", {}), "_v": version}})
             for doc_id, version, update in updates if doc_id not in stored]
    if any(doc is None for doc in fresh):
        return None
    docs = [doc for doc in fresh if doc is not None]
    if await coll.insert_many(docs) != len(docs):
        return None
    return stored | {doc["_id"]: doc for doc in docs}


def _inserted(doc_id: str, update: dict) -> dict[str, Any] | None:
    """The document an upsert of `update` would create where none is stored; None for an update it cannot say
    so simply (another operator, a dotted path)."""
    if set(update) - {"$set", "$unset", "$inc"} or any("." in k for op in update.values() for k in op):
        return None
    return {**update.get("$inc", {}), **update["$set"], "_id": doc_id}


async def record_deletion(deletions: Collection, doc_id: str, version: int) -> None:
    """Keep the version a projection document was deleted at: the document goes, and its `_v` with it, so an
    older event applied late (by another writer, or redelivered) would otherwise bring it back."""
    await apply_versioned(deletions, doc_id, version, {})


async def deleted_after(deletions: Collection, doc_id: str, version: int) -> int:
    """The version `doc_id` was deleted at (`record_deletion`) when that came after `version`; else 0."""
    deletion = await deletions.get(doc_id)
    return deletion["_v"] if deletion is not None and deletion["_v"] > version else 0
