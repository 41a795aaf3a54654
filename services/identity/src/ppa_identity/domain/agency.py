"""Agency account rules: pure functions over events, no I/O."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from ppa_contracts import Payload
from ppa_contracts.text import bad_characters
from ppa_contracts.identity import (
    AgencyPasswordChanged,
    AgencyProfile,
    AgencyProfileChanged,
    AgencyRegistered,
    AgencySignupRequested,
)
from ppa_identity.domain.japan import (
    PHONE_RULE,
    POSTAL_CODE_RULE,
    compact_number,
    is_katakana,
    is_phone,
    is_postal_code,
    is_prefecture,
)

EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")
PASSWORD = re.compile(r"^[A-Za-z0-9]{8,128}$")

# The profile fields in the seed's order, with the seed's labels and the longest value accepted.
PROFILE_FIELDS: dict[str, tuple[str, int]] = {
    "company": ("企業名", 100),
    "name": ("氏名", 50),
    "name_kana": ("フリガナ", 50),
    "postal_code": ("郵便番号", 7),
    "prefecture": ("都道府県", 4),
    "city": ("市区町村", 50),
    "street": ("町名番地（建物名）", 100),
    "phone": ("電話番号", 11),
}
PASSWORD_RULE = "ログインパスワードは半角英数字8文字以上で入力してください。"


class InvalidAgency(ValueError):
    """The agency data breaks a rule; `field` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class InvalidAgencyForm(ValueError):
    """A form broke one or more rules: `errors` maps each field to its Japanese message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


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
    signup_id: str | None = None
    # the stream version of the last AgencyPasswordChanged (0: the password set at registration); a bearer token
    # names it and is valid only while it is still the agency's current one
    password_version: int = 0


def normalize_email(email: str) -> str:
    """E-mail addresses identify agencies case-insensitively."""
    return email.strip().lower()


def stream_for(email: str) -> str:
    """One stream per agency e-mail: registering the same e-mail twice is a version conflict."""
    return f"agency:{normalize_email(email)}"


def email_error(email: str) -> str | None:
    """The message for an unusable e-mail address, else None."""
    if not email.strip():
        return "メールアドレスを入力してください。"
    if len(email.strip()) > 254 or not EMAIL.match(email.strip()):
        return "メールアドレスの形式が正しくありません。"
    return None


def validate_new_agency(email: str, password: str, company: str) -> None:
    """Rules for creating an agency account without the sign-up form (CLI, first account)."""
    if email_error(email):
        raise InvalidAgency("email", "メールアドレスの形式が正しくありません。")
    if not PASSWORD.match(password):
        raise InvalidAgency("password", PASSWORD_RULE)
    if not company.strip():
        raise InvalidAgency("company", "企業名を入力してください。")


def _field_error(field: str, value: str) -> str | None:
    label, longest = PROFILE_FIELDS[field]
    if not value:
        return f"{label}を選択してください。" if field == "prefecture" else f"{label}を入力してください。"
    if bad_characters(value):
        return f"{label}に使用できない文字（制御文字など）が含まれています。"
    if field == "name_kana" and not is_katakana(value):
        return "フリガナは全角カタカナで入力してください。"
    if field == "postal_code" and not is_postal_code(value):
        return f"郵便番号{POSTAL_CODE_RULE}"
    if field == "prefecture" and not is_prefecture(value):
        return "都道府県は一覧から選択してください。"
    if field == "phone" and not is_phone(value):
        return PHONE_RULE
    if len(value) > longest:
        return f"{label}は{longest}文字以内で入力してください。"
    return None


def normalized_profile(values: Mapping[str, str]) -> dict[str, str]:
    """The profile fields as people mean them: trimmed; a postal code and phone number as digits alone
    (103-0026, full-width digits, spaces); half-width katakana in the furigana made full-width."""
    out = {f: str(values.get(f, "")).strip() for f in PROFILE_FIELDS}
    for field in ("postal_code", "phone"):
        out[field] = compact_number(out[field])
    out["name_kana"] = unicodedata.normalize("NFKC", out["name_kana"])
    return out


def profile_errors(values: Mapping[str, str]) -> dict[str, str]:
    """Every profile field's problem (empty when the profile is valid)."""
    errors = {}
    values = normalized_profile(values)
    for field in PROFILE_FIELDS:
        message = _field_error(field, values[field])
        if message:
            errors[field] = message
    return errors


def password_errors(password: str, confirmation: str) -> dict[str, str]:
    """The password's problem and its confirmation's, by form field."""
    if not password:
        return {"password": "ログインパスワードを入力してください。"}
    if not PASSWORD.match(password):
        return {"password": PASSWORD_RULE}
    if password != confirmation:
        return {"password_confirm": "ログインパスワード（確認用）がログインパスワードと一致しません。"}
    return {}


def validate_profile(values: Mapping[str, str]) -> AgencyProfile:
    """A profile from form values (trimmed); raises InvalidAgencyForm listing every bad field."""
    errors = profile_errors(values)
    if errors:
        raise InvalidAgencyForm(errors)
    return AgencyProfile(**normalized_profile(values))


def fold(events: list[Payload]) -> Agency | None:
    """Rebuild an agency from its stream (mail requests and other events leave it as it is)."""
    agency: Agency | None = None
    for version, event in enumerate(events, start=1):
        if isinstance(event, AgencyRegistered):
            agency = Agency(event.agency_id, event.email, event.profile, "", version, event.signup_id)
        elif agency is None:
            continue
        elif isinstance(event, AgencyCredentialSet):
            agency = _with(agency, version, password_hash=event.password_hash)
        elif isinstance(event, AgencyProfileChanged):
            agency = _with(agency, version, profile=event.profile)
        elif isinstance(event, AgencyPasswordChanged):
            agency = _with(agency, version, password_version=version)
        else:
            agency = _with(agency, version)
    return agency


def _with(agency: Agency, version: int, **changes: object) -> Agency:
    fields = {**agency.__dict__, "version": version, **changes}
    return Agency(**fields)


# --- sign-up links ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignupLink:
    """A sign-up link's facts: who asked, until when it works (the token itself is never stored)."""

    signup_id: str
    email: str
    expires_at: datetime


class SignupRefusal(StrEnum):
    """Why a sign-up link cannot be used."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    REGISTERED = "registered"


def fold_signup(events: list[Payload]) -> SignupLink | None:
    """The sign-up link recorded in a sign-up stream, if any."""
    for event in events:
        if isinstance(event, AgencySignupRequested):
            return SignupLink(event.signup_id, event.email, event.expires_at)
    return None


def signup_refusal(link: SignupLink | None, agency: Agency | None, now: datetime) -> SignupRefusal | None:
    """Why the link cannot register an agency now, or None when it can.

    A link that registered its agency says `used` even after it expired, so a second click on the
    link in the mail tells the person they are done rather than to start again.
    """
    if link is None:
        return SignupRefusal.UNKNOWN
    if agency is not None and agency.signup_id == link.signup_id:
        return SignupRefusal.USED
    if agency is not None:
        return SignupRefusal.REGISTERED
    if now >= link.expires_at:
        return SignupRefusal.EXPIRED
    return None
