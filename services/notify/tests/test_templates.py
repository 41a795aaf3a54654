"""Templates reproduce the seed's e-mails word for word, and a missing context key fails loudly."""

from __future__ import annotations

import pytest

from ppa_contracts.notify import TEMPLATE_CONTEXT, EmailTemplate
from ppa_notify.rendering import Brand, RenderError, jst, render, template_names

# The seed manual's sender: rendering with it must give the seed's mails back.
SEED_BRAND = Brand(
    site_name="ニチコンオーナーズ倶楽部",
    public_url="https://test-owners.nichicon.co.jp/",
    signature="""ニチコン株式会社
【お問い合わせ部署名】 オーナーズ倶楽部運営事務局
【TEL】 0120-215-078
【受付時間】 9:00~17:00 (土、日、祝日、休業日を除く)
【メールアドレス】 owners.club@nichicon.com""",
)

SAMPLE = {
    "recipient": "test@nichicon.com",
    "signup_url": "https://ppa.example/agency/signup?token=one-time-secret",
    "reset_url": "https://ppa.example/password_reset?token=one-time-secret",
    "registration_url": "https://ppa.example/mypage/register/one-time-secret",
    "confirm_url": "https://ppa.example/mypage/email/one-time-secret",
    "new_email": "jiro@example.jp",
    "expires_at": "2024-05-20T06:30:00+00:00",
    "agency_id": "test@nichicon.com",
    "agency_email": "test@nichicon.com",
    "changed_at": "2024-05-20T06:30:00+00:00",
    "by_operator": True,
    "link_id": "186",
    "owner_name": "日見 太郎",
    "login_id": "taro_nichicon@nichicon.com",
    "owner_name_kana": "ニチコン タロウ",
    "prefecture": "東京都",
    "city": "中央区",
    "street": "日本橋兜町",
    "owner_email": "ide.masatoshi+test011@nichicon.com",
    "products": [{"system_model": "ESS-U4X1", "system_serial": "HC-A10001WN1"}],
    "customer_name": "顧客0151",
    "invoice_number": "24011120230030",
    "month": "2024/01",
    "total": "2,098",
    "revision": 1,
    "issuer_name": "太陽電力株式会社",
    "failures": 10,
    "window_minutes": 15,
    "agency_name": "太陽電力株式会社",
    "serial_number": "HC-A10001WN1",
}


def context_of(template: str, **override) -> dict:
    keys = (*TEMPLATE_CONTEXT[template], "recipient")
    return {k: SAMPLE[k] for k in keys} | override


def test_every_template_in_the_contract_has_a_file_and_no_file_is_unlisted():
    assert template_names() == sorted(t.value for t in EmailTemplate)
    assert set(TEMPLATE_CONTEXT) == set(EmailTemplate)


@pytest.mark.parametrize("template", list(EmailTemplate))
def test_each_template_renders_with_exactly_its_documented_keys(template):
    subject, body = render(template, context_of(template))
    assert subject and "\n" not in subject
    assert body.startswith("※このメールはシステムからの自動返信です\n")
    assert body.endswith("【メールアドレス】 support@ppa.example\n")


@pytest.mark.parametrize(("template", "key"), [(t, k) for t in EmailTemplate for k in TEMPLATE_CONTEXT[t]])
def test_a_missing_context_key_fails_the_render_and_names_the_key(template, key):
    context = context_of(template)
    del context[key]
    with pytest.raises(RenderError, match=key):
        render(template, context)


def test_a_product_without_its_serial_fails_the_render():
    with pytest.raises(RenderError, match="system_serial"):
        render("link_requested", context_of("link_requested", products=[{"system_model": "ESS-U4X1"}]))


def test_an_unknown_template_fails_the_render():
    with pytest.raises(RenderError, match="unknown template 'welcome'"):
        render("welcome", {})


