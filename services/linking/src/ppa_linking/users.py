"""The agency's user list (登録ユーザー一覧): a projection of link events, one document per link.

Single writer (this consumer group), applied once per pair-stream version, so a redelivered or late
event changes nothing. Owners' e-mails and registration dates come from the owner directory at read
time, so an owner who changes e-mail is found and shown under the new one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ppa_contracts import Envelope
from ppa_contracts.linking import LinkApproved, LinkRejected, LinkRequested, LinkRevoked
from ppa_contracts.topics import LINKING_LINK
from ppa_linking.domain.links import LinkStatus
from ppa_runtime.consumer import ConsumerSpec, apply_versioned
from ppa_runtime.docstore import Collection

AGENCY_USERS = "agency_users"
LISTED = [LinkStatus.PENDING.value, LinkStatus.APPROVED.value]


@dataclass(frozen=True)
class UserPage:
    """One page of an agency's users."""

    items: list[dict[str, Any]]
    total: int
    page: int
    pages: int


class AgencyUsers:
    """Links by agency: pending requests and approved (linked) owners are listed; others are not."""

    def __init__(self, coll: Collection, owners) -> None:
        self.coll = coll
        self.owners = owners

    async def setup(self) -> None:
        await self.coll.ensure_index("agency_id", "status")
        await self.coll.ensure_index("owner_id")

    async def on_requested(self, event: LinkRequested, env: Envelope) -> None:
        await apply_versioned(self.coll, event.link_id, env.aggregateversion or 0, {"$set": {
            "n": int(event.link_id), "agency_id": event.agency_id, "owner_id": event.owner_id,
            "owner_email": event.owner.email, "status": LinkStatus.PENDING.value,
            "registered_at": event.owner.registered_at.isoformat() if event.owner.registered_at else None,
            "requested_at": env.time.isoformat()}})

    async def _status(self, link_id: str, version: int, status: LinkStatus, env: Envelope) -> None:
        await apply_versioned(self.coll, link_id, version, {"$set": {"status": status.value,
                                                                     "changed_at": env.time.isoformat()}})

    async def on_approved(self, event: LinkApproved, env: Envelope) -> None:
        await self._status(event.link_id, env.aggregateversion or 0, LinkStatus.APPROVED, env)

    async def on_rejected(self, event: LinkRejected, env: Envelope) -> None:
        await self._status(event.link_id, env.aggregateversion or 0, LinkStatus.REJECTED, env)

    async def on_revoked(self, event: LinkRevoked, env: Envelope) -> None:
        await self._status(event.link_id, env.aggregateversion or 0, LinkStatus.REVOKED, env)

    async def page(self, agency_id: str, q: str = "", page: int = 1, size: int = 20) -> UserPage:
        """This agency's listed users, newest first; `q` matches part of the e-mail or the exact user id."""
        filter: dict[str, Any] = {"agency_id": agency_id, "status": {"$in": LISTED}}
        q = q.strip()
        if q:
            owner_ids = await self.owners.ids_by_email(q)
            by_id = {"owner_id": {"$in": owner_ids}}
            by_snapshot = {"owner_email": {"$regex": re.escape(q), "$options": "i"}}
            filter["$or"] = [by_id, by_snapshot] + ([{"n": int(q)}] if q.isdigit() and len(q) < 12 else [])
        total = await self.coll.count(filter)
        pages = max(1, math.ceil(total / size))
        page = min(max(page, 1), pages)
        docs = await self.coll.find(filter, sort=[("n", -1)], skip=(page - 1) * size, limit=size)
        current = await self.owners.many([d["owner_id"] for d in docs])
        items = []
        for doc in docs:
            owner = current.get(doc["owner_id"], {})
            items.append({"link_id": doc["_id"], "n": doc["n"], "status": doc["status"],
                          "email": owner.get("email") or doc.get("owner_email", ""),
                          "registered_at": owner.get("registered_at") or doc.get("registered_at")})
        return UserPage(items, total, page, pages)

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="linking.agency-users",
            name=AGENCY_USERS,
            collections=[AGENCY_USERS],
            setup=self.setup,
            topics=[LINKING_LINK],
            handlers={
                LinkRequested.event_type(): self.on_requested,
                LinkApproved.event_type(): self.on_approved,
                LinkRejected.event_type(): self.on_rejected,
                LinkRevoked.event_type(): self.on_revoked,
            },
            dedupe=False,
        )
