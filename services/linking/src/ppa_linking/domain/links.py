"""The link state machine of one (agency, owner) pair: pure functions over events, no I/O.

    (none) ──grant──▶ pending ──approve──▶ approved ──withdraw──▶ revoked
                         │ └──withdraw──▶ revoked (the request is withdrawn)
                         └──reject──▶ rejected
A grant while a link is pending or approved changes nothing; a grant after a rejection or a
revocation opens a new link (a new id). Decisions apply to a pending link only, once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from ppa_contracts import Payload
from ppa_contracts.linking import (
    LinkApproved,
    LinkOwner,
    LinkProduct,
    LinkRejected,
    LinkRequested,
    LinkRevoked,
    RevokeReason,
)


class LinkStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVOKED = "revoked"


OPEN = frozenset({LinkStatus.PENDING, LinkStatus.APPROVED})


class LinkNotFound(LookupError):
    """No link with this id between this agency and an owner."""


class AlreadyDecided(Exception):
    """The link is no longer pending; `status` says what became of it."""

    def __init__(self, link_id: str, status: LinkStatus) -> None:
        super().__init__(f"link {link_id} is {status}")
        self.link_id = link_id
        self.status = status


@dataclass(frozen=True)
class Link:
    """One link between an agency and an owner, folded from its events."""

    link_id: str
    agency_id: str
    agency_email: str
    owner_id: str
    owner: LinkOwner
    products: tuple[LinkProduct, ...]
    status: LinkStatus
    requested_at: datetime | None = None
    decided_at: datetime | None = None
    ended_at: datetime | None = None
    grant_version: int | None = None


class Recorded(NamedTuple):
    """A stored event with its time and the id of the event that caused it (if any)."""

    event: Payload
    at: datetime
    cause: str | None = None


@dataclass(frozen=True)
class Pair:
    """Every link one agency and one owner ever had, oldest first; `version` is the stream's.

    `causes` holds the ids of the grant events that opened a link, so a grant delivered again
    (after a crash, and after the link was decided meanwhile) does not open another one. Grants and
    withdrawals also carry their position in the owner's stream: a replayed grant older than a link's
    opens nothing, and a replayed withdrawal older than the open link's grant does not end it.
    """

    links: tuple[Link, ...] = ()
    version: int = 0
    causes: frozenset[str] = frozenset()

    @property
    def current(self) -> Link | None:
        return self.links[-1] if self.links else None

    @property
    def latest_grant(self) -> int:
        """The owner-stream version of the newest grant that opened a link (0 when unknown)."""
        return max((link.grant_version or 0 for link in self.links), default=0)

    def link(self, link_id: str) -> Link:
        for link in self.links:
            if link.link_id == link_id:
                return link
        raise LinkNotFound(link_id)


def stream_for(agency_id: str, owner_id: str) -> str:
    """The event stream of one (agency, owner) pair."""
    return f"pair:{agency_id}:{owner_id}"


def fold(history: Iterable[Recorded]) -> Pair:
    """The pair's links from its stored history."""
    links: list[Link] = []
    causes: set[str] = set()
    version = 0
    for event, at, cause in history:
        version += 1
        if isinstance(event, LinkRequested):
            links.append(Link(event.link_id, event.agency_id, event.agency_email, event.owner_id, event.owner,
                              tuple(event.products), LinkStatus.PENDING, requested_at=at,
                              grant_version=event.grant_version))
            if cause:
                causes.add(cause)
            continue
        index = next((i for i, link in enumerate(links) if link.link_id == getattr(event, "link_id", None)), None)
        if index is None:
            continue
        if isinstance(event, LinkApproved):
            links[index] = replace(links[index], status=LinkStatus.APPROVED, decided_at=at)
        elif isinstance(event, LinkRejected):
            links[index] = replace(links[index], status=LinkStatus.REJECTED, decided_at=at)
        elif isinstance(event, LinkRevoked):
            links[index] = replace(links[index], status=LinkStatus.REVOKED, ended_at=at)
    return Pair(tuple(links), version, frozenset(causes))


def needs_request(pair: Pair, cause: str | None = None, grant_version: int | None = None) -> bool:
    """Whether a grant (event id `cause`, owner-stream version) opens a link: none is open, and
    neither this grant nor a later one opened one already."""
    current = pair.current
    if cause is not None and cause in pair.causes:
        return False
    if grant_version is not None and grant_version <= pair.latest_grant:
        return False
    return current is None or current.status not in OPEN


def request(pair: Pair, link_id: str, agency_email: str, owner: LinkOwner, products: Iterable[LinkProduct],
            agency_id: str, cause: str | None = None, grant_version: int | None = None) -> list[Payload]:
    """The owner granted the agency: a new pending link, unless one is open or this grant opened one."""
    if not needs_request(pair, cause, grant_version):
        return []
    return [LinkRequested(link_id=link_id, agency_id=agency_id, owner_id=owner.owner_id, agency_email=agency_email,
                          owner=owner, products=list(products), grant_version=grant_version)]


def approve(pair: Pair, link_id: str) -> list[Payload]:
    """The agency approves a pending link; any other state raises AlreadyDecided."""
    link = _pending(pair, link_id)
    return [LinkApproved(link_id=link.link_id, agency_id=link.agency_id, owner_id=link.owner_id)]


def reject(pair: Pair, link_id: str) -> list[Payload]:
    """The agency declines a pending link; any other state raises AlreadyDecided."""
    link = _pending(pair, link_id)
    return [LinkRejected(link_id=link.link_id, agency_id=link.agency_id, owner_id=link.owner_id)]


def revoke(pair: Pair, reason: RevokeReason, withdrawal_version: int | None = None) -> list[Payload]:
    """The open link ends (approved links are revoked, pending requests withdrawn); nothing open, nothing to do.

    A withdrawal at an owner-stream version before the open link's grant is an old one replayed: no-op.
    """
    current = pair.current
    if current is None or current.status not in OPEN:
        return []
    if withdrawal_version is not None and (current.grant_version or 0) > withdrawal_version:
        return []
    return [LinkRevoked(link_id=current.link_id, agency_id=current.agency_id, owner_id=current.owner_id,
                        reason=reason, was=current.status.value)]


def _pending(pair: Pair, link_id: str) -> Link:
    link = pair.link(link_id)
    if link.status is not LinkStatus.PENDING:
        raise AlreadyDecided(link_id, link.status)
    return link
