"""Link commands (request on a grant, approve, reject, revoke on a withdrawal) and the agency-scoped lookup.

The truth is each (agency, owner) pair's event stream; a command folds it, decides, and appends with
the expected version (a racing writer gets ConcurrencyConflict and decides again on fresh state). The
e-mail a decision causes is appended in the same commit, so it is requested exactly when the decision
is stored. Link ids are short numbers allocated insert-only in `link_ids`, which also maps an id to
its pair: the only way from a page's id to a stream, and always checked against the caller's agency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from ppa_contracts.linking import LinkOwner, LinkProduct, RevokeReason
from ppa_contracts.notify import EmailRequested, EmailTemplate
from ppa_linking.domain.links import (
    Link,
    LinkNotFound,
    Pair,
    Recorded,
    approve,
    fold,
    needs_request,
    reject,
    request,
    revoke,
    stream_for,
)
from ppa_runtime.docstore import DuplicateKey
from ppa_runtime.eventstore import ConcurrencyConflict

if TYPE_CHECKING:
    from ppa_linking.service import LinkingService

log = structlog.get_logger(__name__)

LINK_IDS = "link_ids"
ATTEMPTS = 10


class LinkBook:
    """Link requests and decisions of every agency, each call scoped to one agency or one owner."""

    def __init__(self, service: LinkingService) -> None:
        self.svc = service
        self.ids = service.docs.collection(LINK_IDS)

    async def setup(self) -> None:
        await self.ids.ensure_index("agency_id")

    async def load(self, agency_id: str, owner_id: str) -> Pair:
        """The pair's links, folded from its stream."""
        envelopes = await self.svc.events.read(stream_for(agency_id, owner_id))
        return fold(Recorded(e.payload(), e.time, e.causationid) for e in envelopes)

    async def find(self, agency_id: str, link_id: str) -> tuple[Pair, Link]:
        """One of this agency's links by id; LinkNotFound for an unknown id or another agency's."""
        doc = await self.ids.get(link_id) if link_id.isdigit() else None
        if doc is None or doc["agency_id"] != agency_id:
            raise LinkNotFound(link_id)
        pair = await self.load(agency_id, doc["owner_id"])
        return pair, pair.link(link_id)

    async def _allocate(self, agency_id: str, owner_id: str) -> str:
        """The next free link number, claimed by inserting it (a racing claim moves on to the next)."""
        number = await self.ids.count() + 1
        while True:
            try:
                await self.ids.insert({"_id": str(number), "n": number, "agency_id": agency_id, "owner_id": owner_id})
                return str(number)
            except DuplicateKey:
                number += 1

    async def on_granted(self, owner_id: str, agency_id: str, agency_email: str, cause: str | None,
                         snapshot: tuple[LinkOwner, list[LinkProduct]], grant_version: int | None = None) -> str | None:
        """The owner allowed the agency: open a pending link and mail the agency; the new link id or None."""
        owner, products = snapshot
        stream = stream_for(agency_id, owner_id)
        for _ in range(ATTEMPTS):
            pair = await self.load(agency_id, owner_id)
            if not needs_request(pair, cause, grant_version):
                return None
            link_id = await self._allocate(agency_id, owner_id)
            events = request(pair, link_id, agency_email, owner, products, agency_id, cause, grant_version)
            mail = EmailRequested(
                message_id=f"link-requested-{link_id}", template=EmailTemplate.LINK_REQUESTED, recipient=agency_email,
                context={"link_id": link_id, "owner_name": owner.name, "owner_name_kana": owner.name_kana,
                         "prefecture": owner.prefecture, "city": owner.city, "street": owner.street,
                         "owner_email": owner.email,
                         "products": [{"system_model": p.system_model, "system_serial": p.system_serial}
                                      for p in products]})
            try:
                await self.svc.record(stream, pair.version, *events, mail, subject=link_id)
            except ConcurrencyConflict:
                continue
            log.info("link_requested", link_id=link_id, agency_id=agency_id, owner_id=owner_id)
            return link_id
        raise ConcurrencyConflict(stream, -1)

    async def decide(self, agency_id: str, link_id: str, approved: bool, owner_email: str | None = None) -> Link:
        """Approve or reject a pending link of this agency and mail the owner; AlreadyDecided when not pending."""
        for _ in range(ATTEMPTS):
            pair, link = await self.find(agency_id, link_id)
            events = approve(pair, link_id) if approved else reject(pair, link_id)
            template = EmailTemplate.LINK_APPROVED if approved else EmailTemplate.LINK_REJECTED
            mail = EmailRequested(message_id=f"link-{'approved' if approved else 'rejected'}-{link_id}",
                                  template=template, recipient=owner_email or link.owner.email,
                                  context={"agency_email": link.agency_email})
            try:
                await self.svc.record(stream_for(agency_id, link.owner_id), pair.version, *events, mail,
                                      subject=link_id)
            except ConcurrencyConflict:
                continue
            log.info("link_decided", link_id=link_id, agency_id=agency_id, approved=approved)
            _, link = await self.find(agency_id, link_id)
            return link
        raise ConcurrencyConflict(link_id, -1)

    async def on_withdrawn(self, owner_id: str, agency_id: str, reason: RevokeReason,
                           withdrawal_version: int | None = None) -> Link | None:
        """The owner removed the agency: the open link ends. Returns the pair's current link (None if none)."""
        stream = stream_for(agency_id, owner_id)
        for _ in range(ATTEMPTS):
            pair = await self.load(agency_id, owner_id)
            events = revoke(pair, reason, withdrawal_version)
            if not events:
                return pair.current
            try:
                await self.svc.record(stream, pair.version, *events, subject=events[0].link_id)
            except ConcurrencyConflict:
                continue
            log.info("link_revoked", link_id=events[0].link_id, agency_id=agency_id, reason=reason.value)
            return (await self.load(agency_id, owner_id)).current
        raise ConcurrencyConflict(stream, -1)
