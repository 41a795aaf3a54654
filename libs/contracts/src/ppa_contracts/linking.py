"""Events of the linking service: link requests and their decisions, and audited proxy-login sessions.

A link joins one owner and one agency. Its id is a short number (the `#` of the agency's user list
and the `/agency_admin/{link_id}` page); events of one link share it as their key. A pair of owner
and agency has at most one open link (pending or approved) at a time; a grant after a rejection or
revocation opens a new link with a new id.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ppa_contracts.base import Payload
from ppa_contracts.topics import LINKING_LINK, LINKING_PROXY_SESSION


class LinkOwner(BaseModel):
    """What the agency learns about the owner when the link is requested (the seed's e-mail fields)."""

    model_config = ConfigDict(frozen=True)

    owner_id: str
    email: str
    name: str = Field("", description="氏名, family and given name separated by a space.")
    name_kana: str = Field("", description="フリガナ, セイ and メイ separated by a space.")
    postal_code: str = ""
    prefecture: str = ""
    city: str = ""
    street: str = ""
    registered_at: datetime | None = Field(None, description="When the owner's account was registered (登録日).")


class LinkProduct(BaseModel):
    """One of the owner's products as the request page shows it (登録製品情報)."""

    model_config = ConfigDict(frozen=True)

    product_id: str
    system_model: str = Field("", description="システム機種名")
    system_serial: str = Field("", description="システム製造番号")
    remote_serial: str = Field("", description="室内リモコン製造番号")
    install_postal_code: str = Field("", description="設置場所郵便番号")
    watch_service: bool = Field(False, description="見守りサービス 加入")
    weather_alert_control: bool = Field(False, description="気象警報自動制御 加入")
    early_warning_control: bool = Field(False, description="早期注意情報自動制御 加入")
    ai_control: bool = Field(False, description="AI自動制御 加入")


class LinkEvent(Payload):
    event_service: ClassVar[str] = "linking"
    event_topic: ClassVar[str] = LINKING_LINK

    link_id: str
    agency_id: str
    owner_id: str


class LinkRequested(LinkEvent):
    """The owner allowed the agency's e-mail: the agency is asked to approve the link."""

    event_name: ClassVar[str] = "link_requested"
    agency_email: str
    owner: LinkOwner
    products: list[LinkProduct] = Field(default_factory=list)
    grant_version: int | None = Field(None, description="The owner stream's version of the grant that opened it.")


class LinkApproved(LinkEvent):
    """The agency approved the link: it may now proxy-login to the owner's My Page."""

    event_name: ClassVar[str] = "link_approved"


class LinkRejected(LinkEvent):
    """The agency declined the link (the owner is told by e-mail)."""

    event_name: ClassVar[str] = "link_rejected"


class RevokeReason(StrEnum):
    OWNER_WITHDREW = "owner_withdrew"
    AGENCY_REMOVED = "agency_removed"


class LinkRevoked(LinkEvent):
    """The link ended: the owner removed the agency's e-mail (a pending request is withdrawn the same way)."""

    event_name: ClassVar[str] = "link_revoked"
    reason: RevokeReason
    was: str = Field("", description="The link's status before: pending or approved.")


class ProxyEndReason(StrEnum):
    LOGOUT = "logout"
    EXPIRED = "expired"
    REVOKED = "revoked"
    ENDED_BY_OWNER = "ended_by_owner"


class ProxyRefusal(StrEnum):
    NOT_FOUND = "not_found"  # no such link for this agency
    NOT_APPROVED = "not_approved"  # pending or rejected
    REVOKED = "revoked"  # the owner withdrew the agency
    NESTED = "nested"  # asked from inside a proxy session
    SESSION_ENDED = "session_ended"  # a request of a session that has ended (any reason)


class ProxySessionEvent(Payload):
    event_service: ClassVar[str] = "linking"
    event_topic: ClassVar[str] = LINKING_PROXY_SESSION

    agency_id: str
    owner_id: str | None
    link_id: str | None
    at: datetime = Field(description="When it happened.")
    source_ip: str = Field("", description="The address the request came from; empty when no request caused it.")


class ProxyLoginStarted(ProxySessionEvent):
    """An agency opened the owner's My Page as the owner (代理ログイン)."""

    event_name: ClassVar[str] = "proxy_login_started"
    session_id: str
    agency_email: str
    expires_at: datetime


class ProxyLoginEnded(ProxySessionEvent):
    """A proxy session ended: the agency went back, it expired, the link was revoked, or the owner ended it."""

    event_name: ClassVar[str] = "proxy_login_ended"
    session_id: str
    reason: ProxyEndReason


class ProxyLoginRefused(ProxySessionEvent):
    """A proxy login (or a request of an ended proxy session) was refused."""

    event_name: ClassVar[str] = "proxy_login_refused"
    reason: ProxyRefusal
    session_id: str | None = Field(None, description="The ended session whose request was refused, if any.")
