"""Cells of an exported CSV that a spreadsheet would not run as a formula (CSV injection).

Excel, LibreOffice and Google Sheets treat a cell that starts with `=`, `+`, `-` or `@` as a formula, and a
leading tab or carriage return can hide such a start; a customer named `=HYPERLINK(...)` or `@SUM(1)` would run in
the operator's spreadsheet. As OWASP recommends, such a text cell is written with a single quote in front, which
the spreadsheet shows as text and does not evaluate. Numbers are left as they are: a negative amount such as
`-1.50` (a number, not a formula) must stay a number. Only the export is changed; stored text keeps what the user
typed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def safe_cell(value: Any) -> Any:
    """`value` as a spreadsheet should show it: a text that would start a formula gets a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_rows(rows: Iterable[Iterable[Any]]) -> list[list[Any]]:
    """Every cell of `rows` through `safe_cell`."""
    return [[safe_cell(cell) for cell in row] for row in rows]
