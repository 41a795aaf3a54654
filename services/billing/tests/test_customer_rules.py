"""Customer rules: 顧客番号, dates, prices, contract order, the never-editable 認証コード."""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppa_billing.domain.customer import (InvalidCustomer, edit_customer, generate_auth_code,
                                         new_customer, parse_price, reissue_auth_code)

D = Decimal
# The seed's 顧客管理 編集 screen for 1120230057.
SEED = dict(customer_number="1120230057", serial_number="23370657", name="顧客0167",
            name_kana="コキヤク0167", contract_start="", contract_end="", base_fee="980",
            sell_unit_price="16.00", usage_unit_price="27.00", email="1120230057@hsppa.info",
            notes="設備情報（パネル/PCS/容量）")


def test_registers_the_seed_customer_with_a_generated_auth_code():
    customer = new_customer(**SEED)
    assert customer.customer_number == "1120230057"
    assert (customer.contract_start, customer.contract_end) == (None, None)
    assert (str(customer.base_fee), str(customer.sell_unit_price), str(customer.usage_unit_price)) == (
        "980", "16.00", "27.00")
    assert re.fullmatch(r"[A-Za-z0-9]{16}", customer.auth_code) and not customer.has_contract_period
    with pytest.raises(FrozenInstanceError):
        customer.auth_code = "x"  # type: ignore[misc]


def test_accepts_a_contract_period_and_normalises_prices():
    customer = new_customer(**{**SEED, "contract_start": "2023-12-16", "contract_end": date(2037, 12, 15),
                               "base_fee": D("980.5"), "sell_unit_price": 16, "usage_unit_price": " 27.1 "})
    assert (customer.contract_start, customer.contract_end) == (date(2023, 12, 16), date(2037, 12, 15))
    assert (str(customer.base_fee), str(customer.sell_unit_price), str(customer.usage_unit_price)) == (
        "980.50", "16.00", "27.10")
    assert customer.has_contract_period


NUMBER_MESSAGE = "顧客番号は11から始まる10桁の数字で入力してください。"


@pytest.mark.parametrize("field,value,message", [
    ("customer_number", "1220230057", NUMBER_MESSAGE),
    ("customer_number", "112023005", NUMBER_MESSAGE),
    ("customer_number", "11202300571", NUMBER_MESSAGE),
    ("customer_number", "１１２０２３００５７", NUMBER_MESSAGE),  # full-width digits
    ("customer_number", 1120230057, NUMBER_MESSAGE),
    ("customer_number", "", NUMBER_MESSAGE),
    ("serial_number", "", "製造番号は半角英数字で入力してください。"),
    ("name", "  ", "氏名を入力してください。"),
    ("contract_start", "2024/01/16", "契約開始日はYYYY-MM-DDの形式で正しい日付を入力してください。"),
    ("contract_start", "20240116", "契約開始日はYYYY-MM-DDの形式で正しい日付を入力してください。"),
    ("contract_end", "2023-02-29", "契約終了日はYYYY-MM-DDの形式で正しい日付を入力してください。"),
    ("contract_end", datetime(2024, 1, 1, 9), "契約終了日はYYYY-MM-DDの形式で正しい日付を入力してください。"),
    ("base_fee", "-1", "基本料金は0以上の数値（小数点以下2桁まで）で入力してください。"),
    ("base_fee", D("-0.01"), "基本料金は0以上の数値（小数点以下2桁まで）で入力してください。"),
    ("sell_unit_price", "16.005", "売電単価は0以上の数値（小数点以下2桁まで）で入力してください。"),
    ("sell_unit_price", 16.0, "売電単価は0以上の数値（小数点以下2桁まで）で入力してください。"),
    ("sell_unit_price", "1e3", "売電単価は0以上の数値（小数点以下2桁まで）で入力してください。"),
    ("sell_unit_price", "１６", "売電単価は0以上の数値（小数点以下2桁まで）で入力してください。"),
    ("usage_unit_price", D("NaN"), "利用単価は0以上の数値（小数点以下2桁まで）で入力してください。"),
    ("usage_unit_price", "", "利用単価は0以上の数値（小数点以下2桁まで）で入力してください。"),
    ("usage_unit_price", True, "利用単価は0以上の数値（小数点以下2桁まで）で入力してください。"),
    ("usage_unit_price", "100000000", "利用単価が大きすぎます。"),
    ("email", "not-an-address", "メールアドレスの形式が正しくありません。"),
])
def test_refuses_a_bad_field_with_its_japanese_message(field, value, message):
    with pytest.raises(InvalidCustomer) as caught:
        new_customer(**{**SEED, field: value})
    assert caught.value.errors == {field: message}


def test_refuses_a_contract_ending_before_it_starts():
    with pytest.raises(InvalidCustomer) as caught:
        new_customer(**{**SEED, "contract_start": "2024-01-16", "contract_end": "2024-01-15"})
    assert caught.value.errors == {"contract_end": "契約終了日は契約開始日以降の日付を入力してください。"}
    one_day = new_customer(**{**SEED, "contract_start": "2024-01-16", "contract_end": "2024-01-16"})
    assert one_day.contract_start == one_day.contract_end


