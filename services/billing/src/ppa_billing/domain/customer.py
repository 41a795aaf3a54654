"""PPA customer (顧客) rules: validation, the frozen `Customer`, the 認証コード. Pure, no I/O."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ppa_contracts.text import EMAIL_MAX, KANA_MAX, NAME_MAX, NOTES_MAX, text_error

# [0-9] not \d: \d also matches full-width digits, which the seed's half-width fields must refuse.
CUSTOMER_NUMBER = re.compile(r"11[0-9]{8}")
SERIAL_NUMBER = re.compile(r"[0-9A-Za-z\-]{1,32}")
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DECIMAL_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
AUTH_CODE_ALPHABET = string.ascii_letters + string.digits
AUTH_CODE = re.compile(r"[A-Za-z0-9]{16}")
AUTH_CODE_LENGTH = 16
# Bounds a price so a typo cannot reach Decimal's precision limits in invoice arithmetic.
MAX_PRICE = Decimal("99999999.99")
CENTI = Decimal("0.01")

LABELS = {"base_fee": "基本料金", "sell_unit_price": "売電単価", "usage_unit_price": "利用単価",
          "contract_start": "契約開始日", "contract_end": "契約終了日"}
# free text: (label, longest, multi-line)
TEXT_FIELDS = {"name": ("氏名", NAME_MAX, False), "name_kana": ("氏名(カナ)", KANA_MAX, False),
               "notes": ("備考", NOTES_MAX, True), "email": ("メールアドレス", EMAIL_MAX, False)}
# only spaces (half- and full-width) are trimmed: a tab or any other character the user typed is kept as typed
SPACES = " \u3000"
FIXED_FIELDS = {"customer_number": "顧客番号は変更できません。", "auth_code": "認証コードは編集できません。"}
EDITABLE_FIELDS = frozenset({"serial_number", "name", "name_kana", "contract_start", "contract_end",
                             "base_fee", "sell_unit_price", "usage_unit_price", "notes", "email"})


class InvalidCustomer(ValueError):
    """The customer data breaks rules; `errors` maps each field name to its Japanese message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(" ".join(f"{field}: {message}" for field, message in self.errors.items()))


@dataclass(frozen=True)
class Customer:
    """A validated PPA customer; prices are Decimal, the contract period may be open or absent."""

    customer_number: str
    serial_number: str
    name: str
    name_kana: str
    contract_start: date | None
    contract_end: date | None
    base_fee: Decimal
    sell_unit_price: Decimal
    usage_unit_price: Decimal
    notes: str
    email: str | None
    auth_code: str

    @property
    def has_contract_period(self) -> bool:
        """Whether any contract date is set (without one, no usage fee is charged)."""
        return self.contract_start is not None or self.contract_end is not None


_SYSTEM_RANDOM = secrets.SystemRandom()


def generate_auth_code() -> str:
    """Return a fresh 16-character 認証コード of letters and digits from a cryptographic source (os.urandom; one
    draw per code, as an import draws 100,000 of them)."""
    return "".join(_SYSTEM_RANDOM.choices(AUTH_CODE_ALPHABET, k=AUTH_CODE_LENGTH))


def parse_customer_number(value: Any) -> str:
    """Return the 顧客番号 if it is `11` followed by 8 half-width digits."""
    text = value.strip() if isinstance(value, str) else ""
    if not CUSTOMER_NUMBER.fullmatch(text):
        raise InvalidCustomer({"customer_number": "顧客番号は11から始まる10桁の数字で入力してください。"})
    return text


