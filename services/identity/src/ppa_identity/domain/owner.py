"""Owner account rules: お客様情報 and 製品情報 forms, and the owner folded from its stream. No I/O.

One stream per owner (`owner:<id>`) holds every event of the owner: profile, agency grants,
products, password resets and the password hash (private). E-mail addresses are claimed on their
own stream (`owner-email:<address>`); a claim counts only while the claiming owner still uses that
address, so a claim left by an interrupted change or an old address frees itself.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import ClassVar

from ppa_contracts import Payload
from ppa_contracts.text import bad_characters
from ppa_contracts.owner import (
    AgencyAccessGranted,
    AgencyAccessWithdrawn,
    BuyPriceSegment,
    DayType,
    ElectricityPrices,
    OwnerHomeAttached,
    OwnerHomeDetached,
    OwnerPasswordChanged,
    OwnerPasswordResetRequested,
    OwnerProfile,
    OwnerProfileChanged,
    OwnerRegistered,
    Product,
    ProductChanged,
    ProductRegistered,
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
from ppa_identity.domain.prices import MAX_SEGMENTS, coverage_errors, minutes, parse_price

EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")
PASSWORD = re.compile(r"^[A-Za-z0-9]{8,128}$")
PASSWORD_RULE = "パスワードは半角英数字8文字以上で入力してください。"
MAX_AGENCY_EMAILS = 10
INFO_OPT_IN_LABEL = "運営会社からの情報提供可"

# お客様情報's text fields in the seed's order: label, longest value, required.
PROFILE_FIELDS: dict[str, tuple[str, int, bool]] = {
    "family_name": ("氏名（姓）", 25, True),
    "given_name": ("氏名（名）", 25, True),
    "family_name_kana": ("フリガナ（セイ）", 25, True),
    "given_name_kana": ("フリガナ（メイ）", 25, True),
    "nickname": ("ニックネーム", 30, False),
    "postal_code": ("郵便番号", 7, True),
    "prefecture": ("都道府県", 4, True),
    "city": ("市区町村", 50, True),
    "street": ("町名番地（建物名）", 100, True),
    "phone": ("電話番号", 11, True),
    "email": ("メールアドレス", 254, True),
}
# 製品情報: text fields and the four service subscriptions (加入/未加入).
PRODUCT_FIELDS: dict[str, tuple[str, int, bool]] = {
    "system_model": ("システム機種名", 30, True),
    "system_serial": ("システム製造番号", 30, True),
    "remote_serial": ("室内リモコン製造番号", 30, False),
    "install_postal_code": ("設置場所郵便番号", 7, True),
}
SUBSCRIPTIONS: dict[str, str] = {
    "watch_service": "見守りサービス",
    "weather_alert_control": "気象警報自動制御",
    "early_warning_control": "早期注意情報自動制御",
    "ai_control": "AI自動制御",
}
_CODE = re.compile(r"^[A-Z0-9][A-Z0-9\-]*$")


class InvalidOwnerForm(ValueError):
    """A form broke one or more rules: `errors` maps each field (or row) to its Japanese message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class OwnerCredentialSet(Payload):
    """Private to identity: the owner's password hash. Stored with the stream, never published."""

    event_service: ClassVar[str] = "identity"
    event_name: ClassVar[str] = "owner_credential_set"
    event_topic: ClassVar[str | None] = None
    owner_id: str
    password_hash: str


class OwnerEmailClaimed(Payload):
    """Private to identity: the owner took this address (on the address's own stream)."""

    event_service: ClassVar[str] = "identity"
    event_name: ClassVar[str] = "owner_email_claimed"
    event_topic: ClassVar[str | None] = None
    owner_id: str


class OwnerRegistrationRequested(Payload):
    """Private to identity: a registration form waiting for the mailed link to be followed.

    Stored on `owner-registration:<SHA-256 of the link's token>`; the token itself is never stored.
    """

    event_service: ClassVar[str] = "identity"
    event_name: ClassVar[str] = "owner_registration_requested"
    event_topic: ClassVar[str | None] = None
    registration_id: str
    profile: OwnerProfile
    password_hash: str
    expires_at: datetime


class OwnerRegistrationUsed(Payload):
    """Private to identity: the registration link was followed and made this owner (once only)."""

    event_service: ClassVar[str] = "identity"
    event_name: ClassVar[str] = "owner_registration_used"
    event_topic: ClassVar[str | None] = None
    registration_id: str
    owner_id: str