def test_reports_every_bad_field_at_once():
    with pytest.raises(InvalidCustomer) as caught:
        new_customer(**{**SEED, "customer_number": "99", "name": "", "base_fee": "-5", "contract_end": "x"})
    assert set(caught.value.errors) == {"customer_number", "name", "base_fee", "contract_end"}


@pytest.mark.parametrize("value,expected", [("0", "0.00"), ("16", "16.00"), ("16.1", "16.10"),
                                            ("16.000", "16.00"), (D("27.00"), "27.00"), (0, "0.00")])
def test_unit_prices_keep_two_decimals(value, expected):
    assert str(parse_price(value, "sell_unit_price")) == expected


def test_auth_codes_are_sixteen_random_letters_and_digits():
    codes = {generate_auth_code() for _ in range(500)}
    assert len(codes) == 500 and all(re.fullmatch(r"[A-Za-z0-9]{16}", code) for code in codes)


def test_auth_code_comes_from_the_secrets_module(monkeypatch):
    import ppa_billing.domain.customer as customer_module

    assert isinstance(customer_module._SYSTEM_RANDOM, customer_module.secrets.SystemRandom)  # os.urandom
    monkeypatch.setattr(customer_module._SYSTEM_RANDOM, "choices", lambda alphabet, k: ["Z"] * k)
    assert generate_auth_code() == "Z" * 16


def test_edit_revalidates_and_keeps_number_and_auth_code():
    customer = new_customer(**SEED)
    edited = edit_customer(customer, {"name": "顧客0168", "contract_start": "2024-01-16"})
    assert (edited.name, edited.contract_start) == ("顧客0168", date(2024, 1, 16))
    assert (edited.customer_number, edited.auth_code) == (customer.customer_number, customer.auth_code)
    with pytest.raises(InvalidCustomer) as caught:
        edit_customer(customer, {"usage_unit_price": "-1"})
    assert set(caught.value.errors) == {"usage_unit_price"}


@pytest.mark.parametrize("field,message", [("auth_code", "認証コードは編集できません。"),
                                           ("customer_number", "顧客番号は変更できません。"),
                                           ("unknown", "この項目は変更できません。")])
def test_edit_refuses_fixed_fields(field, message):
    with pytest.raises(InvalidCustomer) as caught:
        edit_customer(new_customer(**SEED), {field: "ABCDEFGHIJKLMNOP"})
    assert caught.value.errors == {field: message}


def test_reissue_draws_a_new_auth_code_and_changes_nothing_else():
    customer = new_customer(**SEED)
    reissued = reissue_auth_code(customer)
    assert reissued.auth_code != customer.auth_code
    assert reissued == new_customer(**SEED, auth_code=reissued.auth_code)


def test_a_stored_auth_code_is_kept_when_rebuilding_but_must_be_well_formed():
    assert new_customer(**SEED, auth_code="ZsOSpAwgSQuvMaFS").auth_code == "ZsOSpAwgSQuvMaFS"  # the seed's
    with pytest.raises(InvalidCustomer) as caught:
        new_customer(**SEED, auth_code="short")
    assert set(caught.value.errors) == {"auth_code"}


@given(st.integers(0, 10**8 - 1))
def test_every_eleven_prefixed_ten_digit_number_is_accepted(sequence):
    number = f"11{sequence:08d}"
    assert new_customer(**{**SEED, "customer_number": number}).customer_number == number


@given(st.decimals(min_value=0, max_value=D("99999999.99"), places=2, allow_nan=False, allow_infinity=False))
def test_every_non_negative_two_decimal_price_round_trips(price):
    assert parse_price(str(price), "usage_unit_price") == price
    assert parse_price(price, "base_fee") == price


@given(st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False, allow_infinity=False)
       .filter(lambda d: d != d.quantize(D("0.01"))))
def test_a_third_decimal_is_always_refused(price):
    with pytest.raises(InvalidCustomer):
        parse_price(price, "sell_unit_price")


def test_text_keeps_what_was_typed_but_refuses_controls_and_overlong_values():
    kept = new_customer(**{**SEED, "name": "\t=1+1 ", "notes": "一行目\r\n\t二行目"})
    assert kept.name == "\t=1+1" and kept.notes == "一行目\r\n\t二行目"  # only spaces are trimmed
    for field, value in (("name", "名" * 101), ("name_kana", "カ\x0b"), ("notes", "x\x00"), ("name", "a\ud800")):
        with pytest.raises(InvalidCustomer) as exc:
            new_customer(**{**SEED, field: value})
        assert list(exc.value.errors) == [field]


def test_a_customer_stored_before_the_text_limits_can_still_be_read_fixed_or_left_alone():
    legacy = new_customer(**{**SEED, "name": "名" * 300}, auth_code="A" * 16, text_limits=False)
    with pytest.raises(InvalidCustomer) as exc:
        edit_customer(legacy, {"notes": "メモ"})  # a change is checked as a whole: the name must be fixed too
    assert list(exc.value.errors) == ["name"]
    assert edit_customer(legacy, {"name": "顧客0167"}).name == "顧客0167"
