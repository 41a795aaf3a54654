"""The operators' audit trail: events in the `ops` event store, published on `ppa.ops.audit.v1`.

The store is the record; publication follows at once (an outbox relay pass after each append), and
any event a crash left unpublished goes out with the next action.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from ppa_contracts import Envelope, Payload
from ppa_runtime.context import causation_id, correlation_id
from ppa_runtime.relay import OutboxRelay
from ppa_runtime.runtime import Runtime

log = structlog.get_logger(__name__)
SERVICE = "ops"


@dataclass(frozen=True)
class Operator:
    """Who acts: an operator from a session, or the command line."""

    operator_id: str
    email: str


CLI = Operator("cli", "cli")


class Audit:
    """Appends operators' actions and publishes them."""

    def __init__(self, runtime: Runtime) -> None:
        self.store = runtime.eventstore(SERVICE)
        self.relay = OutboxRelay(SERVICE, self.store, runtime.bus)

    async def record(self, stream: str, expected_version: int, payload: Payload, subject: str) -> None:
        """Append one action at the expected stream version (ConcurrencyConflict otherwise), then publish."""
        env = Envelope.wrap(payload, subject=subject, correlation_id=correlation_id(), causation_id=causation_id(),
                            aggregate_version=expected_version + 1)
        await self.store.append(stream, expected_version, [(payload.event_topic, env)])
        await self.publish()

    async def publish(self) -> None:
        """Publish whatever is stored and not yet published (never raises: the store keeps it)."""
        try:
            while await self.relay.run_once():
                pass
        except Exception as exc:  # the bus is down: the next action publishes it
            log.warning("audit_publish_failed", error=repr(exc))
