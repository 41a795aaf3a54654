"""Generates JSON Schema per event type and an AsyncAPI 3 document from the payload models.

`python -m ppa_contracts.schema --write docs/events` refreshes the committed files;
`--check` exits 1 when they are stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from ppa_contracts.base import payload_classes, schema_id
from ppa_contracts.topics import TOPICS, dlq

_CE_HEADERS = {
    "type": "object",
    "description": "CloudEvents 1.0 binary mode headers (Kafka protocol binding).",
    "properties": {
        "ce_id": {"type": "string"},
        "ce_source": {"type": "string"},
        "ce_type": {"type": "string"},
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "aggregate id, also the Kafka key"},
        "ce_dataschema": {"type": "string", "description": "the $id of the event type's JSON Schema"},
        "ce_correlationid": {"type": "string"},
        "ce_causationid": {"type": "string"},
        "ce_aggregateversion": {"type": "string"},
        "ce_schemaversion": {"type": "string"},
        "content-type": {"type": "string", "const": "application/json"},
    },
    "required": ["ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "ce_subject", "ce_correlationid"],
}


def _ident(text: str) -> str:
    return text.replace(".", "_").replace("<", "").replace(">", "")


def render() -> dict[str, str]:
    """Every generated file, by relative path, as text."""
    # only the published contracts: services may keep private payloads of their own
    classes = {t: c for t, c in payload_classes().items()
               if c.__module__.startswith("ppa_contracts.") and c.event_topic is not None}
    _, top = models_json_schema(
        [(cls, "serialization") for cls in classes.values()],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    files: dict[str, str] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    by_topic: dict[str, list[str]] = {}
    for event_type, cls in classes.items():
        msg_id = _ident(event_type)
        by_topic.setdefault(cls.event_topic, []).append(msg_id)
        messages[msg_id] = {
            "name": event_type,
            "title": cls.__name__,
            "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else event_type,
            "contentType": "application/json",
            "headers": _CE_HEADERS,
            "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
        }
        standalone = cls.model_json_schema(mode="serialization")
        standalone["$id"] = schema_id(event_type)
        files[f"schemas/{event_type}.json"] = json.dumps(standalone, ensure_ascii=False, indent=2) + "\n"
    for topic in TOPICS.values():
        for name, desc in ((topic.name, topic.description), (dlq(topic.name), f"Dead letters of {topic.name}.")):
            ids = by_topic.get(topic.name, []) if name == topic.name else by_topic.get("<topic>.dlq", [])
            chan = _ident(name)
            channels[chan] = {
                "address": name,
                "description": desc,
                "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in ids},
                "bindings": {"kafka": {"topic": name, "partitions": topic.partitions}},
            }
            operations[f"receive_{chan}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{chan}"},
                "summary": f"Subscribe to {name} (key: {topic.key}).",
                "messages": [{"$ref": f"#/channels/{chan}/messages/{m}"} for m in ids],
            }
    doc = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "PPA platform events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 in Kafka binary mode; key = aggregate id. Generated from the payload models in libs/contracts.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
    files["asyncapi.json"] = json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    return files


def stale(target: Path) -> list[str]:
    """Generated files that are missing, different, or no longer generated."""
    wanted = render()
    out = [p for p, text in wanted.items() if not (target / p).exists() or (target / p).read_text() != text]
    if (target / "schemas").exists():
        out += [f"schemas/{f.name}" for f in (target / "schemas").glob("*.json") if f"schemas/{f.name}" not in wanted]
    return sorted(out)


def write(target: Path) -> None:
    """Write every generated file and remove the ones no longer generated."""
    wanted = render()
    (target / "schemas").mkdir(parents=True, exist_ok=True)
    for f in (target / "schemas").glob("*.json"):
        if f"schemas/{f.name}" not in wanted:
            f.unlink()
    for path, text in wanted.items():
        (target / path).write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", nargs="?", default="docs/events")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    target = Path(args.target)
    if args.check:
        bad = stale(target)
        if bad:
            sys.stderr.write("stale event schemas: " + ", ".join(bad) + "\nrun: make schemas\n")
            sys.exit(1)
        return
    write(target)


if __name__ == "__main__":
    main()
