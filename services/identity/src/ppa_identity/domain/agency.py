"""Agency account rules: pure functions over events, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from ppa_contracts import Payload
from ppa_contracts.identity import AgencyProfile, AgencyRegistered

EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")
PASSWORD = re.compile(r"^[A-Za-z0-9]{8,}$")


class InvalidAgency(ValueError):
    """The agency data breaks a rule; `field` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class AgencyCredentialSet(Payload):
    """Private to identity: the agency's password hash. Stored with the stream, never published."""

    event_service: ClassVar[str] = "identity"
    event_name: ClassVar[str] = "agency_credential_set"
    event_topic: ClassVar[str | None] = None
    agency_id: str
    password_hash: str


@dataclass(frozen=True)
class Agency:
    """An agency folded from its events."""

    agency_id: str
    email: str
    profile: AgencyProfile
    password_hash: str
    version: int


def normalize_email(email: str) -> str:
    """E-mail addresses identify agencies case-insensitively."""
    return email.strip().lower()


def stream_for(email: str) -> str:
    """One stream per agency e-mail: registering the same e-mail twice is a version conflict."""
    return f"agency:{normalize_email(email)}"


def validate_new_agency(email: str, password: str, company: str) -> None:
    """Rules for creating an agency account."""
    if not EMAIL.match(email.strip()):
        raise InvalidAgency("email", "メールアドレスの形式が正しくありません。")
    if not PASSWORD.match(password):
        raise InvalidAgency("password", "ログインパスワードは半角英数字8文字以上で入力してください。")
    if not company.strip():
        raise InvalidAgency("company", "企業名を入力してください。")


def fold(events: list[Payload]) -> Agency | None:
    """Rebuild an agency from its stream."""
    agency: Agency | None = None
    for version, event in enumerate(events, start=1):
        if isinstance(event, AgencyRegistered):
            agency = Agency(event.agency_id, event.email, event.profile, "", version)
        elif agency is not None and isinstance(event, AgencyCredentialSet):
            agency = Agency(agency.agency_id, agency.email, agency.profile, event.password_hash, version)
        elif agency is not None:
            profile = getattr(event, "profile", agency.profile)
            agency = Agency(agency.agency_id, agency.email, profile, agency.password_hash, version)
    return agency
