"""CSV files as published in API.md: UTF-8 with BOM (Excel opens it as UTF-8) or Shift_JIS, CRLF lines."""

from __future__ import annotations

import csv
import io
from typing import Any

ENCODINGS = ("utf-8", "shift_jis")
CUSTOMER_HEADER = ["顧客番号", "製造番号", "氏名", "氏名(カナ)", "契約開始日", "契約終了日", "基本料金(円)",
                   "売電単価(円)", "利用単価(円)", "メールアドレス"]


def csv_bytes(header: list[str], rows: list[list[Any]], encoding: str = "utf-8") -> bytes:
    """The CSV file's bytes; `encoding` is utf-8 (with BOM) or shift_jis."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    if encoding == "shift_jis":
        return text.encode("cp932", errors="replace")
    return ("\ufeff" + text).encode("utf-8")


def _date(value: str | None) -> str:
    return value.replace("-", "/") if value else ""


def customer_rows(docs: list[dict[str, Any]]) -> list[list[Any]]:
    """The customer list CSV's rows (dates YYYY/MM/DD, prices as stored)."""
    return [[d["customer_number"], d["serial_number"], d["name"], d.get("name_kana", ""),
             _date(d.get("contract_start")), _date(d.get("contract_end")), d["base_fee"], d["sell_unit_price"],
             d["usage_unit_price"], d.get("email") or ""] for d in docs]
