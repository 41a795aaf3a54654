"""Dead letters: list them, replay one or all after a fix, or discard one with a reason.

Dead-letter topics are append-only: nothing here deletes or rewrites a letter. What an operator did
is an event in the `ops` event store (stream `dead-letter:<letter id>`, published on
`ppa.ops.audit.v1`), and the list shows each letter with that outcome.

A replay removes the consumer's dead-letter mark for the original event from its service's inbox
(only a mark that says `dead_letter`) and publishes the original envelope again, same id, to its
topic. The group applies it once: a second replay finds no dead mark and the group's inbox skips
the event, a projection keyed by aggregate version ignores a repeat, and every other group that
applied the event already skips it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError

from ppa_contracts import Envelope
from ppa_contracts.ops import DeadLetter, DeadLetterDiscarded, DeadLetterReplayed
from ppa_runtime.bus import Record
from ppa_runtime.eventstore import ConcurrencyConflict
from ppa_runtime.ops.audit import Audit, Operator
from ppa_runtime.ops.events import all_topics, redacted

log = structlog.get_logger(__name__)
MAX_REASON = 500


class LetterNotFound(Exception):
    """No dead letter at that position."""


class LetterClosed(Exception):
    """The letter was replayed or discarded already."""


class UnknownGroup(Exception):
    """The letter's consumer group is not one of this platform's."""


class NotReplayable(Exception):
    """The letter's original is no valid event (it was read that way): it can only be discarded."""


class InvalidReason(ValueError):
    """A discard needs a reason of reasonable length."""


@dataclass(frozen=True)
class Letter:
    """One dead letter with what became of it."""

    key: str  # topic/partition/offset of the letter
    letter_id: str
    topic: str
    time: datetime
    original_topic: str
    original_id: str
    original_type: str
    subject: str
    correlation_id: str
    group: str
    error: str
    attempts: int
    envelope: dict[str, Any]  # the letter's envelope, redacted
    status: str = "pending"  # pending, replayed, discarded
    action: dict[str, Any] | None = None


def stream_for(letter_id: str) -> str:
    return f"dead-letter:{letter_id}"


def dead_letter_topics() -> list[str]:
    return [t for t in all_topics() if t.endswith(".dlq")]


