"""Events of the billing service: PPA customers (their devices) and invoices."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ppa_contracts.base import Payload
from ppa_contracts.text import Address, Email, Kana, Name, Notes
from ppa_contracts.topics import BILLING_CUSTOMER, BILLING_INVOICE, BILLING_SETTINGS


class CustomerEvent(Payload):
    event_service: ClassVar[str] = "billing"
    event_topic: ClassVar[str | None] = BILLING_CUSTOMER

    agency_id: str
    customer_number: str


class CustomerFields(CustomerEvent):
    serial_number: str
    name: Name  # the limits of ppa_contracts.text, as the API and the pages enforce them
    name_kana: Kana = ""
    contract_start: date | None = None
    contract_end: date | None = None
    base_fee: Decimal
    sell_unit_price: Decimal
    usage_unit_price: Decimal
    notes: Notes = ""
    email: Email | None = None


class CustomerRegistered(CustomerFields):
    """A PPA customer and its device; the auth code travels only as its SHA-256 hash."""

    event_name: ClassVar[str] = "customer_registered"
    auth_code_hash: str


class CustomerChanged(CustomerFields):
    """The customer's editable fields after a change (the auth code is not editable)."""

    event_name: ClassVar[str] = "customer_changed"


class CustomerDeleted(CustomerEvent):
    """The customer is gone; invoices already issued stay."""

    event_name: ClassVar[str] = "customer_deleted"
    serial_number: str


class AuthCodeReissued(CustomerEvent):
    """The device's auth code was replaced; the old one stops working."""

    event_name: ClassVar[str] = "auth_code_reissued"
    serial_number: str
    auth_code_hash: str


class BillingSettingsChanged(Payload):
    """An agency's billing settings as a whole (the closing day, rounding and issuer its invoices use)."""

    event_service: ClassVar[str] = "billing"
    event_name: ClassVar[str] = "billing_settings_changed"
    event_topic: ClassVar[str | None] = BILLING_SETTINGS

    agency_id: str
    closing_day: int | Literal["end_of_month"]
    rounding: Literal["half_up", "down", "half_even"]
    issuer_name: Name = ""
    issuer_address: Address = ""
    registration_number: str | None = None
    prices_include_tax: bool = True
    tax_rate_percent: int = 10


class InvoiceDay(BaseModel):
    """One row of an invoice's daily table (2 decimals each)."""

    model_config = ConfigDict(frozen=True)

    date: date
    generation_kwh: Decimal
    sold_kwh: Decimal
    usage_kwh: Decimal
    sell_fee: Decimal
    usage_fee: Decimal


class InvoiceIssuer(BaseModel):
    """Who issues the invoice, as printed on it."""

    model_config = ConfigDict(frozen=True)

    name: str
    address: str = ""
    registration_number: str | None = None


class InvoiceFigures(BaseModel):
    """The frozen content of one invoice revision: prices, period, kWh, yen and daily rows."""

    model_config = ConfigDict(frozen=True)

    name: str
    period_start: date
    period_end: date
    contract_start: date | None = None
    contract_end: date | None = None
    base_fee: Decimal
    generation_kwh: Decimal
    sold_kwh: Decimal
    usage_kwh: Decimal
    sell_unit_price: Decimal
    usage_unit_price: Decimal
    sell_fee: Decimal
    usage_fee: Decimal
    total: Decimal
    consumption_tax: Decimal
    tax_rate_percent: int = 10
    rounding: Literal["half_up", "down", "half_even"] = "half_up"
    daily: list[InvoiceDay] = []


class InvoiceEvent(Payload):
    event_service: ClassVar[str] = "billing"
    event_topic: ClassVar[str | None] = BILLING_INVOICE

    agency_id: str
    invoice_number: str
    customer_number: str
    month: str


class InvoiceIssued(InvoiceEvent):
    """The draft was frozen into revision 1; its PDF is stored as `document_id` and mailed."""

    event_name: ClassVar[str] = "invoice_issued"
    revision: int
    document_id: str
    figures: InvoiceFigures
    issuer: InvoiceIssuer
    emailed_to: str | None = None
    usage_versions: dict[str, int] = Field(default_factory=dict, description=(
        "The version of each day's usage (ISO date → daily-usage stream version) the figures include."))


# InvoiceRevised.reason values
USAGE_REVISED = "daily_usage_revised"
REISSUED_AFTER_VOID = "reissued_after_void"


class InvoiceRevised(InvoiceEvent):
    """Daily usage changed after issue: a new revision with a new document (never a silent edit)."""

    event_name: ClassVar[str] = "invoice_revised"
    revision: int
    document_id: str
    figures: InvoiceFigures
    issuer: InvoiceIssuer
    previous_total: Decimal
    reason: str = Field("daily_usage_revised", description=(
        "daily_usage_revised: usage changed after issue (same prices); reissued_after_void: the voided invoice "
        "issued again from the current draft (current prices and settings), ending the void."))
    emailed_to: str | None = None
    usage_versions: dict[str, int] = Field(default_factory=dict, description=(
        "The version of each day's usage (ISO date → daily-usage stream version) the figures include."))


class InvoiceVoided(InvoiceEvent):
    """The invoice is void; `document_id` is its last revision stamped 取消."""

    event_name: ClassVar[str] = "invoice_voided"
    revision: int
    document_id: str
    reason: str = ""