class OwnerEmailChangeRequested(Payload):
    """Private to identity: the owner asked to use a new address, to be confirmed by the link mailed there.

    Stored on `owner-email-change:<SHA-256 of the link's token>`; the token itself is never stored.
    """

    event_service: ClassVar[str] = "identity"
    event_name: ClassVar[str] = "owner_email_change_requested"
    event_topic: ClassVar[str | None] = None
    change_id: str
    owner_id: str
    old_email: str
    new_email: str
    expires_at: datetime


class OwnerEmailChangeUsed(Payload):
    """Private to identity: the e-mail change link was followed (once only)."""

    event_service: ClassVar[str] = "identity"
    event_name: ClassVar[str] = "owner_email_change_used"
    event_topic: ClassVar[str | None] = None
    change_id: str


class OwnerHomeProved(Payload):
    """Private to identity: the auth code hash the owner's proof matched, so a re-issued code ends the home."""

    event_service: ClassVar[str] = "identity"
    event_name: ClassVar[str] = "owner_home_proved"
    event_topic: ClassVar[str | None] = None
    owner_id: str
    product_id: str
    auth_code_hash: str


@dataclass(frozen=True)
class HomeProof:
    """What metering's device registry answered for a serial and auth code that match."""

    serial_number: str
    agency_id: str
    customer_number: str
    auth_code_hash: str


@dataclass(frozen=True)
class Home:
    """A product of the owner proved to be a metered home."""

    product_id: str
    serial_number: str
    agency_id: str
    customer_number: str
    attached_at: datetime
    auth_code_hash: str = ""
    attached_by_agency: str | None = None  # the agency that attached it, None when the owner proved it

    def still_proved(self, device: Mapping | None) -> bool:
        """True while the registry's device is the same customer's with the same auth code as proved."""
        return bool(device and device.get("agency_id") == self.agency_id
                    and device.get("customer_number") == self.customer_number
                    and device.get("auth_code_hash") == self.auth_code_hash)


@dataclass(frozen=True)
class Owner:
    """An owner folded from its stream."""

    owner_id: str
    profile: OwnerProfile
    registered_at: datetime
    password_hash: str = ""
    version: int = 0
    products: tuple[Product, ...] = ()
    agency_ids: Mapping[str, str] = field(default_factory=dict)  # granted agency e-mail → agency id
    resets: Mapping[str, datetime] = field(default_factory=dict)  # open reset id → expiry
    homes: Mapping[str, Home] = field(default_factory=dict)  # product id → its proved home

    @property
    def email(self) -> str:
        return self.profile.email

    def product(self, product_id: str) -> Product | None:
        """The owner's product with this id, else None."""
        return next((p for p in self.products if p.product_id == product_id), None)


def normalize_email(email: str) -> str:
    """Addresses are compared case-insensitively."""
    return unicodedata.normalize("NFKC", email).strip().lower()


def stream_for(owner_id: str) -> str:
    return f"owner:{owner_id}"


def email_stream(email: str) -> str:
    return f"owner-email:{normalize_email(email)}"


def email_error(email: str, label: str = "メールアドレス") -> str | None:
    """The message for an unusable e-mail address, else None."""
    if not email.strip():
        return f"{label}を入力してください。"
    if len(email.strip()) > 254 or not EMAIL.match(email.strip()):
        return f"{label}の形式が正しくありません。"
    return None


def password_errors(password: str, confirmation: str) -> dict[str, str]:
    """The password's problem and its confirmation's, by form field."""
    if not password:
        return {"password": "パスワードを入力してください。"}
    if not PASSWORD.match(password):
        return {"password": PASSWORD_RULE}
    if password != confirmation:
        return {"password_confirm": "パスワード（確認用）がパスワードと一致しません。"}
    return {}


def _clean(value: object) -> str:
    """Trimmed NFKC text (full-width digits and half-width katakana become the usual forms)."""
    return unicodedata.normalize("NFKC", str(value or "")).strip()


def _text_error(fld: str, value: str, label: str, longest: int, required: bool) -> str | None:
    if not value:
        if not required:
            return None
        return f"{label}を選択してください。" if fld == "prefecture" else f"{label}を入力してください。"
    if bad_characters(value):
        return f"{label}に使用できない文字（制御文字など）が含まれています。"
    if fld.endswith("_kana") and not is_katakana(value):
        return f"{label}は全角カタカナで入力してください。"
    if fld in ("postal_code", "install_postal_code") and not is_postal_code(value):
        return f"{label}{POSTAL_CODE_RULE}"
    if fld == "prefecture" and not is_prefecture(value):
        return "都道府県は一覧から選択してください。"
    if fld == "phone" and not is_phone(value):
        return PHONE_RULE
    if fld == "email":
        return email_error(value)
    if len(value) > longest:
        return f"{label}は{longest}文字以内で入力してください。"
    return None


