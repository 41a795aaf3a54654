"""Event bus port: publish to topics; consumer groups read partitions and commit their positions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ppa_contracts import Envelope


@dataclass(frozen=True)
class Record:
    """One event as read from a topic partition."""

    topic: str
    partition: int
    offset: int
    envelope: Envelope


@dataclass(frozen=True)
class GroupLag:
    """Where a consumer group stands on one partition."""

    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


class Subscription(Protocol):
    async def fetch(self, timeout: float, max_records: int = 500) -> list[Record]: ...

    async def commit(self, records: list[Record]) -> None:
        """Record that everything up to and including these records is done."""
        ...

    async def close(self) -> None: ...


class EventBus(Protocol):
    async def publish(self, topic: str, events: list[Envelope]) -> None:
        """Durably publish events, keyed by their subject, in order."""
        ...

    async def subscribe(self, group: str, topics: list[str]) -> Subscription: ...

    async def replay(self, topic: str, handle: Callable[[Record], Awaitable[None]]) -> int:
        """Feed every record from the start of the topic up to its current end; returns the count."""
        ...

    async def lag(self, group: str, topics: list[str]) -> list[GroupLag]: ...

    async def close(self) -> None: ...
