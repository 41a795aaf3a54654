"""Shared contracts: CloudEvents envelope, topic catalog and event payload models."""

from ppa_contracts.base import Payload, event_class, payload_classes
from ppa_contracts.envelope import Envelope
from ppa_contracts.topics import TOPICS, Topic, dlq

__all__ = ["Envelope", "Payload", "TOPICS", "Topic", "dlq", "event_class", "payload_classes"]
