"""What billing's API documents about its inputs and outputs (the OpenAPI document; ppa_runtime.openapi).

The rules are the domain's (domain/customer.py, domain/billing_month.py): these schemas describe them as they are
applied, spaces the domain trims included, so a client (or schemathesis) that follows the document is accepted and
one that does not is refused. Python's `\\s` is what `str.strip()` removes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ppa_contracts.text import EMAIL_MAX, KANA_MAX, NAME_MAX, NOTES_MAX

# a single-line text: no C0/C1 control character (a tab is allowed; ppa_contracts.text). A lone surrogate is refused
# too, but a pattern that names one compiles in no Rust or ECMA validator, so the patterns leave it out
_LINE = r"[^\x00-\x08\x0a-\x1f\x7f-\x9f]"
_TEXT = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"

def _whole(value: Any) -> Any:
    """A JSON number with no fraction (`15.0`) as the integer it is; JSON and JSON Schema make no difference."""
    return int(value) if type(value) is float and value.is_integer() else value


# an integer field of a strict model that also takes 15.0 (never true/false, never 15.5)
Whole = BeforeValidator(_whole)


def exactly(schema: dict[str, Any]) -> Any:
    """A pydantic `json_schema_extra` that replaces the field's generated schema with `schema` (the annotation stays
    loose, `str | int`, so that the domain, not pydantic, refuses a bad value with its own message)."""
    def replace(generated: dict[str, Any]) -> None:
        description = generated.get("description")
        generated.clear()
        generated.update(schema if description is None else {**schema, "description": description})
    return replace


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, or null."""
    return {"anyOf": [schema, {"type": "null"}]}


CUSTOMER_NUMBER: dict[str, Any] = {"type": "string", "pattern": "^11[0-9]{8}$", "examples": ["1120240001"],
                                   "description": "顧客番号: `11` and 8 more digits"}
INVOICE_NUMBER: dict[str, Any] = {"type": "string", "pattern": "^[0-9]{4}11[0-9]{8}$",
                                  "examples": ["24011120240001"],
                                  "description": "請求番号: YYMM of the billing month, then the customer number"}
SERIAL: dict[str, Any] = {"type": "string", "pattern": r"^\s*[0-9A-Za-z-]{1,32}\s*$", "examples": ["SN-0001"],
                          "description": "製造番号: 1–32 letters, digits or hyphens (surrounding spaces ignored)"}
MONTH: dict[str, Any] = {"type": "string", "pattern": r"^\s*20[0-9]{2}[-/](0[1-9]|1[0-2])\s*$",
                         "examples": ["2024-01"], "description": "利用月 YYYY-MM (YYYY/MM also read), 2000–2099"}
NAME: dict[str, Any] = {"type": "string", "maxLength": NAME_MAX,
                        "pattern": rf"^{_LINE}*[^\s\x00-\x1f\x7f-\x9f]{_LINE}*$",
                        "description": f"氏名: not blank, at most {NAME_MAX} characters"}
KANA: dict[str, Any] = {"type": "string", "maxLength": KANA_MAX, "pattern": rf"^{_LINE}*$",
                        "description": f"氏名(カナ): at most {KANA_MAX} characters"}
NOTES: dict[str, Any] = {"type": "string", "maxLength": NOTES_MAX, "pattern": rf"^{_TEXT}*$",
                         "description": f"備考: at most {NOTES_MAX} characters, line breaks allowed"}
EMAIL: dict[str, Any] = {"type": "string", "maxLength": EMAIL_MAX,
                         "pattern": r"^\s*([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?\s*$",
                         "description": "メールアドレス (blank: none)"}
DATE: dict[str, Any] = {"anyOf": [{"type": "string", "format": "date"},
                                  {"type": "string", "pattern": r"^\s*([0-9]{4}-[0-9]{2}-[0-9]{2})?\s*$"},
                                  {"type": "null"}],
                        "examples": ["2024-01-01"],
                        "description": "an ISO date YYYY-MM-DD, a real calendar day (blank or null: open); "
                                       "contract_end not before contract_start"}
PRICE: dict[str, Any] = {"anyOf": [{"type": "string", "pattern": r"^\s*[0-9]{1,8}(\.[0-9]{1,2}0*)?\s*$"},
                                   {"type": "integer", "minimum": 0, "maximum": 99_999_999}],
                         "description": "yen, 0–99,999,999.99 with at most 2 decimals: a decimal string or an integer"}
