"""Japanese address and contact rules shared by account forms: prefectures, katakana, postal code, phone."""

from __future__ import annotations

import re
import unicodedata

PREFECTURES: tuple[str, ...] = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県",
    "茨城県", "栃木県", "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県",
    "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県", "岐阜県",
    "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県",
    "奈良県", "和歌山県", "鳥取県", "島根県", "岡山県", "広島県", "山口県",
    "徳島県", "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県",
    "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)

# full-width katakana, the long vowel mark, the middle dot and spaces between words
_KATAKANA = re.compile(r"^[ァ-ヶー・ 　]+$")
_POSTAL_CODE = re.compile(r"^[0-9]{7}$")
_PHONE = re.compile(r"^[0-9]{10,11}$")


# what people put between digits: spaces, hyphens and dashes of every width, the long vowel mark an IME gives
# for a hyphen, brackets around an area code (looked for after NFKC, which makes full-width ones half-width)
_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―−ー()]")
POSTAL_CODE_RULE = "は7桁の数字で入力してください（例: 103-0026）。"
PHONE_RULE = "電話番号は10桁または11桁の数字で入力してください（例: 03-1234-5678）。"


def compact_number(text: str) -> str:
    """A postal code or phone number as typed (103-0026, １０３００２６, 03 (1234) 5678) → its digits alone."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text))


def is_katakana(text: str) -> bool:
    """Full-width katakana (spaces allowed between words, not only spaces)."""
    return bool(_KATAKANA.match(text)) and bool(text.strip(" 　"))


def is_postal_code(text: str) -> bool:
    """Seven half-width digits (after `compact_number`)."""
    return bool(_POSTAL_CODE.match(text))


def is_phone(text: str) -> bool:
    """Ten or eleven half-width digits (after `compact_number`)."""
    return bool(_PHONE.match(text))


def is_prefecture(text: str) -> bool:
    """One of the 47 prefectures, written in full (東京都, not 東京)."""
    return text in PREFECTURES
