"""Payload base model and the registry that maps CloudEvents types to payload classes."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

_REGISTRY: dict[str, type[Payload]] = {}


class Payload(BaseModel):
    """An event payload: frozen, named `jp.ppa.<service>.<name>.v<N>`, published on one topic."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_service: ClassVar[str]
    event_name: ClassVar[str]
    event_version: ClassVar[int] = 1
    event_topic: ClassVar[str | None]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "event_name" in cls.__dict__:
            event_type = cls.event_type()
            if event_type in _REGISTRY:
                raise TypeError(f"event type {event_type} declared twice")
            _REGISTRY[event_type] = cls

    @classmethod
    def event_type(cls) -> str:
        """The CloudEvents `type` of this payload."""
        return f"jp.ppa.{cls.event_service}.{cls.event_name}.v{cls.event_version}"


def schema_id(event_type: str) -> str:
    """The `$id` of an event type's JSON Schema (docs/events/schemas/<type>.json): its CloudEvents `dataschema`."""
    return f"urn:ppa:event:{event_type}"


def event_class(event_type: str) -> type[Payload] | None:
    """The payload class registered for a CloudEvents type, if any."""
    return _REGISTRY.get(event_type)


def payload_classes() -> dict[str, type[Payload]]:
    """Every registered payload class by event type (imports all contract modules first)."""
    from ppa_contracts import catalog  # noqa: F401  (registers every event module)

    return dict(sorted(_REGISTRY.items()))
