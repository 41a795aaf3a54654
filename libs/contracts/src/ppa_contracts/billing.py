"""Events of the billing service: PPA customers (their devices) and invoices."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import ClassVar

from ppa_contracts.base import Payload
from ppa_contracts.topics import BILLING_CUSTOMER


class CustomerEvent(Payload):
    event_service: ClassVar[str] = "billing"
    event_topic: ClassVar[str | None] = BILLING_CUSTOMER

    agency_id: str
    customer_number: str


class CustomerFields(CustomerEvent):
    serial_number: str
    name: str
    name_kana: str = ""
    contract_start: date | None = None
    contract_end: date | None = None
    base_fee: Decimal
    sell_unit_price: Decimal
    usage_unit_price: Decimal
    notes: str = ""
    email: str | None = None


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
