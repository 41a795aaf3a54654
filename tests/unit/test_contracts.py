"""Envelope binding, event registry and the committed schema documents."""

from __future__ import annotations

import json
from pathlib import Path

from ppa_contracts import Envelope, payload_classes
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.schema import render, stale

ROOT = Path(__file__).resolve().parents[2]


def test_kafka_binary_binding_round_trips_an_envelope():
    env = Envelope.wrap(
        AgencyRegistered(agency_id="a1", email="a@example.jp", profile=AgencyProfile(company="太陽電力")),
        subject="a1", correlation_id="req-1", causation_id="e0", aggregate_version=1,
    )
    key, headers, value = env.to_kafka()
    names = dict(headers)
    assert key == b"a1"
    assert names["ce_type"] == b"jp.ppa.identity.agency_registered.v1"
    assert names["ce_specversion"] == b"1.0" and names["ce_correlationid"] == b"req-1"
    assert json.loads(value)["profile"]["company"] == "太陽電力"
    assert Envelope.from_kafka(headers, value) == env
    assert Envelope.from_json(env.to_json()) == env


def test_trace_context_travels_as_the_cloudevents_distributed_tracing_extension():
    traceparent, tracestate = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "ppa=1"
    env = Envelope(source="/ppa/test", type="t", subject="s", correlationid="c", data={}, dataschema="urn:ppa:event:t",
                   traceparent=traceparent, tracestate=tracestate)
    key, headers, value = env.to_kafka()
    assert ("ce_traceparent", traceparent.encode()) in headers
    assert ("ce_tracestate", tracestate.encode()) in headers
    assert Envelope.from_kafka(headers, value) == env
    assert Envelope.from_json(env.to_json()) == env
    untraced = env.model_copy(update={"traceparent": None, "tracestate": None})
    assert not [k for k, _ in untraced.to_kafka()[1] if k.startswith("ce_trace")]  # tracing off: no headers


def test_structured_json_is_what_the_model_dumps_whatever_data_holds():
    from dataclasses import dataclass
    from datetime import UTC, date, datetime
    from decimal import Decimal
    from enum import Enum

    @dataclass
    class Point:
        x: int

    class Kind(str, Enum):
        A = "a"

    values = [{"readings": [{"kwh": "1.5", "register_max": None}] * 3, "n": 1, "ok": True, "f": 0.25},
              {"at": datetime(2024, 1, 1, tzinfo=UTC), "day": date(2024, 1, 2)}, {"kwh": Decimal("1.50")},
              {"point": Point(1)}, {"kind": Kind.A}, {"nested": {1: "x"}}, {"name": "太陽電力"}]
    for data in values:
        env = Envelope(source="/ppa/test", type="t", subject="s", correlationid="c", data=data)
        assert json.loads(env.to_json()) == env.model_dump(mode="json")


def test_event_types_follow_the_naming_rule():
    for event_type, cls in payload_classes().items():
        assert event_type == f"jp.ppa.{cls.event_service}.{cls.event_name}.v{cls.event_version}"


def test_asyncapi_document_lists_every_topic_and_its_dead_letters():
    doc = json.loads(render()["asyncapi.json"])
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {"ppa.identity.agency.v1", "ppa.identity.agency.v1.dlq", "ppa.metering.readings.v1"} <= addresses
    assert "jp_ppa_identity_agency_registered_v1" in doc["components"]["messages"]


def test_committed_event_schemas_are_not_stale():
    assert stale(ROOT / "docs" / "events") == [], "run: make schemas"
