"""Outbox relay: publishes every stored event, in store order, and then records how far it got.

A crash between publishing and recording republishes the same events (at-least-once on the wire);
consumers are idempotent, so nothing is lost and nothing counts twice.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import structlog

from ppa_runtime import metrics
from ppa_runtime.bus import EventBus, Leadership, SoleLeadership
from ppa_runtime.eventstore import EventStore

log = structlog.get_logger(__name__)


class OutboxRelay:
    """Moves a service's stored events onto the bus."""

    def __init__(self, service: str, store: EventStore, bus: EventBus, idle_poll: float = 0.25) -> None:
        self.service = service
        self.store = store
        self.bus = bus
        self.idle_poll = idle_poll
        self.published = 0

    async def run_once(self) -> int:
        """Publish one batch; returns how many events went out."""
        items = await self.store.pending()
        if not items:
            return 0
        by_topic: dict[str, list] = defaultdict(list)
        for item in items:
            if item.topic is not None:
                by_topic[item.topic].append(item.envelope)
        for topic, envelopes in by_topic.items():
            await self.bus.publish(topic, envelopes)
            metrics.EVENTS_PUBLISHED.labels(self.service, topic).inc(len(envelopes))
        await self.store.mark_published(items)
        self.published += sum(len(v) for v in by_topic.values())
        return len(items)

    async def run(self, stop: asyncio.Event, leadership: Leadership | None = None) -> None:
        """Publish until `stop`; with several replicas of a worker, only while this one holds `leadership` (the
        others would publish the same events again)."""
        leadership = leadership or SoleLeadership()
        appended: asyncio.Event | None = getattr(self.store, "appended", None)
        while not stop.is_set():
            if not leadership.held.is_set():
                await first_of(stop, leadership.held)
                continue
            try:
                async with leadership.turn() as holding:
                    sent = await self.run_once() if holding else 0
            except Exception as exc:  # the bus or store is unavailable: keep the events, try again
                log.warning("relay_failed", service=self.service, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            if sent:
                continue
            if appended is not None:
                appended.clear()
                try:
                    await asyncio.wait_for(appended.wait(), self.idle_poll)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(self.idle_poll)


async def first_of(*events: asyncio.Event) -> None:
    """Wait until one of the events is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
