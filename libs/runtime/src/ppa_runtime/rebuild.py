"""Rebuild a projection: forget its read model and replay its topics from the start.

Handlers are idempotent, so events the live consumer applies meanwhile are harmless repeats.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import structlog

from ppa_runtime.bus import EventBus, Record
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.context import correlated
from ppa_runtime.docstore import DocStore

log = structlog.get_logger(__name__)


async def rebuild_projection(
    spec: ConsumerSpec, bus: EventBus, docs: DocStore, progress: Callable[[str, int], None] | None = None
) -> int:
    """Drop the projection's collections and re-apply every event of its topics; returns how many."""
    for name in spec.collections:
        await docs.collection(name).drop()
    if spec.setup is not None:
        await spec.setup()
    await docs.collection("inbox").delete({"_id": {"$regex": f"^{re.escape(spec.group)}:"}})
    applied = 0

    async def apply(record: Record) -> None:
        nonlocal applied
        env = record.envelope
        handler = spec.handlers.get(env.type)
        if handler is not None:
            with correlated(env.correlationid, env.id):
                await handler(env.payload(), env)
            applied += 1
        if progress is not None:
            progress(record.topic, applied)

    for topic in spec.topics:
        await bus.replay(topic, apply)
    log.info("projection_rebuilt", projection=spec.name or spec.group, events=applied)
    return applied