def test_a_bad_value_fails_without_echoing_it():
    with pytest.raises(RenderError) as caught:
        render("agency_signup_link", context_of("agency_signup_link", expires_at="not-a-time-SECRET"))
    assert "SECRET" not in str(caught.value)


def test_registration_complete_mail_is_the_seeds():
    subject, body = render("agency_registered", context_of("agency_registered"), SEED_BRAND)
    assert subject == "ニチコンオーナーズ倶楽部への会員登録ありがとうございます"
    assert body == """※このメールはシステムからの自動返信です

こちらはニチコンオーナーズ倶楽部です。
このたびはニチコンオーナーズ倶楽部にご登録いただき誠にありがとうございます。

■ご登録いただいた販売店 ID

販売店 ID : test@nichicon.com

販売店 ID・パスワードは、ニチコンオーナーズ倶楽部にログインする際に必要となります。
大切に保管してください。
それでは、ニチコンオーナーズ倶楽部をお楽しみください。

販売店・業者様向け管理画面はこちら
https://test-owners.nichicon.co.jp/agency/login

ニチコン株式会社
【お問い合わせ部署名】 オーナーズ倶楽部運営事務局
【TEL】 0120-215-078
【受付時間】 9:00~17:00 (土、日、祝日、休業日を除く)
【メールアドレス】 owners.club@nichicon.com
"""


def test_link_request_mail_to_the_agency_is_the_seeds():
    subject, body = render("link_requested", context_of("link_requested"), SEED_BRAND)
    assert subject == "[ニチコンオーナーズ倶楽部]新規メールアドレス登録用リンクにアクセスしてください"
    assert body == """※このメールはシステムからの自動返信です

test@nichicon.com様

こちらはニチコンオーナーズ倶楽部です。
下記のオーナー様より、ログイン連携の申請がありました。

氏名：日見 太郎
フリガナ：ニチコン タロウ
都道府県：東京都
市区町村：中央区
町名番地：日本橋兜町
メールアドレス :ide.masatoshi+test011@nichicon.com
システム機種名：ESS-U4X1
システム製造番号：HC-A10001WN1

下記の URL にアクセスして、申請を許可してください。

https://test-owners.nichicon.co.jp/agency_admin/186

こちらのメールに心当たりのない方は、下記までご連絡ください。

ニチコン株式会社
【お問い合わせ部署名】 オーナーズ倶楽部運営事務局
【TEL】 0120-215-078
【受付時間】 9:00~17:00 (土、日、祝日、休業日を除く)
【メールアドレス】 owners.club@nichicon.com
"""


def test_link_request_mail_lists_every_product():
    products = [{"system_model": "ESS-U4X1", "system_serial": "HC-A10001WN1"},
                {"system_model": "ESS-T1S1", "system_serial": "HI-100001WBG"}]
    _, body = render("link_requested", context_of("link_requested", products=products))
    assert "システム機種名：ESS-U4X1\nシステム製造番号：HC-A10001WN1\nシステム機種名：ESS-T1S1\n" in body


def test_link_rejected_mail_to_the_owner_is_the_seeds():
    context = context_of("link_rejected", recipient="taro_nichicon@nichicon.com")
    subject, body = render("link_rejected", context, SEED_BRAND)
    assert subject == "[ニチコンオーナーズ倶楽部]ログイン連携が拒否されました。"
    assert body.startswith("""※このメールはシステムからの自動返信です

taro_nichicon@nichicon.com 様

こちらはニチコンオーナーズ倶楽部です。
申請した販売店・業者様アカウントより、ログイン連携が拒否されました。

メールアドレス :test@nichicon.com

こちらのメールに心当たりのない方は、下記までご連絡ください。

ニチコン株式会社
""")


def test_link_approved_mail_tells_the_owner_in_the_same_style():
    subject, body = render("link_approved", context_of("link_approved", recipient="taro@example.jp"), SEED_BRAND)
    assert subject == "[ニチコンオーナーズ倶楽部]ログイン連携が許可されました。"
    assert "taro@example.jp 様" in body
    assert "申請した販売店・業者様アカウントより、ログイン連携が許可されました。" in body
    assert "メールアドレス :test@nichicon.com" in body


