"""Bulk customer import (顧客一括登録): the file, its rows, and what each row would do. Pure, no I/O.

The file has the customer list CSV's columns (API.md), so an exported list edited in a spreadsheet comes back as
it went out. Its encoding is found by strict decoding: a UTF-8 byte order mark, else valid UTF-8, else valid
Shift_JIS (Windows' cp932, what Excel writes in Japan); anything else is refused rather than guessed, because a
wrong guess would store 文字化け names. Every row is judged on its own: new, changed, unchanged or an error that
names the field and the reason. A row that is an error is never written, and never stops the rows around it.
The file's own columns replace the stored ones; 備考 and the 認証コード are not in the file and are kept.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ppa_billing.domain.customer import Customer, InvalidCustomer, new_customer

HEADER = ("顧客番号", "製造番号", "氏名", "氏名(カナ)", "契約開始日", "契約終了日", "基本料金(円)",
          "売電単価(円)", "利用単価(円)", "メールアドレス")
KEYS = ("customer_number", "serial_number", "name", "name_kana", "contract_start", "contract_end", "base_fee",
        "sell_unit_price", "usage_unit_price", "email")
LABEL_OF = dict(zip(KEYS, HEADER, strict=True))
MAX_ROWS = 200_000  # a file larger than any agency's customer list is a mistake, not an import
NEW, CHANGED, UNCHANGED, ERROR = "new", "changed", "unchanged", "error"
STATUS_LABELS = {NEW: "新規", CHANGED: "変更", UNCHANGED: "変更なし", ERROR: "エラー"}


class ImportFileError(ValueError):
    """The file as a whole cannot be read (encoding, header, size): nothing in it is imported."""


@dataclass
class ImportRow:
    """One data row: its line in the file, what it would do, and (for an error) field label → reason."""

    line: int
    customer_number: str
    values: dict[str, str]
    status: str = ERROR
    errors: dict[str, str] = field(default_factory=dict)
    customer: Customer | None = None  # validated: the customer as it will be stored

    @property
    def messages(self) -> list[str]:
        return [f"{label}: {reason}" if label else reason for label, reason in self.errors.items()]


# Python's cp932 decodes a few bytes no Japanese text holds (0x80, 0xA0, 0xFD-0xFF) to C1 controls or private-use
# characters; with other control characters they mean the file is in neither encoding
NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\uf8f0-\uf8ff]")


def decode(data: bytes) -> str:
    """The file's text: UTF-8 (with or without BOM) or Shift_JIS, decided by strict decoding."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8")
        except UnicodeDecodeError:
            raise ImportFileError("ファイルの文字コードがUTF-8として正しくありません。") from None
    for encoding in ("utf-8", "cp932"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not NOT_TEXT.search(text):
            return text
    raise ImportFileError("ファイルの文字コードを判別できません。UTF-8 または Shift_JIS で保存してください。")


def _cell(value: str) -> str:
    # the export writes a text that looks like a formula with a leading quote (CSV injection); take it off again
    text = value.strip(" \u3000")
    return text[1:] if text.startswith("'") and text[1:2] in ("=", "+", "-", "@") else text


def _date(value: str) -> str:
    # the export writes dates as 2024/01/16; the API takes 2024-01-16: both are read
    return value.replace("/", "-")


def parse(data: bytes) -> list[ImportRow]:
    """Every data row of the file with its values; the header must be the customer list CSV's."""
    if not data.strip():
        raise ImportFileError("ファイルが空です。")
    reader = csv.reader(io.StringIO(decode(data), newline=""))
    try:
        header = [h.strip(" \u3000\ufeff") for h in next(reader)]
    except (StopIteration, csv.Error):
        raise ImportFileError("ファイルが空です。") from None
    if tuple(header) != HEADER:
        raise ImportFileError("1行目の見出しが顧客一覧CSVと一致しません。見出しは「" + ",".join(HEADER) + "」です。")
    rows: list[ImportRow] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # blank lines (a spreadsheet's trailing rows) are not customers
            if len(rows) >= MAX_ROWS:
                raise ImportFileError(f"一度に取り込めるのは{MAX_ROWS:,}件までです。ファイルを分けてください。")
            line = reader.line_num
            values = {k: _cell(cells[i]) if i < len(cells) else "" for i, k in enumerate(KEYS)}
            row = ImportRow(line, values["customer_number"], values)
            if len(cells) != len(KEYS):
                row.errors[""] = f"列の数が{len(cells)}です（{len(KEYS)}列必要です）。"
            rows.append(row)
    except csv.Error as exc:
        raise ImportFileError(f"{reader.line_num}行目のCSVの形式が正しくありません。") from exc
    return rows


def _labelled(errors: Mapping[str, str]) -> dict[str, str]:
    return {LABEL_OF.get(k, ""): v for k, v in errors.items()}


def _candidate(row: ImportRow, current: Mapping[str, Any] | None) -> Customer:
    """The customer the row describes; for a stored one, its 備考 kept (its code is not read: never rewritten)."""
    fields = {k: row.values[k] for k in KEYS}
    fields["contract_start"] = _date(fields["contract_start"])
    fields["contract_end"] = _date(fields["contract_end"])
    if current is not None:
        fields["notes"] = current.get("notes", "")
    return new_customer(**fields)


def stored_form(c: Customer) -> dict[str, Any]:
    """The file's columns of a customer as its read-model document holds them (JSON: ISO dates, decimal text)."""
    return {"serial_number": c.serial_number, "name": c.name, "name_kana": c.name_kana,
            "contract_start": c.contract_start.isoformat() if c.contract_start else None,
            "contract_end": c.contract_end.isoformat() if c.contract_end else None,
            "base_fee": str(c.base_fee), "sell_unit_price": str(c.sell_unit_price),
            "usage_unit_price": str(c.usage_unit_price), "email": c.email}


def same(doc: Mapping[str, Any], c: Customer) -> bool:
    """Whether the file's columns leave the stored customer (its document) as it is."""
    return all(doc.get(k) == v for k, v in stored_form(c).items())


def judge(rows: list[ImportRow], stored: Mapping[str, Mapping[str, Any]], serial_holders: Mapping[str, str]) -> None:
    """Decide every row in place. `stored`: the documents of the agency's customers among the file's numbers;
    `serial_holders`: serial number → the customer number of this agency holding it, or "" when another agency's
    customer does."""
    seen_numbers: dict[str, int] = {}
    seen_serials: dict[str, int] = {}
    for row in rows:
        if row.errors:
            continue
        current = stored.get(row.customer_number)
        try:
            row.customer = _candidate(row, current)
        except InvalidCustomer as exc:
            row.errors = _labelled(exc.errors)
            continue
        number, serial = row.customer.customer_number, row.customer.serial_number
        if number in seen_numbers:
            row.errors["顧客番号"] = f"{seen_numbers[number]}行目と同じ顧客番号です。"
        elif serial in seen_serials:
            row.errors["製造番号"] = f"{seen_serials[serial]}行目と同じ製造番号です。"
        elif serial in serial_holders and serial_holders[serial] != number:
            row.errors["製造番号"] = "この製造番号は既に登録されています。"
        seen_numbers.setdefault(number, row.line)
        seen_serials.setdefault(serial, row.line)
        if row.errors:
            row.customer = None
            continue
        row.status = NEW if current is None else (UNCHANGED if same(current, row.customer) else CHANGED)


def summary(rows: list[ImportRow]) -> dict[str, int]:
    """How many rows of each result."""
    counts = dict.fromkeys((NEW, CHANGED, UNCHANGED, ERROR), 0)
    for row in rows:
        counts[row.status] += 1
    return counts


def row_view(row: ImportRow) -> dict[str, Any]:
    """A row as the preview and the JSON answer show it."""
    return {"line": row.line, "customer_number": row.customer_number, "name": row.values.get("name", ""),
            "status": row.status, "status_label": STATUS_LABELS[row.status], "errors": row.messages}
