"""Events of identity's owner accounts: お客様情報, products and the agencies an owner allows.

Every event of one owner shares the owner id as its key, so readers see them in the order identity
stored them. When the owner edits お客様情報, `owner_profile_changed` comes first, then one
`agency_access_granted` / `agency_access_withdrawn` per added or removed agency e-mail.
Passwords and reset links never travel here; a reset link goes only in an `EmailRequested`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ppa_contracts.base import Payload
from ppa_contracts.topics import IDENTITY_OWNER

HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class DayType(StrEnum):
    """Which days a buy-price segment applies to."""

    ALL = "all"  # 全日
    WEEKDAY = "weekday"  # 平日
    HOLIDAY = "holiday"  # 土日祝 (Saturdays, Sundays and national holidays)


DAY_TYPE_LABELS: dict[DayType, str] = {DayType.ALL: "全日", DayType.WEEKDAY: "平日", DayType.HOLIDAY: "土日祝"}


class BuyPriceSegment(BaseModel):
    """One 買電単価 segment: a day type and a time range [start, end); end == start means the whole day.

    Times are HH:MM; an end of 00:00 means midnight at the end of the day.
    """

    model_config = ConfigDict(frozen=True)

    day_type: DayType
    start: str = Field(pattern=HHMM, description="Start time HH:MM (inclusive).")
    end: str = Field(pattern=HHMM, description="End time HH:MM (exclusive); 00:00 is the end of the day.")
    price: Decimal = Field(ge=0, decimal_places=2, description="Buy price in yen per kWh.")


class ElectricityPrices(BaseModel):
    """電力料金情報: the sell price and up to five buy-price segments covering every day and time."""

    model_config = ConfigDict(frozen=True)

    sell_price: Decimal | None = Field(None, ge=0, decimal_places=2, description="売電単価, yen per kWh.")
    buy_segments: tuple[BuyPriceSegment, ...] = Field((), max_length=5, description="買電単価 segments.")


class OwnerProfile(BaseModel):
    """お客様情報 as the owner registered or last edited it (never the password)."""

    model_config = ConfigDict(frozen=True)

    email: str = Field(description="メールアドレス; the owner's login ID.")
    family_name: str = Field("", description="氏名 姓")
    given_name: str = Field("", description="氏名 名")
    family_name_kana: str = Field("", description="フリガナ セイ")
    given_name_kana: str = Field("", description="フリガナ メイ")
    nickname: str = Field("", description="ニックネーム")
    postal_code: str = Field("", description="郵便番号, 7 digits without hyphen.")
    prefecture: str = Field("", description="都道府県")
    city: str = Field("", description="市区町村")
    street: str = Field("", description="町名番地 (建物名)")
    phone: str = Field("", description="電話番号, digits only.")
    info_opt_in: bool = Field(False, description="ニチコンからの情報提供可 (はい/いいえ).")
    agency_emails: tuple[str, ...] = Field((), description="ログインを許可する販売店・業者様のメールアドレス.")
    prices: ElectricityPrices = Field(default_factory=ElectricityPrices, description="電力料金情報")

    @property
    def name(self) -> str:
        """氏名, family and given name separated by a space."""
        return " ".join(p for p in (self.family_name, self.given_name) if p)

    @property
    def name_kana(self) -> str:
        """フリガナ, セイ and メイ separated by a space."""
        return " ".join(p for p in (self.family_name_kana, self.given_name_kana) if p)


class Product(BaseModel):
    """製品情報: one of the owner's storage systems and its service subscriptions (加入 = True)."""

    model_config = ConfigDict(frozen=True)

    product_id: str = Field(description="Product ID, a short number.")
    system_model: str = Field(description="システム機種名")
    system_serial: str = Field(description="システム製造番号")
    remote_serial: str = Field("", description="室内リモコン製造番号")
    install_postal_code: str = Field("", description="設置場所郵便番号")
    watch_service: bool = Field(False, description="見守りサービス 加入")
    weather_alert_control: bool = Field(False, description="気象警報自動制御 加入")
    early_warning_control: bool = Field(False, description="早期注意情報自動制御 加入")
    ai_control: bool = Field(False, description="AI自動制御 加入")


class OwnerEvent(Payload):
    event_service: ClassVar[str] = "identity"
    event_topic: ClassVar[str] = IDENTITY_OWNER

    owner_id: str


class OwnerRegistered(OwnerEvent):
    """An owner account exists; its e-mail is the login ID."""

    event_name: ClassVar[str] = "owner_registered"
    profile: OwnerProfile
    registered_at: datetime = Field(description="登録日")


class OwnerProfileChanged(OwnerEvent):
    """The owner edited お客様情報; `profile` is the whole new state."""

    event_name: ClassVar[str] = "owner_profile_changed"
    profile: OwnerProfile
    changed: tuple[str, ...] = Field((), description="Names of the OwnerProfile fields that changed.")


class AgencyAccessGranted(OwnerEvent):
    """The owner allowed a registered agency's e-mail: the agency may ask to link."""

    event_name: ClassVar[str] = "agency_access_granted"
    agency_email: str
    agency_id: str


class AgencyAccessWithdrawn(OwnerEvent):
    """The owner removed an agency's e-mail: any link with that agency ends."""

    event_name: ClassVar[str] = "agency_access_withdrawn"
    agency_email: str
    agency_id: str


class ProductRegistered(OwnerEvent):
    """The owner registered a product."""

    event_name: ClassVar[str] = "product_registered"
    product: Product


class ProductChanged(OwnerEvent):
    """The owner edited a product; `product` is the whole new state."""

    event_name: ClassVar[str] = "product_changed"
    product: Product


class OwnerHomeAttached(OwnerEvent):
    """The owner proved one of its products is a metered home (its serial with the auth code the operator
    handed the household): from now on the owner sees that device's energy, until it is detached or the
    proof lapses (the customer deleted, its auth code re-issued, the serial moved to another customer)."""

    event_name: ClassVar[str] = "owner_home_attached"
    product_id: str = Field(description="The home's id: the owner's product (製品情報) proved with the auth code, "
                                        "or a new id when an agency attached one of its PPA customers.")
    serial_number: str = Field(description="システム製造番号, the metered device's serial.")
    agency_id: str = Field(description="The agency whose PPA customer the device belongs to.")
    customer_number: str = Field(description="That PPA customer's number.")
    attached_at: datetime
    attached_by_agency: str | None = Field(None, description="The agency that attached its customer to the owner "
                                                             "through an approved link (顧客管理 → オーナー連携); "
                                                             "None when the owner proved the device itself.")


class OwnerHomeDetached(OwnerEvent):
    """The owner no longer sees the home's data (`reason`: owner = the owner detached it; serial_changed = the
    product's serial was edited without a new proof)."""

    event_name: ClassVar[str] = "owner_home_detached"
    product_id: str
    serial_number: str
    reason: str = Field(description="owner | serial_changed")


class OwnerPasswordResetRequested(OwnerEvent):
    """A reset link was sent to the owner (the link itself travels only on notify's topic)."""

    event_name: ClassVar[str] = "owner_password_reset_requested"
    reset_id: str = Field(description="The reset request's id (not the secret of the link).")
    expires_at: datetime = Field(description="The link works until this moment (one hour after the request).")


class OwnerPasswordChanged(OwnerEvent):
    """The owner set a new password, through a reset link or on My Page (the password never travels)."""

    event_name: ClassVar[str] = "owner_password_changed"
    reset_id: str | None = Field(None, description="The reset request it completed, if any.")