CLOSING_DAY: dict[str, Any] = {"anyOf": [
    {"type": "integer", "minimum": 1, "maximum": 28},
    {"type": "string", "pattern": r"^\s*0*([1-9]|1[0-9]|2[0-8])\s*$"},
    {"type": "string", "enum": ["end_of_month", "末日", "月末"]}],
    "description": "締め日: 1–28, or the month's end"}
ROUNDING: dict[str, Any] = {"type": "string", "enum": ["half_up", "down", "half_even"]}
ISSUER_NAME: dict[str, Any] = {"type": "string", "pattern": rf"^\s*{_LINE}{{0,100}}\s*$",
                               "description": "発行者名: at most 100 characters after surrounding spaces"}
ISSUER_ADDRESS: dict[str, Any] = {"type": "string", "pattern": rf"^\s*{_TEXT}{{0,200}}\s*$",
                                  "description": "発行者住所: at most 200 characters, line breaks allowed"}
REGISTRATION_NUMBER: dict[str, Any] = {"anyOf": [{"type": "string", "pattern": r"^\s*(T[0-9]{13})?\s*$"},
                                                 {"type": "null"}],
                                       "description": "適格請求書発行事業者の登録番号: T and 13 digits (blank or null: none)"}
SEARCH_MAX = 100
SEARCH = "part of a number, name, kana or e-mail; full- and half-width alike"
Encoding = Literal["utf-8", "shift_jis"]

CSV: dict[int | str, dict[str, Any]] = {200: {"description": "CSV, UTF-8 with BOM (or Shift_JIS on request)",
                                               "content": {"text/csv": {"schema": {"type": "string"}}}}}
PDF: dict[int | str, dict[str, Any]] = {200: {"description": "the issued invoice document",
                                               "content": {"application/pdf": {"schema": {
                                                   "type": "string", "format": "binary"}}}}}

# a new customer's number feeds the requests about it (OpenAPI links: stateful clients and schemathesis follow them)
_CUSTOMER = {"customer_number": "$response.body#/customer_number"}
CUSTOMER_LINKS: dict[str, Any] = {
    name: {"operationId": operation, "parameters": _CUSTOMER}
    for name, operation in (("GetCustomer", "getCustomer"), ("EditCustomer", "editCustomer"),
                            ("DeleteCustomer", "deleteCustomer"), ("ReissueAuthCode", "reissueAuthCode"),
                            ("GetDailyUsage", "getDailyUsage"))}
_INVOICE = {"invoice_number": "$response.body#/invoice_number"}
INVOICE_LINKS: dict[str, Any] = {
    name: {"operationId": operation, "parameters": _INVOICE}
    for name, operation in (("GetInvoice", "getInvoice"), ("InvoiceCsv", "invoiceCsv"), ("InvoicePdf", "invoicePdf"),
                            ("IssueInvoice", "issueInvoice"), ("VoidInvoice", "voidInvoice"))}
FIRST_INVOICE_LINKS: dict[str, Any] = {
    "GetFirstInvoice": {"operationId": "getInvoice",
                        "parameters": {"invoice_number": "$response.body#/items/0/invoice_number"}}}


class InvoicePublic(BaseModel):
    """An invoice as the list shows it (API.md): money and kWh are decimal strings."""

    model_config = ConfigDict(extra="allow")  # an issued invoice adds document_id, issued_at, voided_at, emailed_to

    invoice_number: str
    month: str = Field(description="利用月 YYYY/MM")
    customer_number: str
    name: str
    period_start: str
    period_end: str
    contract_start: str | None
    contract_end: str | None
    base_fee: str
    generation_kwh: str
    sold_kwh: str
    usage_kwh: str
    sell_unit_price: str
    usage_unit_price: str
    sell_fee: str
    usage_fee: str
    total: str
    consumption_tax: str
    tax_rate_percent: int
    status: Literal["draft", "issued", "voided"]
    revision: int
    metered_days: int = Field(description="the days with readings in the period; 0: 計測データなし (the base fee only)")


class InvoiceDay(BaseModel):
    model_config = ConfigDict(extra="allow")

    date: str
    generation_kwh: str
    sold_kwh: str
    usage_kwh: str
    sell_fee: str
    usage_fee: str


class Revision(BaseModel):
    model_config = ConfigDict(extra="allow")

    revision: int
    kind: str


class InvoiceDetail(InvoicePublic):
    """One invoice with its daily rows and its issued revisions (oldest first)."""

    daily: list[InvoiceDay]
    revisions: list[Revision]


class InvoiceList(BaseModel):
    items: list[InvoicePublic]
    total: int
