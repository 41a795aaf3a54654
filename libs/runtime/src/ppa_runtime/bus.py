"""Event bus port: publish to topics; consumer groups read partitions and commit their positions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson

from ppa_contracts import Envelope

if TYPE_CHECKING:
    from ppa_runtime.consumer import Shard


@dataclass(frozen=True, slots=True)
class Wire:
    """A record's key, headers and value bytes, as read from the broker."""

    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    value: bytes | None


class Record:
    """One event as read from a topic partition.

    A bus hands over the decoded JSON (`raw`: the structured-mode attributes with `data`), or the JSON text,
    decoded the first time something asks for it; the envelope model is validated the first time `envelope` is
    asked for. Batch handlers that read only `type`, `data` and `aggregateversion` skip that validation, which
    costs more than the rest of their work per event, and those that read only a few values (`pick`) skip the
    decoding too when the log has read the values for them.
    """

    __slots__ = ("topic", "partition", "offset", "skip", "wire", "_envelope", "_raw", "_text", "_picked")

    def __init__(self, topic: str, partition: int, offset: int, envelope: Envelope | None = None, *,
                 raw: dict[str, Any] | None = None, text: str | None = None,
                 picked: tuple[tuple[str, ...], tuple[Any, ...]] | None = None, skip: bool = False,
                 wire: Wire | None = None) -> None:
        if envelope is None and raw is None and text is None and picked is None:
            raise ValueError("a record needs its envelope, its decoded JSON, its JSON text or picked values")
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.skip = skip  # another shard's: handed over only to be committed with the rest (Shard)
        self.wire = wire  # the record as a broker handed it over, where there is one (a dead letter keeps it)
        self._envelope = envelope
        self._raw = raw
        self._text = text
        self._picked = picked  # (paths, their values) as read by the log

    def _json(self) -> dict[str, Any]:
        if self._raw is None:
            if self._text is None:
                raise LookupError(f"{self!r} was read with picked values only: its subscription's `complete` reads "
                                  "the rest")
            self._raw = orjson.loads(self._text)
        return self._raw

    @property
    def envelope(self) -> Envelope:
        if self._envelope is None:
            self._envelope = Envelope.model_validate(self._json())
        return self._envelope

    @property
    def type(self) -> str:
        if self._envelope is not None:
            return self._envelope.type
        if not self.whole and self._picked is not None and "$.type" in self._picked[0]:
            return str(self._picked[1][self._picked[0].index("$.type")])
        return str(self._json()["type"])

    @property
    def data(self) -> dict[str, Any]:
        """The payload's JSON, not validated against its model."""
        return self._envelope.data if self._envelope is not None else self._json()["data"]

    @property
    def aggregateversion(self) -> int | None:
        if self._envelope is not None:
            return self._envelope.aggregateversion
        value = self._json().get("aggregateversion")
        return None if value is None else int(value)  # a Kafka header carries it as text

    @property
    def correlationid(self) -> str:
        if self._envelope is not None:
            return self._envelope.correlationid
        return str(self._json()["correlationid"])

    @property
    def trace(self) -> tuple[str | None, str | None]:
        """The W3C trace context the event carries ((traceparent, tracestate)); (None, None) when it carries none
        or was handed over with picked values only (nothing is read again for it)."""
        if self._envelope is not None:
            return self._envelope.traceparent, self._envelope.tracestate
        if not self.whole:
            return None, None
        doc = self._json()
        parent, state = doc.get("traceparent"), doc.get("tracestate")
        return (parent if isinstance(parent, str) else None), (state if isinstance(state, str) else None)

    def pick(self, paths: tuple[str, ...]) -> tuple[Any, ...]:
        """The values at JSON paths (`$.type`, `$.data.date`: object keys only) of the record's structured-mode
        JSON, None where a path leads nowhere: as the log read them when a subscription was asked for these paths
        (the embedded log reads them in SQLite, without decoding the record in Python), else from the decoded JSON.
        An attribute carried in a Kafka header is text there (`aggregateversion`)."""
        if self._picked is not None and self._picked[0] == paths:
            return self._picked[1]
        doc = self.as_json() if self._raw is None and self._text is None else self._json()
        return tuple(_at(doc, path) for path in paths)

    def as_json(self) -> dict[str, Any]:
        """The record's structured-mode JSON: the envelope's, or the decoded JSON when it is no valid envelope."""
        if self._envelope is not None:
            return self._envelope.model_dump(mode="json")
        return dict(self._json())

    @property
    def id(self) -> str:
        return self._envelope.id if self._envelope is not None else str(self._json()["id"])

    @property
    def whole(self) -> bool:
        """Whether the record has its JSON (not only picked values)."""
        return self._envelope is not None or self._raw is not None or self._text is not None

    def __repr__(self) -> str:
        try:
            kind = self.type
        except LookupError:
            kind = "(picked values only)"
        return f"Record({self.topic!r}, {self.partition}, {self.offset}, type={kind!r})"