class DeadLetters:
    """The dead-letter operations over a host's bus, services and the ops audit store."""

    def __init__(self, host, audit: Audit) -> None:
        self.host = host
        self.bus = host.runtime.bus
        self.audit = audit

    def _inbox_of(self, group: str):
        for svc in self.host.services:
            if any(spec.group == group for spec in svc.consumers()):
                return svc.docs.collection("inbox")
        return None

    async def _letter(self, record: Record) -> Letter:
        env = record.envelope
        letter = env.payload()
        assert isinstance(letter, DeadLetter)
        original = letter.original
        history = await self.audit.store.read(stream_for(env.id))
        status, action = "pending", None
        if history:
            last = history[-1]
            status = "replayed" if last.type == DeadLetterReplayed.event_type() else "discarded"
            action = {**last.data, "time": last.time}
        return Letter(
            key=f"{record.topic}/{record.partition}/{record.offset}", letter_id=env.id, topic=record.topic,
            time=env.time, original_topic=letter.original_topic, original_id=str(original.get("id", "")),
            original_type=str(original.get("type", "")), subject=env.subject, correlation_id=env.correlationid,
            group=letter.consumer_group, error=letter.error, attempts=letter.attempts,
            envelope=redacted(record.topic, env.model_dump(mode="json")), status=status, action=action,
        )

    async def list(self, topics: list[str] | None = None) -> list[Letter]:
        """Every letter of these dead-letter topics (all of them by default), newest first."""
        topics = topics or dead_letter_topics()
        ends = await self.bus.ends(topics)
        if not any(ends.values()):
            return []
        tail = await self.bus.tail(topics, "beginning")
        records: list[Record] = []
        try:
            idle = 0
            while any(tail.positions().get(p, 0) < e for p, e in ends.items()) and idle < 6:
                got = await tail.fetch(timeout=0.5, max_records=1000)
                idle = 0 if got else idle + 1
                records += [r for r in got if r.offset < ends.get((r.topic, r.partition), 0)]
        finally:
            await tail.close()
        letters = [await self._letter(r) for r in records if r.envelope.type == DeadLetter.event_type()]
        return sorted(letters, key=lambda x: (x.time, x.key), reverse=True)

    async def get(self, key: str) -> tuple[Letter, Record]:
        """The letter at `topic/partition/offset`; LetterNotFound otherwise."""
        from ppa_runtime.ops.events import record_at

        try:
            topic, partition, offset = key.rsplit("/", 2)
            record = await record_at(self.bus, topic, int(partition), int(offset)) \
                if topic in dead_letter_topics() else None
        except ValueError:
            record = None
        if record is None or record.envelope.type != DeadLetter.event_type():
            raise LetterNotFound(key)
        return await self._letter(record), record

    async def replay(self, key: str, operator: Operator) -> Letter:
        """Publish the letter's original event again for its group to apply once; audited."""
        letter, record = await self.get(key)
        if letter.status != "pending":
            raise LetterClosed(key)
        inbox = self._inbox_of(letter.group)
        if inbox is None:
            raise UnknownGroup(letter.group)
        try:
            original = Envelope.model_validate(record.envelope.payload().original)
        except ValidationError as exc:
            raise NotReplayable(key) from exc
        # order matters: a crash after the republish and before the audit leaves a pending letter whose
        # second replay is a no-op for the group, never a replayed letter that was not republished
        await inbox.delete({"_id": f"{letter.group}:{original.id}", "dead_letter": True})
        await self.bus.publish(letter.original_topic, [original])
        event = DeadLetterReplayed(
            letter_id=letter.letter_id, dead_letter_topic=letter.topic, original_topic=letter.original_topic,
            original_id=original.id, consumer_group=letter.group, operator_id=operator.operator_id,
            operator_email=operator.email)
        try:
            await self.audit.record(stream_for(letter.letter_id), 0, event, subject=letter.letter_id)
        except ConcurrencyConflict:
            pass  # another operator replayed it at the same moment: the group still applies it once
        log.info("dead_letter_replayed", letter_id=letter.letter_id, group=letter.group, event_id=original.id,
                 operator_id=operator.operator_id)
        return (await self.get(key))[0]

    async def replay_all(self, operator: Operator, topic: str | None = None) -> int:
        """Replay every pending letter (of one dead-letter topic, or all) whose group is known; returns how many."""
        done = 0
        for letter in reversed(await self.list([topic] if topic else None)):  # oldest first
            if letter.status == "pending" and self._inbox_of(letter.group) is not None:
                try:
                    await self.replay(letter.key, operator)
                    done += 1
                except (LetterClosed, NotReplayable):
                    pass
        return done

    async def discard(self, key: str, reason: str, operator: Operator) -> Letter:
        """Close a letter without applying its event; the reason is kept in the audit event."""
        reason = reason.strip()
        if not reason:
            raise InvalidReason("破棄する理由を入力してください。")
        if len(reason) > MAX_REASON:
            raise InvalidReason(f"破棄する理由は{MAX_REASON}文字以内で入力してください。")
        letter, _ = await self.get(key)
        if letter.status != "pending":
            raise LetterClosed(key)
        event = DeadLetterDiscarded(
            letter_id=letter.letter_id, dead_letter_topic=letter.topic, original_topic=letter.original_topic,
            original_id=letter.original_id, consumer_group=letter.group, operator_id=operator.operator_id,
            operator_email=operator.email, reason=reason)
        try:
            await self.audit.record(stream_for(letter.letter_id), 0, event, subject=letter.letter_id)
        except ConcurrencyConflict as exc:
            raise LetterClosed(key) from exc
        log.info("dead_letter_discarded", letter_id=letter.letter_id, group=letter.group,
                 operator_id=operator.operator_id)
        return (await self.get(key))[0]


__all__ = ["DeadLetters", "Letter", "LetterClosed", "LetterNotFound", "UnknownGroup", "InvalidReason"]
