"""Events of the platform itself (dead letters)."""

from __future__ import annotations

from typing import Any, ClassVar

from ppa_contracts.base import Payload


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
