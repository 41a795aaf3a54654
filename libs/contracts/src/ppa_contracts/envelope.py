"""CloudEvents 1.0 envelope and its Kafka binary-mode binding."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from ppa_contracts.base import Payload, event_class, schema_id

_HEADER_ATTRS = (
    "id", "source", "type", "specversion", "time", "subject", "dataschema",
    "correlationid", "causationid", "aggregateversion", "schemaversion", "traceparent", "tracestate",
)
_ATTR_OF_HEADER = {f"ce_{attr}": attr for attr in _HEADER_ATTRS} | {"content-type": "datacontenttype"}

# Set by ppa_runtime.tracing while tracing is on: the current W3C trace context as event attributes, which every
# `Envelope.wrap` then carries (a hook: the contracts do not depend on OpenTelemetry).
trace_context: Callable[[], dict[str, str]] | None = None

_ONLY_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def new_id() -> str:
    """A new random event id."""
    return uuid.uuid4().hex


class Envelope(BaseModel):
    """One event as it travels: CloudEvents attributes, our extensions and the JSON payload."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_id)
    source: str
    type: str
    specversion: str = "1.0"
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str
    datacontenttype: str = "application/json"
    dataschema: str | None = None  # the id of the type's JSON Schema (docs/events/schemas), `schema_id`
    correlationid: str
    causationid: str | None = None
    aggregateversion: int | None = None
    schemaversion: int = 1
    traceparent: str | None = None  # W3C trace context of the work that made the event (CloudEvents extension)
    tracestate: str | None = None
    data: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        payload: Payload,
        *,
        subject: str,
        correlation_id: str,
        causation_id: str | None = None,
        aggregate_version: int | None = None,
    ) -> Envelope:
        """Wrap a payload for publishing."""
        return cls(
            source=f"/ppa/{payload.event_service}",
            type=payload.event_type(),
            subject=subject,
            dataschema=schema_id(payload.event_type()),
            correlationid=correlation_id,
            causationid=causation_id,
            aggregateversion=aggregate_version,
            schemaversion=payload.event_version,
            data=payload.model_dump(mode="json"),
            **(trace_context() if trace_context is not None else {}),
        )

    def payload(self) -> Payload:
        """Decode `data` into its registered payload model."""
        cls = event_class(self.type)
        if cls is None:
            raise LookupError(f"unknown event type {self.type}")
        return cls.model_validate(self.data)

    def to_kafka(self) -> tuple[bytes, list[tuple[str, bytes]], bytes]:
        """Binary content mode: key, `ce_*` headers and the payload as the value."""
        # written out, not a loop over the attributes: every published event comes through here
        f = self.__dict__
        headers = [("content-type", f["datacontenttype"].encode()), ("ce_id", f["id"].encode()),
                   ("ce_source", f["source"].encode()), ("ce_type", f["type"].encode()),
                   ("ce_specversion", f["specversion"].encode()), ("ce_time", f["time"].isoformat().encode()),
                   ("ce_subject", f["subject"].encode()), ("ce_correlationid", f["correlationid"].encode()),
                   # events stored before the attribute existed get it on the wire all the same
                   ("ce_dataschema", (f["dataschema"] or schema_id(f["type"])).encode())]
        if f["causationid"] is not None:
            headers.append(("ce_causationid", f["causationid"].encode()))
        if f["aggregateversion"] is not None:
            headers.append(("ce_aggregateversion", str(f["aggregateversion"]).encode()))
        headers.append(("ce_schemaversion", str(f["schemaversion"]).encode()))
        if f["traceparent"] is not None:
            headers.append(("ce_traceparent", f["traceparent"].encode()))
            if f["tracestate"]:
                headers.append(("ce_tracestate", f["tracestate"].encode()))
        return f["subject"].encode(), headers, orjson.dumps(f["data"])

    @classmethod
    def from_kafka(cls, headers: list[tuple[str, bytes]] | tuple, value: bytes) -> Envelope:
        """Rebuild an envelope from a binary-mode Kafka record."""
        return cls.model_validate(kafka_attributes(headers, value))

    def to_json(self) -> bytes:
        """Structured mode JSON (for stores and the dashboard)."""
        try:
            # `data` as it is when it holds JSON values only (what `wrap` makes): the model would walk it again,
            # 10,000 readings of a device batch included. Anything else (datetimes, dataclasses, subclasses,
            # keys that are not text) raises here and goes through the model's own JSON mode.
            return orjson.dumps({**self.model_dump(mode="json", exclude={"data"}), "data": self.data},
                                option=_ONLY_JSON)
        except TypeError:
            return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        """Parse structured mode JSON."""
        return cls.model_validate(orjson.loads(raw))


def kafka_attributes(headers: list[tuple[str, bytes]] | tuple, value: bytes) -> dict[str, Any]:
    """A binary-mode Kafka record's attributes and `data`, decoded but not validated (header values as text).

    Never raises: bytes that are not UTF-8 are replaced and a value that is not JSON is kept as text, so the
    record fails validation where its reader can dead-letter it, instead of stopping the fetch of its batch.
    """
    try:  # every record a consumer reads comes through here: first as if it held our headers only, in UTF-8
        attrs: dict[str, Any] = {_ATTR_OF_HEADER[name]: raw.decode() for name, raw in headers or ()}
    except (KeyError, UnicodeDecodeError):
        attrs = {}
        for name, raw in headers or ():
            if name.startswith("ce_"):
                attrs[name[3:]] = raw.decode(errors="replace")
            elif name == "content-type":
                attrs["datacontenttype"] = raw.decode(errors="replace")
    try:
        attrs["data"] = orjson.loads(value) if value else {}
    except orjson.JSONDecodeError:
        attrs["data"] = value.decode(errors="replace")
    return attrs
