"""Billing months (利用月 `YYYY/MM`), their periods under a closing-day setting, invoice numbers."""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final, Literal

from .customer import CUSTOMER_NUMBER

END_OF_MONTH: Final = "end_of_month"
ClosingDay = int | Literal["end_of_month"]
DEFAULT_CLOSING_DAY: Final[ClosingDay] = 15
# 31 would only be "end of month" labelled one month early; operators choose END_OF_MONTH instead.
MAX_CLOSING_DAY: Final = 30

# what people type: 2024/01, 2024-01, 2024/1, 2024年1月 (full-width digits and spaces are normalised first)
_MONTH = re.compile(r"([0-9]{4})(?:[/\-‐−–ー]|年)([0-9]{1,2})月?")
# the one message every page shows for a 利用月 it cannot read
MONTH_MESSAGE: Final = "利用月はYYYY/MMの形式で入力してください（例: 2024/01、2024-01）。"
_INVOICE_NUMBER = re.compile(r"([0-9]{2})([0-9]{2})(11[0-9]{8})")


class InvalidBillingMonth(ValueError):
    """A billing month, closing day or invoice number is malformed."""


@dataclass(frozen=True, order=True)
class BillingMonth:
    """A billing month 利用月, e.g. 2024/01; years 2000–2099 because invoice numbers keep `YY`."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not (2000 <= self.year <= 2099 and 1 <= self.month <= 12):
            raise InvalidBillingMonth(f"利用月が正しくありません: {self.year}/{self.month}")

    @classmethod
    def parse(cls, text: str) -> BillingMonth:
        """Parse `YYYY/MM` or `YYYY-MM` (every page and the API alike), full-width or with spaces too."""
        typed = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)) if isinstance(text, str) else ""
        match = _MONTH.fullmatch(typed)
        if match is None:
            raise InvalidBillingMonth(f"利用月はYYYY/MMの形式で入力してください: {text!r}")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.year:04d}/{self.month:02d}"

    def iso(self) -> str:
        """Return `YYYY-MM`, the API query form."""
        return f"{self.year:04d}-{self.month:02d}"

    def shift(self, months: int) -> BillingMonth:
        """Return the billing month `months` later (negative for earlier)."""
        index = self.year * 12 + self.month - 1 + months
        return BillingMonth(index // 12, index % 12 + 1)

    def next(self) -> BillingMonth:
        """Return the following billing month."""
        return self.shift(1)

    def previous(self) -> BillingMonth:
        """Return the preceding billing month."""
        return self.shift(-1)


@dataclass(frozen=True)
class BillingPeriod:
    """The inclusive date range a billing month covers."""

    start: date
    end: date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end

    def __len__(self) -> int:
        return (self.end - self.start).days + 1

    def days(self) -> Iterator[date]:
        """Yield every date of the period in order."""
        for offset in range(len(self)):
            yield self.start + timedelta(days=offset)


def parse_closing_day(value: Any) -> ClosingDay:
    """Return a valid closing day: 1–30, or END_OF_MONTH (also accepted as "月末")."""
    if value in (END_OF_MONTH, "月末"):
        return END_OF_MONTH
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_CLOSING_DAY:
        return value
    raise InvalidBillingMonth("締め日は1〜30日または月末で指定してください。")


def closing_date(year: int, month: int, closing_day: ClosingDay) -> date:
    """Return the closing date in a calendar month; a day past a short month's end clamps to it."""
    last = calendar.monthrange(year, month)[1]
    day = last if closing_day == END_OF_MONTH else min(parse_closing_day(closing_day), last)
    return date(year, month, day)


def period_of(month: BillingMonth, closing_day: ClosingDay = DEFAULT_CLOSING_DAY) -> BillingPeriod:
    """Return the period of a billing month: the day after its closing date to the next closing date."""
    if closing_day == END_OF_MONTH:
        return BillingPeriod(date(month.year, month.month, 1),
                             closing_date(month.year, month.month, END_OF_MONTH))
    # Plain arithmetic, not month.next(): 2099/12 closes in 2100, which has no billing month of its own.
    year, next_month = (month.year + 1, 1) if month.month == 12 else (month.year, month.month + 1)
    start = closing_date(month.year, month.month, closing_day) + timedelta(days=1)
    return BillingPeriod(start, closing_date(year, next_month, closing_day))


def month_of(day: date, closing_day: ClosingDay = DEFAULT_CLOSING_DAY) -> BillingMonth:
    """Return the billing month a date belongs to."""
    own = BillingMonth(day.year, day.month) if 2000 <= day.year <= 2099 else None
    if own is None:
        raise InvalidBillingMonth(f"利用月の範囲外の日付です: {day.isoformat()}")
    if closing_day == END_OF_MONTH or day > closing_date(day.year, day.month, closing_day):
        return own
    return own.previous()


def invoice_number(month: BillingMonth, customer_number: str) -> str:
    """Return the 請求番号: `YYMM` + customer number, e.g. 2401 + 1120220110."""
    if not CUSTOMER_NUMBER.fullmatch(customer_number):
        raise InvalidBillingMonth(f"顧客番号が正しくありません: {customer_number!r}")
    return f"{month.year % 100:02d}{month.month:02d}{customer_number}"


def parse_invoice_number(text: str) -> tuple[BillingMonth, str]:
    """Split a 請求番号 into its billing month and customer number."""
    match = _INVOICE_NUMBER.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidBillingMonth(f"請求番号が正しくありません: {text!r}")
    return BillingMonth(2000 + int(match[1]), int(match[2])), match[3]


def format_date(day: date) -> str:
    """Format a date as the screens show it: `YYYY/MM/DD`."""
    return f"{day.year:04d}/{day.month:02d}/{day.day:02d}"
