"""What every service provides to the host: routers, consumer groups, and an event-sourced write path."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import ClassVar

from fastapi import APIRouter

from ppa_contracts import Envelope, Payload
from ppa_runtime import tracing
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.context import causation_id, correlation_id
from ppa_runtime.rebuild import SideEffectInRebuild, rebuilding
from ppa_runtime.runtime import Runtime


class Service:
    """Base of a service: owns an event store and a document store; no I/O at construction."""

    name: ClassVar[str]
    has_outbox: ClassVar[bool] = True

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.events = runtime.eventstore(self.name)
        self.docs = runtime.docstore(self.name)

    async def start(self) -> None:
        """Create indexes and anything else needed before serving (idempotent)."""

    def routers(self) -> list[APIRouter]:
        """The public HTTP routes of this service (JSON API and pages)."""
        return []

    def consumers(self) -> list[ConsumerSpec]:
        """The consumer groups this service's worker runs."""
        return []

    def background(self) -> list[Callable[[asyncio.Event], Awaitable[None]]]:
        """Loops the service's worker runs beside its consumers (each until the event is set)."""
        return []

    async def record(self, stream: str, expected_version: int, *payloads: Payload, subject: str) -> int:
        """Append payloads to a stream as envelopes that carry the current correlation id.

        Payloads whose `event_topic` is None are private to the service and never published.
        """
        if rebuilding():  # replaying history must not act on it again (mails, revisions) from partial state
            raise SideEffectInRebuild(f"a handler of projection {rebuilding()} records events: it cannot be rebuilt")
        correlation = correlation_id()  # one commit, one correlation id, even outside any request
        with tracing.span("eventstore append", **{"ppa.service": self.name, "ppa.stream": stream.split(":")[0]}):
            return await self._append(stream, expected_version, payloads, subject, correlation)

    async def _append(self, stream: str, expected_version: int, payloads: tuple[Payload, ...], subject: str,
                      correlation: str) -> int:
        envelopes = [
            (
                p.event_topic,
                Envelope.wrap(
                    p,
                    subject=subject,
                    correlation_id=correlation,
                    causation_id=causation_id(),
                    aggregate_version=expected_version + i,
                ),
            )
            for i, p in enumerate(payloads, start=1)
        ]
        return await self.events.append(stream, expected_version, envelopes)

    async def record_many(self, commits: list[tuple[str, int, Payload, str]]) -> set[str]:
        """Append one payload to each of many streams (stream, expected version, payload, subject) in one write
        (a bulk command: each stream still gets its own event); returns the streams that conflicted."""
        if rebuilding():
            raise SideEffectInRebuild(f"a handler of projection {rebuilding()} records events: it cannot be rebuilt")
        correlation, cause = correlation_id(), causation_id()
        return await self.events.append_many([
            (stream, expected, [(p.event_topic, Envelope.wrap(p, subject=subject, correlation_id=correlation,
                                                              causation_id=cause, aggregate_version=expected + 1))])
            for stream, expected, p, subject in commits])
