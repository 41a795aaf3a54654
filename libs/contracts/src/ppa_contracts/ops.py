"""Events of the platform itself: dead letters, and operators' actions on them and on projections."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ppa_contracts.base import Payload
from ppa_contracts.topics import OPS_AUDIT


class RecordHeader(BaseModel):
    """One header of a Kafka record as it was read: its value as text, or in base64 when it is not UTF-8."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: str | None = None
    value_base64: str | None = None


class DeadLetter(Payload):
    """An event a consumer group could not apply after its retries; carries the original.

    `original` is the record's structured-mode JSON (attributes and `data`) as far as it could be read. Read from
    Kafka, the record itself is kept too: its key, every header, and its value when that is not JSON (as JSON it
    is `original.data`), text where it is UTF-8, else base64 (the `_base64` fields)."""

    event_service: ClassVar[str] = "platform"
    event_name: ClassVar[str] = "dead_letter"
    event_topic: ClassVar[str] = "<topic>.dlq"

    original: dict[str, Any]
    original_topic: str
    consumer_group: str
    error: str  # the failure reason: the exception's type and message (validation errors without the input)
    attempts: int
    original_partition: int | None = None
    original_offset: int | None = None
    original_key: str | None = None
    original_key_base64: str | None = None
    original_headers: list[RecordHeader] | None = None
    original_value_base64: str | None = None  # the value's bytes, when they are no JSON


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
