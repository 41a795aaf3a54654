"""Agency rules as pure functions: the sign-up form's validation and the sign-up link's life."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ppa_contracts.identity import AgencyProfile, AgencyProfileChanged, AgencyRegistered, AgencySignupRequested
from ppa_contracts.notify import EmailRequested
from ppa_identity.domain.agency import (
    AgencyCredentialSet,
    InvalidAgencyForm,
    SignupRefusal,
    email_error,
    fold,
    fold_signup,
    password_errors,
    profile_errors,
    signup_refusal,
    validate_profile,
)
from ppa_identity.domain.japan import PREFECTURES, is_katakana

SEED = {"company": "ニチコン株式会社", "name": "テスト", "name_kana": "テスト", "postal_code": "1030026",
        "prefecture": "東京都", "city": "中央区", "street": "日本橋兜町14-9", "phone": "0336667945"}
NOW = datetime(2024, 5, 20, 6, 0, tzinfo=UTC)


def test_the_seeds_form_is_valid_and_trimmed():
    profile = validate_profile({**SEED, "company": "  ニチコン株式会社 "})
    assert profile == AgencyProfile(**SEED)


def test_every_required_field_left_empty_gets_its_own_message():
    errors = profile_errors({})
    assert errors == {
        "company": "企業名を入力してください。", "name": "氏名を入力してください。",
        "name_kana": "フリガナを入力してください。", "postal_code": "郵便番号を入力してください。",
        "prefecture": "都道府県を選択してください。", "city": "市区町村を入力してください。",
        "street": "町名番地（建物名）を入力してください。", "phone": "電話番号を入力してください。",
    }
    with pytest.raises(InvalidAgencyForm) as raised:
        validate_profile({**SEED, "city": "   ", "name_kana": "　"})  # only (full-width) spaces is empty
    assert raised.value.errors == {"city": "市区町村を入力してください。", "name_kana": "フリガナを入力してください。"}


@pytest.mark.parametrize("kana", ["てすと", "Tesuto", "テスト太郎", "テスト1"])
def test_furigana_must_be_full_width_katakana(kana):
    assert profile_errors({**SEED, "name_kana": kana}) == {"name_kana": "フリガナは全角カタカナで入力してください。"}


@pytest.mark.parametrize("kana", ["テスト", "ニチコン タロウ", "ニチコン　タロウ", "ヴァーチャル・コーポレーション"])
def test_furigana_accepts_katakana_words(kana):
    assert is_katakana(kana) and not profile_errors({**SEED, "name_kana": kana})


def test_half_width_furigana_is_kept_full_width():
    assert validate_profile({**SEED, "name_kana": "ﾃｽﾄ ｶﾌﾞｼｷｶﾞｲｼｬ"}).name_kana == "テスト カブシキガイシャ"


@pytest.mark.parametrize("postal", ["103002", "10300260", "abcdefg", "103-00266", "〒1030026"])
def test_postal_code_is_seven_digits(postal):
    assert profile_errors({**SEED, "postal_code": postal}) == {
        "postal_code": "郵便番号は7桁の数字で入力してください（例: 103-0026）。"}


@pytest.mark.parametrize("postal", ["103-0026", "１０３００２６", "１０３－００２６", " 103 0026 ", "103ー0026", "103−0026"])
def test_postal_code_as_people_type_it_is_kept_as_seven_digits(postal):
    assert not profile_errors({**SEED, "postal_code": postal})
    assert validate_profile({**SEED, "postal_code": postal}).postal_code == "1030026"


@pytest.mark.parametrize("phone", ["033666794", "033666794512", "+81336667945", "03-3666-794x"])
def test_phone_is_ten_or_eleven_digits(phone):
    assert profile_errors({**SEED, "phone": phone}) == {
        "phone": "電話番号は10桁または11桁の数字で入力してください（例: 03-1234-5678）。"}


@pytest.mark.parametrize("phone", ["03-3666-7945", "０３３６６６７９４５", "03 (3666) 7945", "０３－３６６６－７９４５"])
def test_phone_as_people_type_it_is_kept_as_digits(phone):
    assert validate_profile({**SEED, "phone": phone}).phone == "0336667945"


def test_mobile_numbers_of_eleven_digits_pass():
    assert not profile_errors({**SEED, "phone": "09012345678"})


def test_prefecture_is_one_of_the_47():
    assert len(PREFECTURES) == 47 == len(set(PREFECTURES))
    assert {"北海道", "東京都", "京都府", "大阪府", "沖縄県"} <= set(PREFECTURES)
    for wrong in ("東京", "Tokyo", "東京都 "[:2], "関東"):
        assert profile_errors({**SEED, "prefecture": wrong}) == {"prefecture": "都道府県は一覧から選択してください。"}


def test_overlong_text_is_refused_with_the_limit():
    assert profile_errors({**SEED, "company": "株" * 101}) == {"company": "企業名は100文字以内で入力してください。"}


@pytest.mark.parametrize(("password", "confirmation", "errors"), [
    ("password123", "password123", {}),
    ("", "", {"password": "ログインパスワードを入力してください。"}),
    ("pass123", "pass123", {"password": "ログインパスワードは半角英数字8文字以上で入力してください。"}),
    ("password-123", "password-123", {"password": "ログインパスワードは半角英数字8文字以上で入力してください。"}),
    ("ｐａｓｓｗｏｒｄ１２", "ｐａｓｓｗｏｒｄ１２",
     {"password": "ログインパスワードは半角英数字8文字以上で入力してください。"}),
    ("password123", "password124",
     {"password_confirm": "ログインパスワード（確認用）がログインパスワードと一致しません。"}),
])
def test_password_rules_and_confirmation(password, confirmation, errors):
    assert password_errors(password, confirmation) == errors


@pytest.mark.parametrize(("email", "message"), [
    ("", "メールアドレスを入力してください。"),
    ("test@nichicon", "メールアドレスの形式が正しくありません。"),
    ("test.nichicon.com", "メールアドレスの形式が正しくありません。"),
    ("test@nichicon.com", None),
])
def test_email_entry(email, message):
    assert email_error(email) == message


def link_events(expires_at=NOW + timedelta(hours=1)):
    return [AgencySignupRequested(email="test@nichicon.com", expires_at=expires_at, signup_id="s1"),
            EmailRequested(message_id="agency-signup-s1", template="agency_signup_link", recipient="test@nichicon.com")]


def agency_events(signup_id: str | None):
    return [AgencyRegistered(agency_id="a1", email="test@nichicon.com", profile=AgencyProfile(**SEED),
                             signup_id=signup_id),
            AgencyCredentialSet(agency_id="a1", password_hash="h1")]


def test_a_fresh_link_can_register():
    link = fold_signup(link_events())
    assert link is not None and link.email == "test@nichicon.com"
    assert signup_refusal(link, None, NOW) is None


def test_rejects_unknown_expired_used_and_already_registered_links():
    link = fold_signup(link_events())
    assert signup_refusal(fold_signup([]), None, NOW) is SignupRefusal.UNKNOWN
    assert signup_refusal(link, None, NOW + timedelta(hours=1)) is SignupRefusal.EXPIRED
    assert signup_refusal(link, None, NOW + timedelta(minutes=59)) is None
    assert signup_refusal(link, fold(agency_events("s1")), NOW) is SignupRefusal.USED
    # a used link stays "used" after it expires: the person is told they are done, not to start again
    assert signup_refusal(link, fold(agency_events("s1")), NOW + timedelta(days=2)) is SignupRefusal.USED
    assert signup_refusal(link, fold(agency_events("other")), NOW) is SignupRefusal.REGISTERED
    assert signup_refusal(link, fold(agency_events(None)), NOW) is SignupRefusal.REGISTERED


def test_fold_applies_profile_and_password_changes_and_skips_mail_requests():
    changed = AgencyProfile(**{**SEED, "company": "新社名株式会社"})
    agency = fold([*agency_events("s1"),
                   EmailRequested(message_id="m", template="agency_registered", recipient="test@nichicon.com"),
                   AgencyProfileChanged(agency_id="a1", profile=changed),
                   AgencyCredentialSet(agency_id="a1", password_hash="h2")])
    assert agency is not None
    assert (agency.profile, agency.password_hash, agency.version, agency.signup_id) == (changed, "h2", 5, "s1")
    assert fold([EmailRequested(message_id="m", template="t", recipient="x@example.jp")]) is None


def test_control_characters_in_a_profile_field_are_refused_by_field():
    errors = profile_errors({**SEED, "company": "ニチコン\x07", "street": "日本橋\x1b兜町"})
    assert set(errors) == {"company", "street"} and "使用できない文字" in errors["company"]
