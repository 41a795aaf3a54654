"""Proxy-login sessions (代理ログイン): start, per-request check, end, the owner's history.

How a request of a proxy session is checked: the browser holds a random token (cookie); its SHA-256
finds the session's document in `proxy_sessions`, and then the decision is taken from the event
store, not from that document: the session's own stream (ended?), its expiry, and the pair's link
stream (still this link, still approved?). Streams are insert-only and read-your-writes on both
runtimes, so an end or a revocation stored a moment ago refuses the very next request, whatever a
projection's lag or FerretDB's non-atomic conditional updates would say. The gateway adds one more
check before this one: the owner still grants the agency's e-mail in identity, which refuses the
session even before linking has consumed the withdrawal. An end is appended at the session stream's
expected version, so it is recorded exactly once however many requests notice it.

The document is for finding and listing only; it is updated by whoever recorded the end. An expiry is
recorded by the worker's sweep (every `PPA_PROXY_SWEEP_SECONDS`), or before that when the session is seen
(a request with its cookie, the owner's history, a revocation); either way it is dated at the expiry time.
A change of the agency's password (its own, or the operator's reset) ends the agency's open sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyPasswordChanged
from ppa_contracts.linking import (
    ProxyEndReason,
    ProxyLoginEnded,
    ProxyLoginRefused,
    ProxyLoginStarted,
    ProxyRefusal,
)
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_linking.domain.links import Link, LinkNotFound
from ppa_linking.domain.proxy import ProxySession, end_reason, fold_session, session_stream, start_refusal
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.eventstore import ConcurrencyConflict

if TYPE_CHECKING:
    from ppa_linking.service import LinkingService

log = structlog.get_logger(__name__)

PROXY_SESSIONS = "proxy_sessions"
SWEEP_PAGE = 500  # expired sessions ended per query of a sweep


class ProxyRefused(Exception):
    """A proxy login may not start; `reason` says why (the refusal is recorded as an event)."""

    def __init__(self, reason: ProxyRefusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


class ProxyEnded(Exception):
    """A request came with a proxy session that has ended; `reason` says how it ended."""

    def __init__(self, reason: ProxyEndReason, session: dict[str, Any]) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.session = session


class SessionNotFound(LookupError):
    """No such proxy session for this owner."""


@dataclass(frozen=True)
class ProxyStart:
    """A started session: the cookie token (secret, never stored) and the session document."""

    token: str
    session: dict[str, Any]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ProxySessions:
    """Every proxy session: started by an agency, checked per request, ended by anyone allowed to."""

    def __init__(self, service: LinkingService) -> None:
        self.svc = service
        self.coll = service.docs.collection(PROXY_SESSIONS)

    async def setup(self) -> None:
        await self.coll.ensure_index("token", unique=True)
        await self.coll.ensure_index("owner_id")
        await self.coll.ensure_index("link_id")
        await self.coll.ensure_index("end_reason", "expires_at")

    def _ttl(self) -> timedelta:
        return timedelta(seconds=self.svc.linking_settings.proxy_session_seconds)

    async def start(self, agency_id: str, link_id: str, source_ip: str, inside_proxy: bool = False) -> ProxyStart:
        """Open a session for an approved link of this agency; raises ProxyRefused (recorded) otherwise."""
        link: Link | None
        try:
            _, link = await self.svc.links.find(agency_id, link_id)
        except LinkNotFound:
            link = None
        refusal = start_refusal(link, agency_id, inside_proxy)
        if refusal is not None:
            owner_id = link.owner_id if link is not None and refusal is not ProxyRefusal.NOT_FOUND else None
            await self._refused(agency_id, owner_id, link_id if link is not None else None, refusal, source_ip)
            raise ProxyRefused(refusal)
        assert link is not None
        agency = await self.svc.agencies.coll.get(agency_id) or {}
        now = self.svc.clock()
        session_id = uuid.uuid4().hex
        token = secrets.token_urlsafe(32)
        started = ProxyLoginStarted(session_id=session_id, link_id=link.link_id, agency_id=agency_id,
                                    agency_email=link.agency_email, owner_id=link.owner_id, at=now,
                                    expires_at=now + self._ttl(), source_ip=source_ip)
        await self.svc.record(session_stream(session_id), 0, started, subject=session_id)
        doc = {"_id": session_id, "token": token_hash(token), "csrf": secrets.token_urlsafe(32),
               "link_id": link.link_id, "agency_id": agency_id, "agency_email": link.agency_email,
               "agency_company": agency.get("company", ""), "owner_id": link.owner_id,
               "started_at": now.isoformat(), "expires_at": started.expires_at.isoformat(), "source_ip": source_ip,
               "ended_at": None, "end_reason": None}
        await self.coll.insert(doc)
        log.info("proxy_login_started", session_id=session_id, link_id=link.link_id, agency_id=agency_id)
        return ProxyStart(token, doc)

    async def lookup(self, token: str | None) -> dict[str, Any] | None:
        """The session document a cookie token names (alive or not), else None."""
        if not token:
            return None
        found = await self.coll.find({"token": token_hash(token)}, limit=1)
        return found[0] if found else None

    async def _session(self, session_id: str) -> ProxySession | None:
        return fold_session(e.payload() for e in await self.svc.events.read(session_stream(session_id)))

    async def alive(self, doc: dict[str, Any]) -> bool:
        """Whether the session of `doc` is live now; records nothing (for "is a proxy session open here?")."""
        session = await self._session(doc["_id"])
        if session is None:
            return False
        pair = await self.svc.links.load(session.agency_id, session.owner_id)
        return end_reason(session, pair.current, self.svc.clock()) is None

    async def verify(self, doc: dict[str, Any], source_ip: str, still_granted: bool = True) -> dict[str, Any]:
        """The live session of `doc`; else records its end (once) and the refused request, and raises ProxyEnded.

        `still_granted` is the caller's word that the owner still allows the agency (identity's view).
        """
        session = await self._session(doc["_id"])
        if session is None:  # started doc without a stored start cannot happen; refuse rather than trust it
            raise ProxyEnded(ProxyEndReason.REVOKED, doc)
        pair = await self.svc.links.load(session.agency_id, session.owner_id)
        reason = end_reason(session, pair.current, self.svc.clock())
        if reason is None and not still_granted:
            reason = ProxyEndReason.REVOKED
        if reason is None:
            return doc
        if not session.ended:
            await self._end(session, reason, source_ip)
        await self._refused(session.agency_id, session.owner_id, session.link_id, ProxyRefusal.SESSION_ENDED,
                            source_ip, session.session_id)
        raise ProxyEnded(session.end_reason or reason, doc)

    async def end(self, session_id: str, reason: ProxyEndReason, source_ip: str = "") -> bool:
        """End a session; False when it had ended already (its first end stands)."""
        session = await self._session(session_id)
        if session is None or session.ended:
            return False
        return await self._end(session, reason, source_ip)

    async def _end(self, session: ProxySession, reason: ProxyEndReason, source_ip: str) -> bool:
        # an expiry happened at the expiry time, whenever it is noticed
        now = session.expires_at if reason is ProxyEndReason.EXPIRED else self.svc.clock()
        ended = ProxyLoginEnded(session_id=session.session_id, link_id=session.link_id, agency_id=session.agency_id,
                                owner_id=session.owner_id, at=now, reason=reason, source_ip=source_ip)
        try:
            await self.svc.record(session_stream(session.session_id), session.version, ended,
                                  subject=session.session_id)
        except ConcurrencyConflict:
            return False  # ended by someone else this very moment
        await self._mark(session.session_id, now, reason)
        log.info("proxy_login_ended", session_id=session.session_id, reason=reason.value)
        return True

    async def _mark(self, session_id: str, at: datetime, reason: ProxyEndReason) -> None:
        await self.coll.update({"_id": session_id}, {"$set": {"ended_at": at.isoformat(), "end_reason": reason.value}})

    async def end_for_link(self, link_id: str, reason: ProxyEndReason) -> int:
        """End every open session of a link (a revocation); how many ended now."""
        ended = 0
        for doc in await self.coll.find({"link_id": link_id, "end_reason": None}):
            ended += await self.end(doc["_id"], reason)
        return ended

    async def end_for_agency(self, agency_id: str, before: datetime, reason: ProxyEndReason) -> int:
        """End the agency's open sessions started before `before` (its sign-out everywhere); how many ended now."""
        ended = 0
        for doc in await self.coll.find({"agency_id": agency_id, "end_reason": None}):
            if datetime.fromisoformat(doc["started_at"]) < before:
                ended += await self.end(doc["_id"], reason)
        return ended

    async def on_agency_password_changed(self, event: AgencyPasswordChanged, env: Envelope) -> None:
        # a password change (the agency's own, or the operator's reset) signs the agency out everywhere in
        # identity; its proxy sessions into owners' My Pages end with it (sessions it started after it stay)
        ended = await self.end_for_agency(event.agency_id, env.time, ProxyEndReason.LOGOUT)
        if ended:
            log.info("proxy_sessions_ended_by_password_change", agency_id=event.agency_id, sessions=ended)

    def signouts_spec(self) -> ConsumerSpec:
        """The group that ends proxy sessions when their agency's password changes (no read model of its own)."""
        return ConsumerSpec(group="linking.proxy-signouts", topics=[IDENTITY_AGENCY],
                            handlers={AgencyPasswordChanged.event_type(): self.on_agency_password_changed})

    async def end_by_owner(self, owner_id: str, session_id: str, source_ip: str) -> bool:
        """The owner ends one of their sessions; SessionNotFound for another owner's or an unknown id."""
        doc = await self.coll.get(session_id) if session_id.isalnum() else None
        if doc is None or doc["owner_id"] != owner_id:
            raise SessionNotFound(session_id)
        return await self.end(session_id, ProxyEndReason.ENDED_BY_OWNER, source_ip)

    async def history(self, owner_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The owner's proxy sessions, newest first; expired ones get their expiry recorded first."""
        docs = await self.coll.find({"owner_id": owner_id}, sort=[("started_at", -1)], limit=limit)
        now = self.svc.clock()
        out = []
        for doc in docs:
            if doc.get("end_reason") is None and now >= datetime.fromisoformat(doc["expires_at"]):
                await self.end(doc["_id"], ProxyEndReason.EXPIRED)
                doc = await self.coll.get(doc["_id"]) or doc
            out.append(doc)
        return out

    async def expire_due(self, limit: int = SWEEP_PAGE) -> int:
        """Record the expiry of sessions left open past their end (once each, dated at the expiry time);
        how many were recorded now. Several workers may sweep at once: each session still ends once."""
        now = self.svc.clock()
        # expires_at is written by this service in UTC ISO form, so text order is time order
        due = await self.coll.find({"end_reason": None, "expires_at": {"$lte": now.isoformat()}},
                                   sort=[("expires_at", 1)], limit=limit)
        ended = 0
        for doc in due:
            if now < datetime.fromisoformat(doc["expires_at"]):
                continue
            session = await self._session(doc["_id"])
            if session is not None and session.end_reason is not None:  # end stored, document not (a crash)
                await self._mark(session.session_id, session.ended_at or now, session.end_reason)
            elif session is not None:
                ended += await self._end(session, ProxyEndReason.EXPIRED, "")
        return ended

    async def sweep(self, stop: asyncio.Event) -> None:
        """The worker's loop: every `proxy_sweep_seconds`, record the sessions that have expired meanwhile, so
        that subscribers of the proxy-session topic learn of an expiry when it happens, not when it is seen."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.svc.linking_settings.proxy_sweep_seconds)
                return
            except TimeoutError:
                pass
            try:
                while await self.expire_due() == SWEEP_PAGE:  # a full page: there may be more
                    pass
            except Exception as exc:  # the store is unavailable for a moment: try again next round
                log.warning("proxy_sweep_failed", error=repr(exc))

    async def _refused(self, agency_id: str, owner_id: str | None, link_id: str | None, reason: ProxyRefusal,
                       source_ip: str, session_id: str | None = None) -> None:
        attempt = uuid.uuid4().hex
        await self.svc.record(f"proxy-refused:{attempt}", 0,
                              ProxyLoginRefused(agency_id=agency_id, owner_id=owner_id, link_id=link_id,
                                                at=self.svc.clock(), source_ip=source_ip, reason=reason,
                                                session_id=session_id),
                              subject=session_id or attempt)
        log.info("proxy_login_refused", agency_id=agency_id, link_id=link_id, reason=reason.value)
