"""Runs services in a process: their outbox relays and consumer groups, with clean shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from ppa_runtime import metrics
from ppa_runtime.bus import Leadership
from ppa_runtime.consumer import Consumer, shards_of
from ppa_runtime.logging import flush_repeats
from ppa_runtime.relay import OutboxRelay, first_of
from ppa_runtime.runtime import Runtime
from ppa_runtime.service import Service

log = structlog.get_logger(__name__)
LEADERSHIP_CHECK_SECONDS = 0.5  # how soon a background loop is stopped once its process gives the leadership up


class Host:
    """The services of one process; `workers` decides whether it runs relays and consumers.

    A consumer group configured to run as shards (`Settings.consumer_shards`) runs every shard here, unless
    `shard` names one: then only that shard of such groups runs here, and the rest of the workers (the other
    groups, relays and loops) only in shard 0's process. With several replicas of a service's workers, its relay
    and loops run in one of them at a time: the one holding the service's leadership on the bus."""

    def __init__(self, runtime: Runtime, services: list[Service], workers: bool = True,
                 shard: int | None = None) -> None:
        self.runtime = runtime
        self.services = services
        self.workers = workers
        self.shard = shard
        self.consumers: list[Consumer] = []
        self.relays: list[OutboxRelay] = []
        self.leaderships: list[Leadership] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.started = False

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    async def start(self) -> None:
        """Start every service, then its relay, consumers and background loops."""
        settings = self.runtime.settings
        if self.workers and self.shard is not None and (self.shard < 0 or self.shard and not any(
                self.shard < settings.shards_of(spec.group) for svc in self.services for spec in svc.consumers()
                if spec.split_by is not None)):
            raise ValueError(f"shard {self.shard}: no consumer group of {[s.name for s in self.services]} runs as "
                             f"{self.shard + 1} shards or more (PPA_CONSUMER_SHARDS)")
        for svc in self.services:
            await svc.start()
        if self.workers:
            first = self.shard in (None, 0)
            for svc in self.services:
                # one replica of the service's workers publishes its outbox and runs its loops at a time
                leadership = None
                if first and (svc.has_outbox or svc.background()):
                    leadership = await self.runtime.bus.leadership(f"{svc.name}.leader")
                    self.leaderships.append(leadership)
                if svc.has_outbox and leadership is not None:
                    relay = OutboxRelay(svc.name, svc.events, self.runtime.bus)
                    self.relays.append(relay)
                    self._spawn(relay.run(self._stop, leadership), f"relay:{svc.name}")
                for spec in svc.consumers():
                    for shard in shards_of(spec, settings.shards_of(spec.group)):
                        if (shard is None and not first) or (
                                shard is not None and self.shard not in (None, shard.index)):
                            continue
                        consumer = Consumer(spec, self.runtime.bus, svc.docs.collection("inbox"),
                                            settings.consumer_max_attempts, settings.consumer_backoff_seconds, shard)
                        self.consumers.append(consumer)
                        self._spawn(consumer.run(self._stop), f"consumer:{consumer.group}")
                if leadership is not None:
                    for loop in svc.background():
                        self._spawn(self._led(leadership, loop), f"background:{svc.name}:{loop.__name__}")
            if self.consumers and settings.lag_sample_seconds > 0:
                self._spawn(self._sample_lag(settings.lag_sample_seconds), "lag-sampler")
        self._spawn(flush_repeats(self._stop), "log-repeats")
        self.started = True
        log.info("host_started", services=[s.name for s in self.services], workers=self.workers,
                 runtime=self.runtime.kind)

    async def _sample_lag(self, every: float) -> None:
        """Keep the ppa_consumer_lag gauge of this process's groups current (for Prometheus)."""
        while True:
            try:
                await asyncio.wait_for(self._stop.wait(), every)
                return
            except TimeoutError:
                pass
            for consumer in self.consumers:
                try:
                    for p in await self.runtime.bus.lag(consumer.group, consumer.spec.topics):
                        metrics.CONSUMER_LAG.labels(p.group, p.topic, str(p.partition)).set(p.lag)
                except Exception as exc:  # the bus is unavailable for a moment: try again next round
                    log.warning("lag_sample_failed", group=consumer.group, error=repr(exc))

    async def _led(self, leadership: Leadership, loop: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Run a background loop while this process holds the leadership: stopped (as at shutdown) when it is
        given up, started again when it comes back."""
        while not self._stop.is_set():
            await first_of(self._stop, leadership.held)
            if self._stop.is_set():
                return
            tenure = asyncio.Event()
            running = asyncio.create_task(loop(tenure))
            while leadership.held.is_set() and not self._stop.is_set() and not running.done():
                try:
                    await asyncio.wait_for(self._stop.wait(), LEADERSHIP_CHECK_SECONDS)
                except TimeoutError:
                    pass
            tenure.set()
            await running

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(self._guard(coro, name), name=name)
        self._tasks.append(task)

    async def _guard(self, coro, name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background_task_crashed", task=name)
            raise

    def ready(self) -> bool:
        """True once every service started and every consumer is attached to its group."""
        return self.started and not self.crashed_tasks() and all(c.running for c in self.consumers)

    def crashed_tasks(self) -> list[str]:
        """The background tasks that ended before the host was stopped (on an error): only a restart brings
        them back."""
        if self._stop.is_set():
            return []
        return [t.get_name() for t in self._tasks if t.done()]

    async def stop(self) -> None:
        """Let the background loops finish their current batch, then return (leaving the leaderships last)."""
        self._stop.set()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for leadership in self.leaderships:
            try:
                await leadership.close()
            except Exception as exc:  # the bus is away: the group drops this member when its session times out
                log.warning("leadership_close_failed", error=repr(exc))
        log.info("host_stopped")
