"""Billing test helpers: a customer's registration body and daily-usage events as metering publishes them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from ppa_contracts import Envelope
from ppa_contracts.metering import DailyUsageComputed, DailyUsageRevised, DailyValues


def customer(number: str) -> dict[str, str]:
    return {"customer_number": number, "serial_number": f"S{number}", "name": f"顧客{number[-4:]}",
            "base_fee": "980", "sell_unit_price": "16.00", "usage_unit_price": "27.00",
            "contract_start": "2023-06-01"}


def values(gen: str, sold: str) -> DailyValues:
    g, s, z = Decimal(gen), Decimal(sold), Decimal("0.000")
    return DailyValues(generation_kwh=g, sold_kwh=s, usage_kwh=g - s, import_kwh=z, battery_charge_kwh=z,
                       battery_discharge_kwh=z, estimated=False, reset=False, usage_clamped=False)


def day(agency_id: str, number: str, when: str, version: int, new: DailyValues,
        old: DailyValues | None = None) -> Envelope:
    base = {"agency_id": agency_id, "customer_number": number, "serial_number": f"S{number}",
            "date": date.fromisoformat(when)}
    payload = DailyUsageRevised(**base, old=old, new=new) if old else DailyUsageComputed(**base, values=new)
    return Envelope.wrap(payload, subject=number, correlation_id="t", aggregate_version=version)
