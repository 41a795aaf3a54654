"""Reading every topic for the dashboard: filters, recent history, search, and redaction of secrets.

`ppa.notify.requests.v1` carries one-time links in its `context`: the dashboard shows that topic's
envelopes (and its dead letters) with every context value replaced, keys kept, so an operator sees
which mail was asked for but never a link. Keys that look secret anywhere else are masked as in logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from ppa_contracts import TOPICS, Envelope, dlq
from ppa_contracts.topics import NOTIFY_REQUESTS
from ppa_runtime.bus import EventBus, Record
from ppa_runtime.logging import SECRET_KEYS

HIDDEN = "［非表示］"
# topics whose payload `context` is hidden entirely: it may hold one-time links
CONTEXT_HIDDEN = {NOTIFY_REQUESTS, dlq(NOTIFY_REQUESTS)}


def all_topics() -> list[str]:
    """Every catalog topic and its dead-letter topic, in catalog order."""
    return [name for t in TOPICS.values() for name in (t.name, dlq(t.name))]


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (HIDDEN if k.lower() in SECRET_KEYS else _mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def _hide_mail(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    if isinstance(out.get("context"), dict):
        out["context"] = {k: HIDDEN for k in out["context"]}
    if isinstance(out.get("attachments"), list):
        out["attachments"] = [{**a, "content_base64": f"［{len(a.get('content_base64', ''))}文字 省略］"}
                              for a in out["attachments"] if isinstance(a, dict)]
    return out


def redacted(topic: str, envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope as the dashboard may show it."""
    env = _mask(envelope)
    data = env.get("data") or {}
    if topic == NOTIFY_REQUESTS:
        env["data"] = _hide_mail(data)
    elif topic == dlq(NOTIFY_REQUESTS) and isinstance(data.get("original"), dict):
        original = dict(data["original"])
        original["data"] = _hide_mail(original.get("data") if isinstance(original.get("data"), dict) else {})
        env["data"] = {**data, "original": original}
        if isinstance(data.get("original_value_base64"), str):  # a request's bytes as read: links, attachments
            env["data"]["original_value_base64"] = f"［{len(data['original_value_base64'])}文字 省略］"
    return env


@dataclass(frozen=True)
class EventFilter:
    """What an operator narrows the stream to; empty fields match everything."""

    topic: str = ""
    type: str = ""
    subject: str = ""
    correlation: str = ""

    def topics(self) -> list[str]:
        return [self.topic] if self.topic else all_topics()

    def matches(self, record: Record) -> bool:
        try:
            env = record.envelope
        except ValidationError:  # no event (its consumers dead-letter it): the dead-letter page shows it
            return False
        if self.topic and record.topic != self.topic:
            return False
        if self.type and self.type not in env.type:
            return False
        if self.subject and env.subject != self.subject:
            return False
        if self.correlation and env.correlationid != self.correlation:
            return False
        return True


def view(record: Record) -> dict[str, Any]:
    """A record for a page or an SSE message: position, headline attributes and the redacted envelope."""
    env: Envelope = record.envelope
    return {
        "key": f"{record.topic}/{record.partition}/{record.offset}",
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "id": env.id,
        "type": env.type,
        "source": env.source,
        "subject": env.subject,
        "correlationid": env.correlationid,
        "causationid": env.causationid,
        "time": env.time.astimezone(UTC).isoformat(),
        "envelope": redacted(record.topic, env.model_dump(mode="json")),
    }


def invalid_view(record: Record) -> dict[str, Any]:
    """A record that is no valid event (its consumers dead-letter it), for its detail page: position and the JSON
    as read, redacted; data that is no JSON object is hidden altogether on the topics whose context is hidden."""
    raw = record.as_json()
    data = raw.get("data")
    if isinstance(data, dict):
        shown = redacted(record.topic, raw)
    else:
        shown = _mask(raw)
        if record.topic in CONTEXT_HIDDEN and data is not None:
            shown["data"] = HIDDEN
    return {"key": f"{record.topic}/{record.partition}/{record.offset}", "topic": record.topic,
            "partition": record.partition, "offset": record.offset, "envelope": shown}


@dataclass
class Found:
    """Events found by a history read, newest first, and whether the scan stopped at its limit."""

    events: list[dict[str, Any]]
    truncated: bool
    scanned: int


async def history(bus: EventBus, flt: EventFilter, since: timedelta | None, limit: int = 100,
                  scan_limit: int = 50_000) -> Found:
    """The newest `limit` matching events appended within `since` (all of each topic when None)."""
    topics = flt.topics()
    ends = await bus.ends(topics)
    if since is None:
        start: dict = {p: 0 for p in ends}
    else:
        (start,) = await bus.offsets_at(topics, [datetime.now(UTC) - since])
    # scan at most `scan_limit` records, the newest ones of each partition first in line
    budget = max(scan_limit // max(len(ends), 1), 1)
    truncated = False
    for p, end in ends.items():
        if end - start.get(p, 0) > budget:
            start[p] = end - budget
            truncated = True
    tail = await bus.tail(topics, start)
    found: list[dict[str, Any]] = []
    scanned = 0
    try:
        idle = 0
        while any(tail.positions().get(p, 0) < end for p, end in ends.items()) and idle < 6:
            records = await tail.fetch(timeout=0.5, max_records=1000)
            idle = 0 if records else idle + 1
            for r in records:
                if r.offset < ends.get((r.topic, r.partition), 0):
                    scanned += 1
                    if flt.matches(r):
                        found.append(view(r))
    finally:
        await tail.close()
    found.sort(key=lambda v: (v["time"], v["key"]), reverse=True)
    return Found(found[:limit], truncated, scanned)


async def record_at(bus: EventBus, topic: str, partition: int, offset: int) -> Record | None:
    """The one record at this position, if it exists."""
    ends = await bus.ends([topic])
    if offset < 0 or offset >= ends.get((topic, partition), 0):
        return None
    tail = await bus.tail([topic], {(t, p): (offset if p == partition else e) for (t, p), e in ends.items()})
    try:
        for _ in range(10):
            for r in await tail.fetch(timeout=0.5, max_records=1):
                if r.partition == partition and r.offset == offset:
                    return r
                if r.partition == partition and r.offset > offset:
                    return None
    finally:
        await tail.close()
    return None
