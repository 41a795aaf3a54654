"""How invoices print numbers and dates: yen with thousands separators, 2-decimal kWh, YYYY/MM/DD."""

from __future__ import annotations

from datetime import date
from decimal import Decimal


def yen(value: Decimal | str | int) -> str:
    """Whole yen with thousands separators: 2,098."""
    return f"{Decimal(value):,.0f}"


def kwh(value: Decimal | str) -> str:
    """Two decimals with thousands separators: 1,388.20."""
    return f"{Decimal(value):,.2f}"


def slash_date(value: date | str) -> str:
    """A date as the screens show it: 2024/01/27."""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return f"{day.year:04d}/{day.month:02d}/{day.day:02d}"
