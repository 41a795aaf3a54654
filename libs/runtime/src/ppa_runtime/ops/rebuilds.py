"""Projection rebuilds started by an operator: one at a time per projection, progress kept for the page."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog

from ppa_contracts.ops import ProjectionRebuilt
from ppa_runtime import metrics
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.eventstore import ConcurrencyConflict
from ppa_runtime.ops.audit import Audit, Operator
from ppa_runtime.ops.health import projection_name, projections_of
from ppa_runtime.rebuild import RebuildProgress, rebuild_projection

log = structlog.get_logger(__name__)


class UnknownProjection(LookupError):
    """No rebuildable projection has that name."""


class RebuildRunning(Exception):
    """A rebuild of this projection is running already."""


def find_projection(host, name: str) -> tuple[object, ConsumerSpec]:
    """The service and spec of the projection named `name` (its spec name or its group)."""
    for service, spec in projections_of(host):
        if name in (projection_name(spec), spec.group):
            return host.service(service), spec
    raise UnknownProjection(name)


async def rebuild_and_audit(host, audit: Audit, name: str, operator: Operator,
                            state: RebuildProgress | None = None) -> int:
    """Rebuild one projection and record who did it; returns the events applied."""
    svc, spec = find_projection(host, name)
    state = state or RebuildProgress(projection_name(spec))
    try:
        applied = await rebuild_projection(spec, host.runtime.bus, svc.docs, state=state)
    except Exception:
        metrics.PROJECTION_REBUILDS.labels(state.projection, "failed").inc()
        raise
    metrics.PROJECTION_REBUILDS.labels(state.projection, "done").inc()
    stream = f"projection:{state.projection}"
    event = ProjectionRebuilt(projection=state.projection, consumer_group=spec.group, events_applied=applied,
                              started_at=state.started_at, finished_at=state.finished_at or datetime.now(UTC),
                              operator_id=operator.operator_id, operator_email=operator.email)
    for _ in range(5):  # an audit entry per rebuild: append at the stream's head, re-read on a race
        try:
            await audit.record(stream, len(await audit.store.read(stream)), event, subject=state.projection)
            break
        except ConcurrencyConflict:
            continue
    return applied


class Rebuilds:
    """Rebuilds running in this process, by projection name."""

    def __init__(self, host, audit: Audit) -> None:
        self.host = host
        self.audit = audit
        self.jobs: dict[str, RebuildProgress] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    def start(self, name: str, operator: Operator) -> RebuildProgress:
        """Start a rebuild in the background; RebuildRunning if one is under way."""
        _, spec = find_projection(self.host, name)
        key = projection_name(spec)
        task = self._tasks.get(key)
        if task is not None and not task.done():
            raise RebuildRunning(key)
        state = RebuildProgress(key)
        self.jobs[key] = state

        async def run() -> None:
            try:
                await rebuild_and_audit(self.host, self.audit, key, operator, state)
            except Exception:
                log.exception("projection_rebuild_failed", projection=key)

        self._tasks[key] = asyncio.create_task(run(), name=f"rebuild:{key}")
        return state

    async def wait(self, name: str) -> RebuildProgress:
        """Wait for this projection's running rebuild (tests, CLI)."""
        task = self._tasks.get(name)
        if task is not None:
            await task
        return self.jobs[name]
