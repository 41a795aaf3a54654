"""Event store port: streams with optimistic concurrency, and the outbox a relay publishes from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ppa_contracts import Envelope


class ConcurrencyConflict(Exception):
    """The stream moved on since the caller read it: re-read and decide again."""

    def __init__(self, stream: str, expected: int) -> None:
        super().__init__(f"stream {stream} is no longer at version {expected}")
        self.stream = stream
        self.expected = expected


@dataclass(frozen=True)
class Pending:
    """A stored event not yet published, with the marker that records its publication."""

    topic: str | None
    envelope: Envelope
    marker: Any


class EventStore(Protocol):
    async def append(self, stream: str, expected_version: int, events: list[tuple[str | None, Envelope]]) -> int:
        """Append (topic, event) pairs at versions expected+1.. atomically; raises ConcurrencyConflict.

        A topic of None keeps the event private to the service: stored, folded, never published.
        """
        ...

    async def append_many(self, commits: list[tuple[str, int, list[tuple[str | None, Envelope]]]]) -> set[str]:
        """Append many streams' commits (stream, expected version, events) in one write where the store allows;
        each commit is stored whole or not at all, and the streams whose commit conflicted are returned."""
        ...

    async def read(self, stream: str) -> list[Envelope]: ...

    async def pending(self, limit: int = 500) -> list[Pending]: ...

    async def mark_published(self, items: list[Pending]) -> None: ...


def check_versions(stream: str, expected: int, events: list[tuple[str | None, Envelope]]) -> None:
    """Every event must carry its own stream version, consecutive after the expected one."""
    for offset, (_, env) in enumerate(events, start=1):
        if env.aggregateversion != expected + offset:
            raise ValueError(
                f"event {env.type} carries version {env.aggregateversion}, expected {expected + offset}"
            )
