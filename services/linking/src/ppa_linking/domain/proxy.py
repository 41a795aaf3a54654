"""Proxy-login (代理ログイン) rules: who may start one, and whether a session is still alive. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from ppa_contracts import Payload
from ppa_contracts.linking import ProxyEndReason, ProxyLoginEnded, ProxyLoginStarted, ProxyRefusal
from ppa_linking.domain.links import Link, LinkStatus


@dataclass(frozen=True)
class ProxySession:
    """One proxy session folded from its stream."""

    session_id: str
    link_id: str
    agency_id: str
    agency_email: str
    owner_id: str
    started_at: datetime
    expires_at: datetime
    source_ip: str
    ended_at: datetime | None = None
    end_reason: ProxyEndReason | None = None
    version: int = 1

    @property
    def ended(self) -> bool:
        return self.end_reason is not None


def session_stream(session_id: str) -> str:
    """The event stream of one proxy session."""
    return f"proxy:{session_id}"


def fold_session(events: Iterable[Payload]) -> ProxySession | None:
    """The session from its events (None before it started)."""
    session: ProxySession | None = None
    version = 0
    for event in events:
        version += 1
        if isinstance(event, ProxyLoginStarted):
            session = ProxySession(event.session_id, event.link_id or "", event.agency_id, event.agency_email,
                                   event.owner_id or "", event.at, event.expires_at, event.source_ip,
                                   version=version)
        elif isinstance(event, ProxyLoginEnded) and session is not None and not session.ended:
            session = replace(session, ended_at=event.at, end_reason=event.reason, version=version)
        elif session is not None:
            session = replace(session, version=version)
    return session


def start_refusal(link: Link | None, agency_id: str, inside_proxy: bool) -> ProxyRefusal | None:
    """Why this agency may not proxy-login through this link now, or None when it may."""
    if inside_proxy:
        return ProxyRefusal.NESTED
    if link is None or link.agency_id != agency_id:
        return ProxyRefusal.NOT_FOUND
    if link.status is LinkStatus.REVOKED:
        return ProxyRefusal.REVOKED
    if link.status is not LinkStatus.APPROVED:
        return ProxyRefusal.NOT_APPROVED
    return None


def end_reason(session: ProxySession, link: Link | None, now: datetime) -> ProxyEndReason | None:
    """Why a live session must end now (expired, or its link is no longer approved), else None."""
    if session.ended:
        return session.end_reason
    if now >= session.expires_at:
        return ProxyEndReason.EXPIRED
    if link is None or link.link_id != session.link_id or link.status is not LinkStatus.APPROVED:
        return ProxyEndReason.REVOKED
    return None
