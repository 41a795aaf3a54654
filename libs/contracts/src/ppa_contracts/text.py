"""Limits on free text, one set for the API, the pages and the event payloads (docs/security.md).

A text field is refused when it holds a lone surrogate (`"\\ud800"` in JSON: no UTF-8 encoding exists, so storing
it failed half-way) or a control character: C0 and C1 controls and DEL, except a tab anywhere and, in a multi-line
field (notes, an address), line breaks. Each field has a longest length, counted in characters. Values are not
otherwise rewritten: what the user typed is what is stored (a leading tab included; the CSV export neutralises
formulas on the way out, ppa_runtime.spreadsheet).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

# longest value accepted, in characters
NAME_MAX = 100
KANA_MAX = 100
EMAIL_MAX = 254  # RFC 5321's longest forward path
NOTES_MAX = 2000
ADDRESS_MAX = 200
SHORT_MAX = 100  # other one-line text: an issuer name, a registration number

_SINGLE_LINE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
_MULTI_LINE_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# what a field accepts, as a JSON Schema pattern (Python's regular expressions, like the checks above)
# (a lone surrogate cannot be written in a pattern that every validator compiles: it is refused all the same)
LINE_PATTERN = r"^[^\x00-\x08\x0a-\x1f\x7f-\x9f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"


def bad_characters(value: str, multiline: bool = False) -> bool:
    """Whether `value` holds a lone surrogate or a control character its kind of field refuses."""
    return (_MULTI_LINE_BAD if multiline else _SINGLE_LINE_BAD).search(value) is not None


def text_error(value: str, label: str, max_length: int, multiline: bool = False) -> str | None:
    """The Japanese message for a text that breaks the rules, else None."""
    if bad_characters(value, multiline):
        return f"{label}に使用できない文字（制御文字など）が含まれています。"
    if len(value) > max_length:
        return f"{label}は{max_length}文字以内で入力してください。"
    return None


def text_type(max_length: int, multiline: bool = False) -> Any:
    """A pydantic field type: a str of at most `max_length` characters that passes `bad_characters`."""
    def check(value: str) -> str:
        if bad_characters(value, multiline):
            raise ValueError("holds a control character or a lone surrogate")
        return value
    allowed = TEXT_PATTERN if multiline else LINE_PATTERN  # the same rule, for the OpenAPI document
    return Annotated[str, StringConstraints(max_length=max_length), AfterValidator(check),
                     Field(json_schema_extra={"pattern": allowed})]


def normalized(value: str) -> str:
    """NFKC: full-width digits and letters become half-width, half-width kana full-width (codes, searches)."""
    return unicodedata.normalize("NFKC", value)


# pydantic field types with the same rules (API bodies and event payloads)
Name = text_type(NAME_MAX)
Kana = text_type(KANA_MAX)
Email = text_type(EMAIL_MAX)
Notes = text_type(NOTES_MAX, multiline=True)
Address = text_type(ADDRESS_MAX, multiline=True)
Short = text_type(SHORT_MAX)


def sentences(messages: Any) -> str:
    """Japanese messages as one text: each ends in 「。」 and they follow one another (never 「。、」)."""
    parts = [m.strip() for m in messages if m and m.strip()]
    return "".join(m if m.endswith(("。", "！", "？", ".", "!", "?")) else f"{m}。" for m in parts)