def parse_date(value: Any, field: str) -> date | None:
    """Return a date from `YYYY-MM-DD`, a `date`, or None/"" for an unset date."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    message = f"{LABELS.get(field, field)}はYYYY-MM-DDの形式で正しい日付を入力してください。"
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value.strip()):
        raise InvalidCustomer({field: message})
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidCustomer({field: message}) from None


def parse_price(value: Any, field: str) -> Decimal:
    """Return a non-negative price with at most 2 decimals; floats are refused (inexact)."""
    message = f"{LABELS.get(field, field)}は0以上の数値（小数点以下2桁まで）で入力してください。"
    if isinstance(value, str) and DECIMAL_TEXT.fullmatch(value.strip()):
        value = Decimal(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidCustomer({field: message})
    if value > MAX_PRICE:
        raise InvalidCustomer({field: f"{LABELS.get(field, field)}が大きすぎます。"})
    try:
        cents = value.quantize(CENTI)
    except InvalidOperation:
        raise InvalidCustomer({field: message}) from None
    if cents != value:
        raise InvalidCustomer({field: message})
    # Base fee is whole yen in the seed ("980"), unit prices always show 2 decimals ("16.00").
    if field == "base_fee" and cents == cents.to_integral_value():
        return cents.quantize(Decimal(1)) + 0
    return cents + 0


def _collect(errors: dict[str, str], parse: Callable[[], Any]) -> Any:
    try:
        return parse()
    except InvalidCustomer as exc:
        errors.update(exc.errors)
        return None


def new_customer(*, customer_number: Any, serial_number: Any, name: Any, base_fee: Any,
                 sell_unit_price: Any, usage_unit_price: Any, name_kana: Any = "",
                 contract_start: Any = None, contract_end: Any = None, notes: Any = "",
                 email: Any = None, auth_code: str | None = None, text_limits: bool = True) -> Customer:
    """Validate every field and return a `Customer`; one `InvalidCustomer` lists all bad fields. `text_limits`
    off: a customer stored before the text limits existed is still read (and can be edited into shape or
    deleted); every new or changed customer is checked."""
    errors: dict[str, str] = {}
    number = _collect(errors, lambda: parse_customer_number(customer_number))
    serial = serial_number.strip() if isinstance(serial_number, str) else ""
    if not SERIAL_NUMBER.fullmatch(serial):
        errors["serial_number"] = "製造番号は半角英数字で入力してください。"
    full_name = name.strip(SPACES) if isinstance(name, str) else ""
    if not full_name.strip():
        errors["name"] = "氏名を入力してください。"
    kana = name_kana.strip(SPACES) if isinstance(name_kana, str) else ""
    notes = notes if isinstance(notes, str) else ""
    start = _collect(errors, lambda: parse_date(contract_start, "contract_start"))
    end = _collect(errors, lambda: parse_date(contract_end, "contract_end"))
    if start is not None and end is not None and end < start:
        errors["contract_end"] = "契約終了日は契約開始日以降の日付を入力してください。"
    prices = {field: _collect(errors, lambda f=field, v=value: parse_price(v, f)) for field, value in
              (("base_fee", base_fee), ("sell_unit_price", sell_unit_price),
               ("usage_unit_price", usage_unit_price))}
    mail = email.strip() if isinstance(email, str) and email.strip() else None
    if mail is not None and not EMAIL.fullmatch(mail):
        errors["email"] = "メールアドレスの形式が正しくありません。"
    for field, value in (("name", full_name), ("name_kana", kana), ("notes", notes), ("email", mail or "")):
        label, longest, multiline = TEXT_FIELDS[field]
        if text_limits and (problem := text_error(value, label, longest, multiline)):
            errors[field] = problem
    # A given code comes from the customer's own history (rebuilding state); only new ones are drawn.
    if auth_code is not None and not AUTH_CODE.fullmatch(auth_code):
        errors["auth_code"] = "認証コードは半角英数字16文字です。"
    if errors:
        raise InvalidCustomer(errors)
    return Customer(number, serial, full_name, kana, start, end, prices["base_fee"],
                    prices["sell_unit_price"], prices["usage_unit_price"],
                    notes, mail, auth_code or generate_auth_code())


def edit_customer(customer: Customer, changes: Mapping[str, Any]) -> Customer:
    """Apply an edit and revalidate; 顧客番号 and 認証コード are never editable."""
    refused = {field: FIXED_FIELDS.get(field, "この項目は変更できません。")
               for field in changes if field not in EDITABLE_FIELDS}
    if refused:
        raise InvalidCustomer(refused)
    current = {field: getattr(customer, field) for field in EDITABLE_FIELDS}
    return new_customer(customer_number=customer.customer_number, auth_code=customer.auth_code,
                        **{**current, **changes})


def reissue_auth_code(customer: Customer) -> Customer:
    """Return the customer with a newly drawn 認証コード (the separate re-issue action)."""
    code = generate_auth_code()
    while code == customer.auth_code:  # astronomically rare, but a re-issue must change the code
        code = generate_auth_code()
    return replace(customer, auth_code=code)
