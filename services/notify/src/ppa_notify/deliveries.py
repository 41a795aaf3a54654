"""The delivery log: one document per message id, written before and after each send attempt.

It is what makes a mail once-only: a request whose message id is logged as `sent` is skipped, however
often it is delivered (a redelivery, a replay, or a second event with the same message id). It holds
no template context, so no one-time link is ever stored here. It is state, not a projection: it is
never dropped by a rebuild, which is why a replay of the requests topic sends nothing again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ppa_contracts import Envelope
from ppa_contracts.notify import EmailRequested
from ppa_runtime.docstore import Collection, DuplicateKey

DELIVERIES = "deliveries"
Status = Literal["sending", "sent", "failed"]


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Delivery(BaseModel):
    """One mail as the delivery log knows it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    message_id: str
    template: str
    recipient: str
    status: Status
    attempts: int
    requested_at: str
    sent_at: str | None = None
    failed_at: str | None = None
    last_error: str | None = None
    event_id: str
    correlation_id: str


class DeliveryLog:
    """Reads and writes the `deliveries` collection (single-document atomic writes only)."""

    def __init__(self, coll: Collection) -> None:
        self.coll = coll

    async def setup(self) -> None:
        await self.coll.ensure_index("recipient_key")
        await self.coll.ensure_index("status")
        await self.coll.ensure_index("requested_at")

    async def begin(self, req: EmailRequested, env: Envelope) -> dict[str, Any]:
        """Log the start of an attempt; returns the document (status `sent` means: do not send).

        A request logged as `failed` starts a new run of attempts (it came back after dead-lettering).
        """
        doc = await self.coll.get(req.message_id)
        if doc is None:
            try:
                await self.coll.insert({
                    "_id": req.message_id, "message_id": req.message_id, "template": req.template,
                    "recipient": req.recipient, "recipient_key": req.recipient.strip().lower(),
                    "status": "sending", "attempts": 0, "requested_at": env.time.isoformat(),
                    "event_id": env.id, "correlation_id": env.correlationid,
                })
            except DuplicateKey:
                pass
            doc = await self.coll.get(req.message_id) or {}
        if doc.get("status") == "sent":
            return doc
        reset = {"attempts": 0} if doc.get("status") == "failed" else {}
        if reset:
            await self.coll.update({"_id": req.message_id}, {"$set": reset})
        await self.coll.update({"_id": req.message_id},
                               {"$set": {"status": "sending", "attempted_at": _now()}, "$inc": {"attempts": 1}})
        return await self.coll.get(req.message_id) or {}

    async def sent(self, message_id: str) -> None:
        await self.coll.update({"_id": message_id}, {"$set": {"status": "sent", "sent_at": _now()}})

    async def failed(self, message_id: str, error: str, final: bool) -> None:
        """Record a failed attempt; the final one marks the mail `failed`."""
        fields: dict[str, Any] = {"last_error": error}
        if final:
            fields |= {"status": "failed", "failed_at": _now()}
        await self.coll.update({"_id": message_id}, {"$set": fields})

    async def get(self, message_id: str) -> Delivery | None:
        doc = await self.coll.get(message_id)
        return Delivery.model_validate(doc) if doc else None

    async def query(self, recipient: str | None = None, status: Status | None = None,
                    limit: int = 50) -> list[Delivery]:
        """The newest deliveries first, optionally of one recipient and/or one status."""
        filter: dict[str, Any] = {}
        if recipient:
            filter["recipient_key"] = recipient.strip().lower()
        if status:
            filter["status"] = status
        docs = await self.coll.find(filter, sort=[("requested_at", -1)], limit=max(1, min(limit, 500)))
        return [Delivery.model_validate(d) for d in docs]
