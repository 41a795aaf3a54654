"""事業者設定 rules: closing day 1–28 or 末日, the three rounding modes, issuer and T-number; Japanese messages."""

from __future__ import annotations

import pytest

from ppa_billing.domain.billing_month import END_OF_MONTH
from ppa_billing.domain.invoice import RoundingMode
from ppa_billing.domain.settings import BillingSettings, InvalidSettings, new_settings

GOOD = {"issuer_name": "太陽電力株式会社", "issuer_address": "東京都中央区日本橋兜町1-13"}


def test_defaults_are_closing_day_fifteen_half_up_tax_inclusive():
    s = BillingSettings()
    assert (s.closing_day, s.rounding, s.registration_number, s.prices_include_tax, s.tax_rate_percent) == \
        (15, RoundingMode.HALF_UP, None, True, 10)
    assert s.closing_label == "15日"


@pytest.mark.parametrize("value,expected", [(1, 1), ("28", 28), (" 7 ", 7), ("末日", END_OF_MONTH),
                                            ("end_of_month", END_OF_MONTH), ("月末", END_OF_MONTH)])
def test_accepts_closing_days(value, expected):
    assert new_settings(closing_day=value, **GOOD).closing_day == expected


@pytest.mark.parametrize("value", [0, 29, 30, 31, "29", "", "１５", True, None, 15.0, "last"])
def test_refuses_closing_days_past_the_shortest_month(value):
    with pytest.raises(InvalidSettings) as exc:
        new_settings(closing_day=value, **GOOD)
    assert exc.value.errors == {"closing_day": "締め日は1日〜28日または末日から選択してください。"}


@pytest.mark.parametrize("mode", ["half_up", "down", "half_even"])
def test_accepts_each_rounding_mode(mode):
    assert new_settings(rounding=mode, **GOOD).rounding == RoundingMode(mode)


@pytest.mark.parametrize("number,expected", [("T1234567890123", "T1234567890123"),
                                             (" T1234567890123 ", "T1234567890123"), ("", None), (None, None)])
def test_registration_number_is_optional(number, expected):
    assert new_settings(registration_number=number, **GOOD).registration_number == expected


@pytest.mark.parametrize("number", ["1234567890123", "T123456789012", "T12345678901234", "t1234567890123",
                                    "T１２３４５６７８９０１２３", "T-234567890123"])
def test_refuses_a_malformed_registration_number(number):
    with pytest.raises(InvalidSettings) as exc:
        new_settings(registration_number=number, **GOOD)
    assert exc.value.errors["registration_number"].startswith("登録番号は「T」に続けて半角数字13桁で入力してください")


def test_reports_every_bad_field_at_once():
    with pytest.raises(InvalidSettings) as exc:
        new_settings(closing_day=31, rounding="up", issuer_name="社" * 101, issuer_address="所" * 201,
                     registration_number="X")
    assert set(exc.value.errors) == {"closing_day", "rounding", "issuer_name", "issuer_address",
                                     "registration_number"}
    assert exc.value.errors["issuer_name"] == "発行者名は100文字以内で入力してください。"
