"""An agency's billing settings (事業者設定): closing day, yen rounding, issuer. Pure rules, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ppa_contracts.text import text_error

from .billing_month import DEFAULT_CLOSING_DAY, END_OF_MONTH, ClosingDay
from .invoice import RoundingMode

# 1–28 exists in every month, so every period is exactly one calendar month long; longer is 末日.
MAX_SETTING_CLOSING_DAY = 28
REGISTRATION_NUMBER = re.compile(r"T[0-9]{13}")
MAX_NAME = 100
MAX_ADDRESS = 200
TAX_RATE_PERCENT = 10


class InvalidSettings(ValueError):
    """The settings break rules; `errors` maps each field to its Japanese message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(" ".join(f"{k}: {v}" for k, v in self.errors.items()))


@dataclass(frozen=True)
class BillingSettings:
    """What an agency's invoices follow; prices are tax-inclusive (内消費税 10%)."""

    closing_day: ClosingDay = DEFAULT_CLOSING_DAY
    rounding: RoundingMode = RoundingMode.HALF_UP
    issuer_name: str = ""
    issuer_address: str = ""
    registration_number: str | None = None
    prices_include_tax: bool = True
    tax_rate_percent: int = TAX_RATE_PERCENT

    @property
    def closing_label(self) -> str:
        """The closing day as the screens say it: 15日 or 末日."""
        return "末日" if self.closing_day == END_OF_MONTH else f"{self.closing_day}日"


# what a PDF invoice must name of its issuer (a registration number only when the agency has one)
ISSUER_FIELDS: dict[str, str] = {"issuer_name": "発行者名", "issuer_address": "発行者住所"}


def missing_for_issue(settings: BillingSettings) -> list[str]:
    """The labels of the issuer fields still blank in 事業者設定 (nothing can be issued until they are set)."""
    return [label for field, label in ISSUER_FIELDS.items() if not getattr(settings, field).strip()]


def parse_closing_day_setting(value: Any) -> ClosingDay:
    """Return 1–28 or END_OF_MONTH (also "末日"/"月末"); raises InvalidSettings."""
    if value in (END_OF_MONTH, "末日", "月末"):
        return END_OF_MONTH
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SETTING_CLOSING_DAY:
        return value
    raise InvalidSettings({"closing_day": "締め日は1日〜28日または末日から選択してください。"})


def new_settings(*, closing_day: Any = DEFAULT_CLOSING_DAY, rounding: Any = RoundingMode.HALF_UP.value,
                 issuer_name: Any = "", issuer_address: Any = "", registration_number: Any = None) -> BillingSettings:
    """Validate every field; one InvalidSettings lists all bad fields."""
    errors: dict[str, str] = {}
    closing: ClosingDay = DEFAULT_CLOSING_DAY
    try:
        closing = parse_closing_day_setting(closing_day)
    except InvalidSettings as exc:
        errors.update(exc.errors)
    mode = RoundingMode.HALF_UP
    try:
        mode = RoundingMode(rounding)
    except ValueError:
        errors["rounding"] = "端数処理は四捨五入・切り捨て・銀行丸めから選択してください。"
    name = issuer_name.strip() if isinstance(issuer_name, str) else ""
    if problem := text_error(name, "発行者名", MAX_NAME):
        errors["issuer_name"] = problem
    address = issuer_address.strip() if isinstance(issuer_address, str) else ""
    if problem := text_error(address, "発行者住所", MAX_ADDRESS, multiline=True):
        errors["issuer_address"] = problem
    number = registration_number.strip() if isinstance(registration_number, str) else registration_number
    if number in ("", None):
        number = None
    elif not isinstance(number, str) or not REGISTRATION_NUMBER.fullmatch(number) or not number.isascii():
        errors["registration_number"] = "登録番号は「T」に続けて半角数字13桁で入力してください（例: T1234567890123）。"
    if errors:
        raise InvalidSettings(errors)
    return BillingSettings(closing, mode, name, address, number)
