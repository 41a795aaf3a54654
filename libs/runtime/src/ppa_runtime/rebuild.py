"""Rebuild a projection into a shadow copy of its read model, then swap it in.

Readers keep the live collections until the swap. The replay writes through the projection's own
handlers, redirected to `<collection>__rebuild` (see `docstore.redirected`); the live consumer keeps
applying new events to the old copy meanwhile. After the swap, the events published since the replay
began are applied once more to the new copy: handlers are idempotent, so what the live consumer
applied as well is a harmless repeat, and nothing it applied to the old copy is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from pydantic import ValidationError

from ppa_runtime.bus import EventBus, Position, Record, Tail
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.context import correlated
from ppa_runtime.docstore import DocStore, redirected

log = structlog.get_logger(__name__)
SHADOW_SUFFIX = "__rebuild"
_rebuilding: ContextVar[str | None] = ContextVar("rebuilding", default=None)


class SideEffectInRebuild(RuntimeError):
    """A handler tried to record events while replayed by a rebuild: its projection cannot be rebuilt."""


def rebuilding() -> str | None:
    """The projection being rebuilt in this context, if any (a replay must not cause new events)."""
    return _rebuilding.get()


@dataclass
class RebuildProgress:
    """How far a rebuild is: records read of the total there were when it began."""

    projection: str
    total: int = 0
    read: int = 0
    applied: int = 0
    phase: str = "starting"  # starting, replaying, swapping, catching_up, done, failed
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    error: str | None = None

    @property
    def percent(self) -> int:
        if self.phase == "done":
            return 100
        return min(99, self.read * 100 // self.total) if self.total else 0


def shadow_name(collection: str) -> str:
    """The collection a rebuild writes before the swap."""
    return f"{collection}{SHADOW_SUFFIX}"


async def rebuild_projection(
    spec: ConsumerSpec,
    bus: EventBus,
    docs: DocStore,
    progress: Callable[[str, int], None] | None = None,
    state: RebuildProgress | None = None,
) -> int:
    """Replay the projection's topics into a shadow read model and swap it in; returns events applied.

    `progress(topic, applied)` is called after each record; `state` is kept up to date for a page.
    """
    state = state or RebuildProgress(spec.name or spec.group)
    shadows = {name: shadow_name(name) for name in spec.collections}

    async def apply(record: Record) -> None:
        try:
            env = record.envelope
        except ValidationError:  # no event: the projection's consumer dead-lettered it, the replay skips it too
            log.warning("rebuild_skipped_invalid_record", projection=state.projection, topic=record.topic,
                        offset=record.offset)
            env = None
        handler = spec.handlers.get(env.type) if env is not None else None
        if handler is not None:
            with correlated(env.correlationid, env.id):
                await handler(env.payload(), env)
            state.applied += 1
        state.read += 1
        if progress is not None:
            progress(record.topic, state.applied)

    tail: Tail | None = None
    token = _rebuilding.set(state.projection)
    try:
        for shadow in shadows.values():
            await docs.collection(shadow).drop()
        ends = await bus.ends(spec.topics)
        state.total = sum(ends.values())
        state.phase = "replaying"
        tail = await bus.tail(spec.topics, "beginning")
        with redirected(shadows):
            if spec.setup is not None:
                await spec.setup()
            await _read_until(tail, ends, apply)
        state.phase = "swapping"
        for name, shadow in shadows.items():
            await docs.collection(name).swap_in(shadow)
        state.phase = "catching_up"
        caught_up = await bus.ends(spec.topics)
        state.total += sum(caught_up.values()) - sum(ends.values())
        await _read_until(tail, caught_up, apply)
    except BaseException as exc:
        state.phase, state.error, state.finished_at = "failed", f"{type(exc).__name__}: {exc}", datetime.now(UTC)
        log.error("projection_rebuild_failed", projection=state.projection, error=state.error)
        raise
    finally:
        _rebuilding.reset(token)
        if tail is not None:
            await tail.close()
    state.phase, state.finished_at = "done", datetime.now(UTC)
    log.info("projection_rebuilt", projection=state.projection, events=state.applied)
    return state.applied


async def _read_until(tail: Tail, ends: dict[Position, int], apply, idle_limit: int = 20) -> None:
    """Feed records until every partition reached its end (a partition with deleted records may stop short)."""
    idle = 0
    while any(tail.positions().get(p, 0) < end for p, end in ends.items()):
        records = await tail.fetch(timeout=0.5, max_records=500)
        if not records:
            idle += 1
            if idle >= idle_limit:
                log.warning("rebuild_stopped_short", positions=str(tail.positions()), ends=str(ends))
                return
            continue
        idle = 0
        for record in records:
            await apply(record)
        await asyncio.sleep(0)  # let readers in between batches