def _opt_in(value: str, errors: dict[str, str]) -> bool:
    if value not in ("yes", "no"):
        errors["info_opt_in"] = f"{INFO_OPT_IN_LABEL}を選択してください。"
    return value == "yes"


def agency_email_errors(emails: Sequence[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """The allowed agency addresses (normalized, blank rows dropped) and each bad row's message."""
    errors: dict[str, str] = {}
    kept: list[str] = []
    for i, raw in enumerate(emails):
        email = normalize_email(raw)
        if not email:
            continue
        if message := email_error(email, "販売店・業者様のメールアドレス"):
            errors[f"agency_email_{i}"] = message
        elif email in kept:
            errors[f"agency_email_{i}"] = f"{email} は2回入力されています。"
        else:
            kept.append(email)
    if len(kept) > MAX_AGENCY_EMAILS:
        errors["agency_emails"] = f"ログインを許可する販売店・業者様は{MAX_AGENCY_EMAILS}件までです。"
    return tuple(kept), errors


def prices_from_form(sell_price: str, rows: Sequence[Mapping[str, str]],
                     errors: dict[str, str]) -> ElectricityPrices:
    """電力料金情報 from the form: a row is used when its price is filled in."""
    sell = None
    if _clean(sell_price):
        sell, message = parse_price(sell_price, "売電単価")
        if message:
            errors["sell_price"] = message
    if len(rows) > MAX_SEGMENTS:
        errors["buy"] = f"買電単価の区分は{MAX_SEGMENTS}つまでです。"
        rows = rows[:MAX_SEGMENTS]
    segments: list[BuyPriceSegment] = []
    for i, row in enumerate(rows):
        if not _clean(row.get("price")):
            continue
        price, message = parse_price(str(row.get("price")), f"買電単価（区分{i + 1}）")
        try:
            day_type = DayType(str(row.get("day_type", "")))
            start, end = _time(row.get("start")), _time(row.get("end"))
        except ValueError:
            errors[f"buy_{i}"] = f"買電単価（区分{i + 1}）の曜日・時間帯を一覧から選択してください。"
            continue
        if message:
            errors[f"buy_{i}"] = message
            continue
        segments.append(BuyPriceSegment(day_type=day_type, start=start, end=end, price=price))
    if not any(k.startswith("buy_") for k in errors) and (problems := coverage_errors(segments)):
        errors["buy"] = " ".join(problems)
    return ElectricityPrices(sell_price=sell, buy_segments=tuple(segments))


def _time(value: object) -> str:
    total = minutes(str(value or ""))
    return f"{total // 60:02d}:{total % 60:02d}"


def profile_from_form(values: Mapping[str, str], agency_emails: Sequence[str], sell_price: str,
                      segment_rows: Sequence[Mapping[str, str]]) -> OwnerProfile:
    """お客様情報 from form values; raises InvalidOwnerForm naming every bad field and row."""
    errors: dict[str, str] = {}
    text = {f: _clean(values.get(f)) for f in PROFILE_FIELDS}
    text["email"] = normalize_email(text["email"])
    for fld in ("postal_code", "phone"):
        text[fld] = compact_number(text[fld])
    for fld, (label, longest, required) in PROFILE_FIELDS.items():
        if message := _text_error(fld, text[fld], label, longest, required):
            errors[fld] = message
    opt_in = _opt_in(_clean(values.get("info_opt_in")), errors)
    emails, email_errors = agency_email_errors(agency_emails)
    errors |= email_errors
    prices = prices_from_form(sell_price, segment_rows, errors)
    if errors:
        raise InvalidOwnerForm(errors)
    return OwnerProfile(**text, info_opt_in=opt_in, agency_emails=emails, prices=prices)


def registration_from_form(values: Mapping[str, str], password: str, confirmation: str) -> OwnerProfile:
    """The profile of a new owner (no agencies or prices yet); checks the password too."""
    errors: dict[str, str] = {}
    try:
        profile = profile_from_form(values, (), "", ())
    except InvalidOwnerForm as exc:
        errors = exc.errors
        profile = None
    errors |= password_errors(password, confirmation)
    if errors or profile is None:
        raise InvalidOwnerForm(errors)
    return profile


def product_from_form(product_id: str, values: Mapping[str, str]) -> Product:
    """製品情報 from form values; raises InvalidOwnerForm naming every bad field."""
    errors: dict[str, str] = {}
    text = {f: _clean(values.get(f)) for f in PRODUCT_FIELDS}
    text["install_postal_code"] = compact_number(text["install_postal_code"])
    for fld in ("system_model", "system_serial", "remote_serial"):
        text[fld] = text[fld].upper()
    for fld, (label, longest, required) in PRODUCT_FIELDS.items():
        value = text[fld]
        if message := _text_error(fld, value, label, longest, required):
            errors[fld] = message
        elif value and fld != "install_postal_code" and not _CODE.match(value):
            errors[fld] = f"{label}は半角英数字とハイフンで入力してください。"
    subscribed = {}
    for fld, label in SUBSCRIPTIONS.items():
        choice = _clean(values.get(fld))
        if choice not in ("yes", "no"):
            errors[fld] = f"{label}の加入状況を選択してください。"
        subscribed[fld] = choice == "yes"
    if errors:
        raise InvalidOwnerForm(errors)
    return Product(product_id=product_id, **text, **subscribed)


def serial_taken(owner: Owner, product: Product) -> bool:
    """True when another of the owner's products has this system serial."""
    return any(p.system_serial == product.system_serial and p.product_id != product.product_id
               for p in owner.products)


def changed_fields(old: OwnerProfile, new: OwnerProfile) -> tuple[str, ...]:
    """Names of the profile fields whose value differs."""
    return tuple(f for f in OwnerProfile.model_fields if getattr(old, f) != getattr(new, f))


# --- folding ------------------------------------------------------------------------------------


def fold(events: Sequence[Payload]) -> Owner | None:
    """Rebuild an owner from its stream (mail requests leave it as it is, but count as versions)."""
    owner: Owner | None = None
    for version, event in enumerate(events, start=1):
        if isinstance(event, OwnerRegistered):
            owner = Owner(event.owner_id, event.profile, event.registered_at, version=version)
            continue
        if owner is None:
            continue
        owner = replace(owner, version=version)
        if isinstance(event, OwnerCredentialSet):
            owner = replace(owner, password_hash=event.password_hash)
        elif isinstance(event, OwnerProfileChanged):
            owner = replace(owner, profile=event.profile)
        elif isinstance(event, AgencyAccessGranted):
            owner = replace(owner, agency_ids={**owner.agency_ids, event.agency_email: event.agency_id})
        elif isinstance(event, AgencyAccessWithdrawn):
            owner = replace(owner, agency_ids={k: v for k, v in owner.agency_ids.items() if k != event.agency_email})
        elif isinstance(event, ProductRegistered):
            owner = replace(owner, products=(*owner.products, event.product))
        elif isinstance(event, ProductChanged):
            owner = replace(owner, products=tuple(event.product if p.product_id == event.product.product_id else p
                                                  for p in owner.products))
        elif isinstance(event, OwnerHomeAttached):
            home = Home(event.product_id, event.serial_number, event.agency_id, event.customer_number,
                        event.attached_at, attached_by_agency=event.attached_by_agency)
            owner = replace(owner, homes={**owner.homes, event.product_id: home})
        elif isinstance(event, OwnerHomeProved) and event.product_id in owner.homes:
            home = replace(owner.homes[event.product_id], auth_code_hash=event.auth_code_hash)
            owner = replace(owner, homes={**owner.homes, event.product_id: home})
        elif isinstance(event, OwnerHomeDetached):
            owner = replace(owner, homes={k: v for k, v in owner.homes.items() if k != event.product_id})
        elif isinstance(event, OwnerPasswordResetRequested):
            owner = replace(owner, resets={**owner.resets, event.reset_id: event.expires_at})
        elif isinstance(event, OwnerPasswordChanged):
            owner = replace(owner, resets={})  # a new password makes every earlier reset link useless
    return owner


def claimant(events: Sequence[Payload]) -> str | None:
    """The owner id of the latest claim on an address stream."""
    last = None
    for event in events:
        if isinstance(event, OwnerEmailClaimed):
            last = event.owner_id
    return last


def reset_usable(owner: Owner, reset_id: str, now: datetime) -> bool:
    """True while the reset link is unused, not superseded by a password change, and not expired."""
    expires_at = owner.resets.get(reset_id)
    return expires_at is not None and now < expires_at