def test_signup_link_mail_carries_the_link_and_its_one_hour_validity_in_japan_time():
    subject, body = render("agency_signup_link", context_of("agency_signup_link"))
    assert subject == "[家庭用PPAポータル]新規販売店仮登録のご案内"
    assert "\nhttps://ppa.example/agency/signup?token=one-time-secret\n" in body
    assert "1時間有効です（有効期限：2024年5月20日 15:30）" in body
    assert "1時間以内にアクセスいただけなかった場合は、再度、最初からお手続きください。" in body


def test_password_reset_mail_carries_the_link_and_its_expiry():
    subject, body = render("owner_password_reset", context_of("owner_password_reset"))
    assert subject == "[家庭用PPAポータル]パスワード再設定のご案内"
    assert "\nhttps://ppa.example/password_reset?token=one-time-secret\n" in body
    assert "有効期限は 2024年5月20日 15:30 です" in body


def test_japan_time_treats_a_naive_timestamp_as_utc():
    assert jst("2024-12-31T15:05:00") == "2025年1月1日 00:05"
    assert jst("2024-12-31T15:05:00Z") == "2025年1月1日 00:05"


def test_a_corrected_invoice_mail_says_so():
    first_subject, first_body = render(EmailTemplate.INVOICE_ISSUED, context_of(EmailTemplate.INVOICE_ISSUED))
    subject, body = render(EmailTemplate.INVOICE_ISSUED, context_of(EmailTemplate.INVOICE_ISSUED, revision=2))
    assert first_subject == "[家庭用PPAポータル]2024/01分 電気料金のご請求（請求番号 24011120230030）"
    assert "ご請求金額（税込）：2,098 円" in first_body and "訂正" not in first_body
    assert subject == "[家庭用PPAポータル]【訂正】2024/01分 電気料金のご請求（請求番号 24011120230030）"
    assert "訂正後の請求書（第2版）" in body


def test_a_voided_invoice_mail_says_it_was_cancelled_and_nothing_is_owed():
    subject, body = render(EmailTemplate.INVOICE_VOIDED, context_of(EmailTemplate.INVOICE_VOIDED, revision=2))
    assert subject == "[家庭用PPAポータル]【取消】2024/01分 電気料金のご請求（請求番号 24011120230030）"
    assert "先にお送りした2024/01分の請求書（第2版）は取り消しとなりました。" in body
    assert "この請求書によるお支払いは不要です。" in body and "取り消した請求金額（税込）：2,098 円" in body
    assert body.startswith("※このメールはシステムからの自動返信です\n\n顧客0151 様\n")


def test_the_password_changed_mail_says_who_changed_it_and_what_it_ended():
    subject, own = render("agency_password_changed", context_of("agency_password_changed", by_operator=False))
    assert subject == "[家庭用PPAポータル]パスワード変更のお知らせ"
    assert "販売店 ID : test@nichicon.com\n変更日時 : 2024年5月20日 15:30\n" in own
    assert "変更を行った画面を除き" in own and "運営事務局がパスワードを再設定しました" not in own
    _, reset = render("agency_password_changed", context_of("agency_password_changed"))
    assert "運営事務局がパスワードを再設定しました" in reset and "変更を行った画面を除き" not in reset
    assert "/agency/login" in reset


def test_the_login_failures_mail_says_how_many_and_where_to_change_the_password():
    subject, body = render("agency_login_failures", context_of("agency_login_failures"), SEED_BRAND)
    assert subject == "[ニチコンオーナーズ倶楽部]ログイン失敗が続いています"
    assert "直近15分間に10回失敗しました" in body and "販売店 ID : test@nichicon.com" in body
    assert "/agency/login" in body
