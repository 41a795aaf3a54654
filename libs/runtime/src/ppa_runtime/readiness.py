"""Is this process ready to serve: its external dependencies (Kafka, MongoDB) answer, checked cheaply.

Each dependency has a probe (one small request, bounded by PROBE_TIMEOUT). A result is reused for CACHE_SECONDS and
concurrent callers share one probe in flight, so a storm of readiness probes or device requests asks the broker at
most about once a second. A refused connection (or no route) marks the dependency down at once: nothing listens.
A probe that only runs out of time may be a busy server or this process's own busy event loop, not a missing
server: the dependency is marked down only when it has answered no probe for SLOW_DOWN_AFTER seconds (a hung
process, a network that drops packets), so load does not take the process out.
A dependency's state carries the time it changed, so the operators' pages can say since when it is down.

A request waiting on a dependency (`watch`) gives up as soon as the probes find it down, not after a fixed time:
under load a healthy MongoDB or broker may take more than a second to answer, and that must not look like an
outage. It then raises `Unavailable`, which the HTTP layer answers as 503 with Retry-After: the caller may send the
same request again later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)

PROBE_TIMEOUT = 1.0
CACHE_SECONDS = 1.0
RETRY_AFTER_SECONDS = 5
SLOW_DOWN_AFTER = 30.0
WATCH_EVERY = 0.2  # how often a waiting request looks at the probes' verdict

T = TypeVar("T")

Probe = Callable[[], Awaitable[None]]


class Unavailable(Exception):
    """A dependency did not answer in time: nothing was changed that a retry would count twice."""

    def __init__(self, dependency: str, detail: str = "") -> None:
        super().__init__(f"{dependency} is unreachable{': ' + detail if detail else ''}")
        self.dependency = dependency


@dataclass(frozen=True)
class DependencyState:
    """One dependency as last probed: up or not, since when, and the probe's error."""

    name: str
    up: bool
    since: datetime
    error: str | None = None


class Readiness:
    """The probes of a process's dependencies, with their last results."""

    def __init__(self, probes: dict[str, Probe], roles: dict[str, str] | None = None, timeout: float = PROBE_TIMEOUT,
                 cache: float = CACHE_SECONDS, slow_down_after: float = SLOW_DOWN_AFTER) -> None:
        self.probes = probes
        self.roles = roles or {}  # "bus" / "store" → the dependency that plays it ("kafka", "mongodb")
        self.timeout = timeout
        self.cache = cache
        self._states: dict[str, DependencyState] = {}
        self.slow_down_after = slow_down_after
        self._slow_since: dict[str, float] = {}  # when the probes of a dependency began to go unanswered
        self._checked_at = float("-inf")
        self._running: asyncio.Task | None = None

    @property
    def states(self) -> list[DependencyState]:
        """The last known state of each dependency (probed or not yet)."""
        return [self._states[n] for n in self.probes if n in self._states]

    async def check(self) -> list[DependencyState]:
        """Every dependency's state, probed again when the last probe is older than the cache time."""
        if not self.probes:
            return []
        loop = asyncio.get_running_loop()
        if loop.time() - self._checked_at >= self.cache:
            if self._running is None or self._running.done():
                self._running = asyncio.create_task(self._probe_all(), name="readiness-probe")
            # shielded: a caller that gives up (its own request cancelled) does not cancel the others' probe
            await asyncio.shield(self._running)
        return self.states

    def known_down(self) -> list[str]:
        """The dependencies the last probe found down, without waiting; starts a probe when that one is old."""
        if not self.probes:
            return []
        loop = asyncio.get_running_loop()
        if loop.time() - self._checked_at >= self.cache and (self._running is None or self._running.done()):
            self._running = asyncio.create_task(self._probe_all(), name="readiness-probe")
        return [s.name for s in self.states if not s.up]

    def refuse_if_down(self) -> None:
        """Raise Unavailable for the first dependency known to be down (fast refusal, no waiting)."""
        down = self.known_down()
        if down:
            raise Unavailable(down[0])

    async def watch(self, role: str, awaitable: Awaitable[T]) -> T:
        """Await a step that needs the dependency playing `role` ("bus", "store"); Unavailable as soon as that
        dependency is known down (the step is cancelled). An in-process one (no probe) is simply awaited."""
        dependency = self.roles.get(role)
        if dependency is None or dependency not in self.probes:
            return await awaitable
        task = asyncio.ensure_future(awaitable)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=WATCH_EVERY)
                if done:
                    return task.result()
                if dependency in self.known_down():
                    raise Unavailable(dependency)
        finally:
            if not task.done():
                task.cancel()

    async def _probe_all(self) -> None:
        names = list(self.probes)
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(*(self._probe(n) for n in names))
        self._checked_at = asyncio.get_running_loop().time()
        now = datetime.now(UTC)
        for name, (error, slow) in zip(names, results, strict=True):
            before = self._states.get(name)
            if slow:
                since = self._slow_since.setdefault(name, started)
                up = before is not None and before.up and started - since < self.slow_down_after
            else:
                self._slow_since.pop(name, None)
                up = error is None
            if before is None or before.up != up:
                (log.info if up else log.warning)("dependency_up" if up else "dependency_down", dependency=name,
                                                  error=error)
                self._states[name] = DependencyState(name, up, now, error)
            elif error != before.error:
                self._states[name] = DependencyState(name, up, before.since, error)

    async def _probe(self, name: str) -> tuple[str | None, bool]:
        """The probe's error (None: it answered) and whether it was only slow."""
        try:
            await asyncio.wait_for(self.probes[name](), self.timeout)
        except TimeoutError:
            return f"no answer in {self.timeout:g} s", True
        except Exception as exc:  # any failure to answer means not ready; the text is for operators
            return f"{type(exc).__name__}: {exc}"[:300], bool(getattr(exc, "timeout", False))
        return None, False


@contextmanager
def store_errors() -> Iterator[None]:
    """A document store that lost its server (a dropped connection, no server to select) raises Unavailable
    ("mongodb") in this block instead of its driver's error. The embedded store (SQLite) raises none of them."""
    from pymongo.errors import ConnectionFailure

    try:
        yield
    except ConnectionFailure as exc:
        raise Unavailable("mongodb", type(exc).__name__) from exc