@dataclass(frozen=True)
class GroupLag:
    """Where a consumer group stands on one partition."""

    group: str
    topic: str
    partition: int
    committed: int
    end: int
    committed_at: datetime | None = None  # when the group last committed on this partition, if known
    pending_since: datetime | None = None  # when the oldest record it has not yet done was appended

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


@lru_cache(maxsize=256)
def _keys(path: str) -> tuple[str, ...]:
    if not path.startswith("$"):
        raise ValueError(f"a JSON path starts with $: {path!r}")
    return tuple(path[2:].split(".")) if path != "$" else ()


def _at(doc: Any, path: str) -> Any:
    """The value at a JSON path of the form `$.a.b` (object keys only), None where it leads nowhere."""
    for key in _keys(path):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


Position = tuple[str, int]  # (topic, partition)
Start = Mapping[Position, int] | Literal["beginning", "end"]


class Subscription(Protocol):
    async def fetch(self, timeout: float, max_records: int = 500) -> list[Record]: ...

    async def commit(self, records: list[Record]) -> None:
        """Record that everything up to and including these records is done."""
        ...

    async def complete(self, records: list[Record]) -> list[Record]:
        """The records, each with its JSON (those handed over with picked values only are read again)."""
        ...

    async def close(self) -> None: ...


class Tail(Protocol):
    """A reader of every partition of some topics that belongs to no group and commits nothing."""

    async def fetch(self, timeout: float, max_records: int = 500) -> list[Record]: ...

    def positions(self) -> dict[Position, int]:
        """The next offset this reader will return, per partition."""
        ...

    async def close(self) -> None: ...


class Leadership(Protocol):
    """Held by one process at a time of all that ask the bus for the same name (on Kafka: the member of a consumer
    group that the group's single partition is assigned to), for work that must not run in every replica."""

    held: asyncio.Event  # set while this process holds it

    def turn(self) -> AbstractAsyncContextManager[bool]:
        """One step of the leader's work: yields whether this process holds the leadership; a hand-over to another
        process waits for the step in progress to end."""
        ...

    async def close(self) -> None:
        """Leave: another process takes over at once."""
        ...


class SoleLeadership:
    """Where one process runs each service's worker (the embedded runtime): always held."""

    def __init__(self) -> None:
        self.held = asyncio.Event()
        self.held.set()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[bool]:
        yield True

    async def close(self) -> None:
        return None


class EventBus(Protocol):
    async def publish(self, topic: str, events: list[Envelope], timeout: float | None = None) -> None:
        """Durably publish events, keyed by their subject, in order; with `timeout`, raise
        ppa_runtime.readiness.Unavailable when the bus has not taken them after that many seconds."""
        ...

    async def subscribe(self, group: str, topics: list[str], fields: tuple[str, ...] = (),
                        picked_only: frozenset[str] = frozenset(), shard: Shard | None = None) -> Subscription:
        """A member of a consumer group; `fields`: JSON paths its records' `pick` is asked for, which a log may
        read for it as it reads the records; `picked_only`: event types of which the reader needs nothing else,
        which a log may hand over without their JSON (`complete` reads it); `shard`: the records of other shards
        come as `skip` records (offsets only, where the log can tell them apart as it reads)."""
        ...

    async def replay(self, topic: str, handle: Callable[[Record], Awaitable[None]]) -> int:
        """Feed every record from the start of the topic up to its current end; returns the count."""
        ...

    async def lag(self, group: str, topics: list[str]) -> list[GroupLag]: ...

    async def topics(self) -> list[str]:
        """Every topic that exists on this bus (logical names, dead-letter topics included)."""
        ...

    async def ends(self, topics: list[str]) -> dict[Position, int]:
        """The offset the next record of each partition will get."""
        ...

    async def offsets_at(self, topics: list[str], times: list[datetime]) -> list[dict[Position, int]]:
        """Per time, per partition: the first offset appended at or after it (the end when none is)."""
        ...

    async def tail(self, topics: list[str], start: Start = "end") -> Tail:
        """Read these topics from a position without a group; partitions missing from a mapping start at 0."""
        ...

    async def leadership(self, name: str) -> Leadership:
        """Join the processes that ask for `name`; one of them holds it at a time."""
        ...

    async def close(self) -> None: ...
