"""Events of the metering service: accepted readings and daily usage."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from ppa_contracts.base import Payload
from ppa_contracts.topics import METERING_DAILY_USAGE, METERING_READINGS


class ReadingValue(BaseModel):
    """One cumulative register value."""

    model_config = ConfigDict(frozen=True)

    channel: str
    at: datetime
    kwh: Decimal
    register_max: Decimal | None = None


class ReadingBatchAccepted(Payload):
    """New readings of one device, validated and deduplicated at the API (keyed by serial)."""

    event_service: ClassVar[str] = "metering"
    event_name: ClassVar[str] = "reading_batch_accepted"
    event_topic: ClassVar[str | None] = METERING_READINGS

    serial_number: str
    readings: list[ReadingValue]


class DailyValues(BaseModel):
    """A customer's JST day."""

    model_config = ConfigDict(frozen=True)

    generation_kwh: Decimal
    sold_kwh: Decimal
    usage_kwh: Decimal
    import_kwh: Decimal
    battery_charge_kwh: Decimal
    battery_discharge_kwh: Decimal
    estimated: bool
    reset: bool
    usage_clamped: bool


class DailyUsageEvent(Payload):
    event_service: ClassVar[str] = "metering"
    event_topic: ClassVar[str | None] = METERING_DAILY_USAGE

    agency_id: str
    customer_number: str
    serial_number: str
    date: date


class DailyUsageComputed(DailyUsageEvent):
    """A day's totals, first computed."""

    event_name: ClassVar[str] = "daily_usage_computed"
    values: DailyValues


class DailyUsageRevised(DailyUsageEvent):
    """A day's totals changed (late or out-of-order readings): old and new values."""

    event_name: ClassVar[str] = "daily_usage_revised"
    old: DailyValues
    new: DailyValues
