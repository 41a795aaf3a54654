"""Owner rules as pure functions: お客様情報 and 製品情報 forms, and the owner folded from its events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ppa_contracts.notify import EmailRequested
from ppa_contracts.owner import (
    AgencyAccessGranted,
    AgencyAccessWithdrawn,
    OwnerPasswordChanged,
    OwnerPasswordResetRequested,
    OwnerProfile,
    OwnerProfileChanged,
    OwnerRegistered,
    Product,
    ProductChanged,
    ProductRegistered,
)
from ppa_identity.domain.owner import (
    InvalidOwnerForm,
    OwnerCredentialSet,
    OwnerEmailClaimed,
    changed_fields,
    claimant,
    fold,
    product_from_form,
    profile_from_form,
    registration_from_form,
    reset_usable,
    serial_taken,
)

SEED = {"family_name": "日見", "given_name": "太郎", "family_name_kana": "ニチコン", "given_name_kana": "タロウ",
        "nickname": "ニチコン タロウ", "postal_code": "1030026", "prefecture": "東京都", "city": "中央区",
        "street": "日本橋兜町", "phone": "0336667945", "email": "taro_nichicon@nichicon.com", "info_opt_in": "no"}
PRODUCT = {"system_model": "ESS-U4X1", "system_serial": "HC-A10001WN1", "remote_serial": "",
           "install_postal_code": "1030026", "watch_service": "no", "weather_alert_control": "no",
           "early_warning_control": "yes", "ai_control": "no"}
ALL_DAY = [{"day_type": "all", "start": "00:00", "end": "00:00", "price": "31.25"}]
NOW = datetime(2024, 5, 20, 6, 0, tzinfo=UTC)


def test_the_seed_customer_is_a_valid_profile():
    profile = profile_from_form(SEED, ["Test@Nichicon.com", ""], "8.5", ALL_DAY)
    assert profile.name == "日見 太郎" and profile.name_kana == "ニチコン タロウ"
    assert profile.agency_emails == ("test@nichicon.com",)
    assert profile.info_opt_in is False
    assert profile.prices.sell_price == Decimal("8.5")
    assert profile.prices.buy_segments[0].price == Decimal("31.25")


def test_every_bad_field_gets_its_own_message():
    bad = SEED | {"family_name": "", "family_name_kana": "にちこん", "postal_code": "103-002", "prefecture": "東京",
                  "phone": "03-3666-794", "email": "taro@", "info_opt_in": ""}
    with pytest.raises(InvalidOwnerForm) as exc:
        profile_from_form(bad, [], "", [])
    assert exc.value.errors == {
        "family_name": "氏名（姓）を入力してください。",
        "family_name_kana": "フリガナ（セイ）は全角カタカナで入力してください。",
        "postal_code": "郵便番号は7桁の数字で入力してください（例: 103-0026）。",
        "prefecture": "都道府県は一覧から選択してください。",
        "phone": "電話番号は10桁または11桁の数字で入力してください（例: 03-1234-5678）。",
        "email": "メールアドレスの形式が正しくありません。",
        "info_opt_in": "運営会社からの情報提供可を選択してください。",
    }


def test_full_width_digits_and_half_width_kana_are_normalized():
    profile = profile_from_form(SEED | {"postal_code": "１０３００２６", "given_name_kana": "ﾀﾛｳ"}, [], "", [])
    assert profile.postal_code == "1030026" and profile.given_name_kana == "タロウ"


@pytest.mark.parametrize("postal,phone", [("103-0026", "03-3666-7945"), ("１０３－００２６", "０３－３６６６－７９４５"),
                                          (" 103 0026 ", "03 (3666) 7945"), ("103ー0026", "03ー3666ー7945")])
def test_postal_codes_and_phones_as_people_type_them_are_kept_as_digits(postal, phone):
    profile = profile_from_form(SEED | {"postal_code": postal, "phone": phone}, [], "", [])
    assert (profile.postal_code, profile.phone) == ("1030026", "0336667945")


def test_agency_rows_refuse_bad_and_repeated_addresses_by_row():
    with pytest.raises(InvalidOwnerForm) as exc:
        profile_from_form(SEED, ["a@example.jp", "not-an-address", "A@example.jp"], "", [])
    assert exc.value.errors == {"agency_email_1": "販売店・業者様のメールアドレスの形式が正しくありません。",
                                "agency_email_2": "a@example.jp は2回入力されています。"}


def test_registration_checks_the_password_too():
    with pytest.raises(InvalidOwnerForm) as exc:
        registration_from_form(SEED, "short", "short")
    assert exc.value.errors == {"password": "パスワードは半角英数字8文字以上で入力してください。"}
    with pytest.raises(InvalidOwnerForm) as exc:
        registration_from_form(SEED, "Passw0rd2024", "Passw0rd2025")
    assert set(exc.value.errors) == {"password_confirm"}
    assert registration_from_form(SEED, "Passw0rd2024", "Passw0rd2024").agency_emails == ()


def test_the_seed_product_is_valid_and_serials_are_upper_case():
    product = product_from_form("96", PRODUCT | {"system_model": "ess-u4x1", "remote_serial": "nhn1tj1000001"})
    assert product == Product(product_id="96", system_model="ESS-U4X1", system_serial="HC-A10001WN1",
                              remote_serial="NHN1TJ1000001", install_postal_code="1030026",
                              early_warning_control=True)


def test_a_product_needs_model_serial_postal_code_and_each_subscription():
    bad = PRODUCT | {"system_model": "", "system_serial": "HC A1", "install_postal_code": "", "ai_control": "maybe"}
    with pytest.raises(InvalidOwnerForm) as exc:
        product_from_form("1", bad)
    assert exc.value.errors == {
        "system_model": "システム機種名を入力してください。",
        "system_serial": "システム製造番号は半角英数字とハイフンで入力してください。",
        "install_postal_code": "設置場所郵便番号を入力してください。",
        "ai_control": "AI自動制御の加入状況を選択してください。",
    }


def _registered(profile: OwnerProfile | None = None) -> list:
    profile = profile or profile_from_form(SEED, [], "", [])
    return [OwnerRegistered(owner_id="o1", profile=profile, registered_at=NOW),
            OwnerCredentialSet(owner_id="o1", password_hash="h1"),
            EmailRequested(message_id="m", template="owner_registered", recipient=profile.email)]


def test_fold_keeps_profile_grants_products_and_password():
    changed = profile_from_form(SEED | {"city": "港区"}, ["test@nichicon.com"], "", [])
    product = product_from_form("96", PRODUCT)
    events = [*_registered(),
              OwnerProfileChanged(owner_id="o1", profile=changed, changed=("city", "agency_emails")),
              AgencyAccessGranted(owner_id="o1", agency_email="test@nichicon.com", agency_id="ag1"),
              ProductRegistered(owner_id="o1", product=product),
              ProductChanged(owner_id="o1", product=product.model_copy(update={"ai_control": True})),
              AgencyAccessWithdrawn(owner_id="o1", agency_email="test@nichicon.com", agency_id="ag1")]
    owner = fold(events)
    assert owner.version == 8 and owner.password_hash == "h1" and owner.profile.city == "港区"
    assert owner.agency_ids == {} and owner.product("96").ai_control is True and owner.product("97") is None
    assert fold(events[:5]).agency_ids == {"test@nichicon.com": "ag1"}


def test_a_reset_works_until_it_expires_or_any_new_password_is_set():
    later = NOW + timedelta(hours=1)
    events = [*_registered(), OwnerPasswordResetRequested(owner_id="o1", reset_id="r1", expires_at=later),
              OwnerPasswordResetRequested(owner_id="o1", reset_id="r2", expires_at=later)]
    owner = fold(events)
    assert reset_usable(owner, "r1", NOW) and not reset_usable(owner, "r1", later) and not reset_usable(owner, "x", NOW)
    used = fold([*events, OwnerPasswordChanged(owner_id="o1", reset_id="r2"),
                 OwnerCredentialSet(owner_id="o1", password_hash="h2")])
    assert not reset_usable(used, "r1", NOW) and not reset_usable(used, "r2", NOW) and used.password_hash == "h2"


def test_the_latest_claim_names_the_address_holder():
    assert claimant([]) is None
    assert claimant([OwnerEmailClaimed(owner_id="a"), OwnerEmailClaimed(owner_id="b")]) == "b"


def test_changed_fields_and_serial_clash():
    old = profile_from_form(SEED, [], "", [])
    new = profile_from_form(SEED | {"phone": "0312345678"}, ["x@example.jp"], "", ALL_DAY)
    assert changed_fields(old, new) == ("phone", "agency_emails", "prices")
    owner = fold([*_registered(), ProductRegistered(owner_id="o1", product=product_from_form("1", PRODUCT))])
    assert serial_taken(owner, product_from_form("2", PRODUCT))
    assert not serial_taken(owner, product_from_form("1", PRODUCT))


def test_control_characters_in_an_owner_field_are_refused_by_field():
    with pytest.raises(InvalidOwnerForm) as exc:
        profile_from_form(SEED | {"family_name": "日見\x00", "street": "日本橋\x7f"}, [], "", ALL_DAY)
    assert {"family_name", "street"} <= set(exc.value.errors)
    assert "使用できない文字" in exc.value.errors["family_name"]
