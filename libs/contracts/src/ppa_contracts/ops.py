"""Events of the platform itself: dead letters, and operators' actions on them and on projections."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from ppa_contracts.base import Payload
from ppa_contracts.topics import OPS_AUDIT


class DeadLetter(Payload):
    """An event a consumer group could not apply after its retries; carries the original."""

    event_service: ClassVar[str] = "platform"
    event_name: ClassVar[str] = "dead_letter"
    event_topic: ClassVar[str] = "<topic>.dlq"

    original: dict[str, Any]
    original_topic: str
    consumer_group: str
    error: str
    attempts: int


class DeadLetterReplayed(Payload):
    """An operator re-published a dead letter's original event to its topic, for its group to apply."""

    event_service: ClassVar[str] = "ops"
    event_name: ClassVar[str] = "dead_letter_replayed"
    event_topic: ClassVar[str] = OPS_AUDIT

    letter_id: str  # the id of the dead-letter event
    dead_letter_topic: str
    original_topic: str
    original_id: str
    consumer_group: str
    operator_id: str
    operator_email: str


class DeadLetterDiscarded(Payload):
    """An operator decided a dead letter is not to be applied; the letter stays in its topic."""

    event_service: ClassVar[str] = "ops"
    event_name: ClassVar[str] = "dead_letter_discarded"
    event_topic: ClassVar[str] = OPS_AUDIT

    letter_id: str
    dead_letter_topic: str
    original_topic: str
    original_id: str
    consumer_group: str
    operator_id: str
    operator_email: str
    reason: str


class ProjectionRebuilt(Payload):
    """A projection's read model was rebuilt from its topics and swapped in."""

    event_service: ClassVar[str] = "ops"
    event_name: ClassVar[str] = "projection_rebuilt"
    event_topic: ClassVar[str] = OPS_AUDIT

    projection: str
    consumer_group: str
    events_applied: int
    started_at: datetime
    finished_at: datetime
    operator_id: str  # "cli" when run from the command line
    operator_email: str
