"""CSV files as published in API.md: UTF-8 with BOM (Excel opens it as UTF-8) or Shift_JIS, CRLF lines."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from ppa_runtime.spreadsheet import safe_rows

ENCODINGS = ("utf-8", "shift_jis")
CUSTOMER_HEADER = ["顧客番号", "製造番号", "氏名", "氏名(カナ)", "契約開始日", "契約終了日", "基本料金(円)",
                   "売電単価(円)", "利用単価(円)", "メールアドレス"]


def _text(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(safe_rows(rows))  # every CSV goes through here
    return buffer.getvalue()


def _encoded(text: str, encoding: str, first: bool) -> bytes:
    if encoding == "shift_jis":
        return text.encode("cp932", errors="replace")
    return (("\ufeff" if first else "") + text).encode("utf-8")


def csv_bytes(header: list[str], rows: list[list[Any]], encoding: str = "utf-8") -> bytes:
    """The CSV file's bytes; `encoding` is utf-8 (with BOM) or shift_jis."""
    return _encoded(_text([header, *rows]), encoding, first=True)


async def csv_chunks(header: list[str], chunks: AsyncIterable[list[list[Any]]],
                     encoding: str = "utf-8") -> AsyncIterator[bytes]:
    """The same file as `csv_bytes`, a chunk of rows at a time (a download of any size in little memory)."""
    yield _encoded(_text([header]), encoding, first=True)
    async for rows in chunks:
        if rows:
            yield _encoded(_text(rows), encoding, first=False)


async def in_chunks(read: Callable[[dict[str, Any], int], Awaitable[list[dict[str, Any]]]], flt: dict[str, Any],
                    size: int, key: str = "customer_number") -> AsyncIterator[list[dict[str, Any]]]:
    """The documents `read(filter, limit)` finds for `flt` in order of `key` (unique), `size` at a time: each
    read starts after the last key read, so it costs only itself (paging by skip would walk every match before
    the page again)."""
    after: Any = None
    while True:
        narrowed = flt if after is None else {**flt, "$and": [*flt.get("$and", []), {key: {"$gt": after}}]}
        docs = await read(narrowed, size)
        if docs:
            yield docs
        if len(docs) < size:
            return
        after = docs[-1][key]


def _date(value: str | None) -> str:
    return value.replace("-", "/") if value else ""


def customer_rows(docs: list[dict[str, Any]]) -> list[list[Any]]:
    """The customer list CSV's rows (dates YYYY/MM/DD, prices as stored)."""
    return [[d["customer_number"], d["serial_number"], d["name"], d.get("name_kana", ""),
             _date(d.get("contract_start")), _date(d.get("contract_end")), d["base_fee"], d["sell_unit_price"],
             d["usage_unit_price"], d.get("email") or ""] for d in docs]
