"""Owners' My Page through the gateway, on both runtimes, with a real SMTP server catching the mails.

register → login → edit every お客様情報 field (agency e-mails and price segments included) → the
page shows them; refused edits store nothing; password reset through the mailed one-time link.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from ppa.platform import build_host
from ppa_contracts.identity import AgencyProfile
from ppa_contracts.owner import (
    AgencyAccessGranted,
    AgencyAccessWithdrawn,
    OwnerPasswordResetRequested,
    OwnerProfileChanged,
    OwnerRegistered,
    ProductChanged,
    ProductRegistered,
)
from ppa_gateway.app import create_app
from ppa_identity.domain.owner import stream_for
from ppa_identity.sessions import _key
from ppa_runtime.settings import Settings
from support import Inbox, make_settings

PASSWORD = "Passw0rd2024"
NEW_PASSWORD = "NewPassw0rd99"
SEED = {"family_name": "日見", "given_name": "太郎", "family_name_kana": "ニチコン", "given_name_kana": "タロウ",
        "nickname": "ニチコン タロウ", "postal_code": "1030026", "prefecture": "東京都", "city": "中央区",
        "street": "日本橋兜町", "phone": "0336667945", "info_opt_in": "no"}
WELCOME = "家庭用PPAポータルへの会員登録ありがとうございます"
RESET = "[家庭用PPAポータル]パスワード再設定のご案内"
REGISTRATION_LINK = "[家庭用PPAポータル]会員仮登録のご案内"
ALREADY_REGISTERED = "[家庭用PPAポータル]新規会員登録のお申込みについて"
EMAIL_CHANGE = "[家庭用PPAポータル]メールアドレス変更のご案内"
EMAIL_CHANGED = "[家庭用PPAポータル]メールアドレス変更完了のお知らせ"


@pytest.fixture
def settings(runtime_kind: str, tmp_path: Path, request: pytest.FixtureRequest, inbox) -> Settings:
    servers = request.getfixturevalue("servers") if runtime_kind == "distributed" else None
    return make_settings(runtime_kind, tmp_path, servers, smtp_host="127.0.0.1", smtp_port=inbox[1],
                         public_url="https://portal.ppa.example")


@dataclass
class Site:
    app: object
    host: object
    inbox: Inbox
    agency_ids: dict[str, str]

    @property
    def identity(self):
        return self.host.service("identity")

    def browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="https://t")


@pytest.fixture
async def site(runtime, inbox) -> AsyncIterator[Site]:
    host = build_host(runtime, ["identity", "notify"])
    app = create_app(host)
    await host.start()
    try:
        identity = host.service("identity")
        ids = {w: await identity.create_agency(f"{w}@example.jp", "password123", AgencyProfile(company=f"{w}電力"))
               for w in ("a", "b")}
        yield Site(app, host, inbox[0], ids)
    finally:
        await host.stop()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


async def submit_registration(client: httpx.AsyncClient, address: str, **override: str) -> httpx.Response:
    """新規会員登録's form, posted: the answer is the same page whether or not the address is taken."""
    form = await client.get("/mypage/register")
    data = {**SEED, "email": address, "password": PASSWORD, "password_confirm": PASSWORD,
            "csrf_token": csrf_of(form.text), **override}
    return await client.post("/mypage/register", data=data)


async def register(site: Site, client: httpx.AsyncClient, address: str, **override: str) -> httpx.Response:
    """Register as a person does: the form, then the mailed link, then 登録を完了する (the last response)."""
    before = len(site.inbox.find(address.lower(), REGISTRATION_LINK))
    sent = await submit_registration(client, address, **override)
    if sent.status_code != 200:
        return sent
    assert "仮登録メール送信" in sent.text
    mail = (await site.inbox.wait_for(address.lower(), REGISTRATION_LINK, before + 1))[-1]
    url = re.search(r"https://portal\.ppa\.example(/mypage/register/\S+)", mail.get_content()).group(1)
    page = await client.get(url)
    assert page.status_code == 200 and "登録を完了する" in page.text, page.text
    return await client.post(url, data={"csrf_token": csrf_of(page.text)})


async def login(client: httpx.AsyncClient, address: str, password: str = PASSWORD, remember: bool = False):
    form = await client.get("/mypage/login")
    data = {"email": address, "password": password, "csrf_token": csrf_of(form.text)}
    if remember:
        data["remember"] = "1"
    return await client.post("/mypage/login", data=data)


def edit_data(csrf: str, address: str, **override) -> dict:
    """A full お客様情報 form: every field of the seed, agency rows and five buy-price rows."""
    agencies = override.pop("agencies", [])
    rows = override.pop("rows", [])
    data = {**SEED, "email": address, "sell_price": "", "csrf_token": csrf, **override, "agency_email": agencies}
    rows = rows + [("all", "00:00", "00:00", "")] * (5 - len(rows))
    for i, (day, start, end, price) in enumerate(rows):
        data |= {f"buy_day_{i}": day, f"buy_start_{i}": start, f"buy_end_{i}": end, f"buy_price_{i}": price}
    return data


async def version_of(site: Site, owner_id: str) -> int:
    return len(await site.identity.events.read(stream_for(owner_id)))


async def owner_events(site: Site, owner_id: str) -> list:
    return [e.payload() for e in await site.identity.events.read(stream_for(owner_id))]


CHANGED = {"family_name": "日昆", "given_name": "次郎", "family_name_kana": "ヒコン", "given_name_kana": "ジロウ",
           "nickname": "じろう", "postal_code": "5300001", "prefecture": "大阪府", "city": "大阪市北区",
           "street": "梅田1-1-1 梅田ビル3F", "phone": "09012345678", "info_opt_in": "yes", "sell_price": "8.50"}
PLAN = [("weekday", "07:00", "23:00", "35.12"), ("weekday", "23:00", "07:00", "20"),
        ("holiday", "00:00", "00:00", "28.5")]


async def test_owner_registers_logs_in_and_edits_every_field(site, runtime):
    address = "taro_nichicon@example.jp"
    client = site.browser()
    done = await register(site, client, address)
    assert done.status_code == 303 and done.headers["location"] == "/mypage/?done=registered"
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Max-Age" not in cookie and "expires" not in cookie.lower()
    menu = await client.get(done.headers["location"])
    assert "会員登録が完了しました。" in menu.text and "お客様情報やサービス加入状況を見る" in menu.text
    assert "電力データを見る" in menu.text and "登録状況を見る" in menu.text
    [welcome] = await site.inbox.wait_for(address, WELCOME)
    assert f"ログインID : {address}" in welcome.get_content() and "https://portal.ppa.example/mypage/login" in \
        welcome.get_content()

    owner = await site.identity.owners.find_by_email(address)
    assert isinstance((await owner_events(site, owner.owner_id))[0], OwnerRegistered)

    # add a row, then fill every field: two agencies and a three-segment plan
    form = await client.get("/mypage/profile/edit")
    assert form.text.count('name="agency_email"') == 1 and form.text.count('name="buy_price_') == 5
    csrf = csrf_of(form.text)
    added = await client.post("/mypage/profile/edit", data=edit_data(csrf, address, agencies=["a@example.jp"],
                                                                       action="add_agency"))
    assert added.status_code == 200 and added.text.count('name="agency_email"') == 2
    new_address = "jiro@example.jp"
    data = edit_data(csrf, new_address, agencies=["A@example.jp", "b@example.jp"], rows=PLAN, **CHANGED)
    confirm = await client.post("/mypage/profile/edit", data=data | {"action": "confirm"})
    assert confirm.status_code == 200, text_of(confirm.text)
    assert "変更する" in confirm.text and "平日 7:00 ~ 23:00 35.12 円" in text_of(confirm.text)
    assert await version_of(site, owner.owner_id) == 3  # 確認する stores nothing
    committed = await client.post("/mypage/profile/edit", data=data | {"action": "commit"})
    assert committed.status_code == 303 and committed.headers["location"] == "/mypage/profile/done?email=sent"
    done_page = (await client.get(committed.headers["location"])).text
    assert "会員登録情報の変更が完了しました。" in done_page and "新しいメールアドレスに確認メールを送信しました。" in done_page

    # the new address becomes the login ID only through the link mailed to it
    assert (await site.identity.owners.load(owner.owner_id)).email == address
    [change_mail] = await site.inbox.wait_for(new_address, EMAIL_CHANGE)
    link = re.search(r"https://portal\.ppa\.example(/mypage/email/\S+)", change_mail.get_content()).group(1)
    confirm_page = await client.get(link)
    assert confirm_page.status_code == 200 and new_address in confirm_page.text
    assert (await site.identity.owners.load(owner.owner_id)).email == address  # the GET changed nothing
    confirmed = await client.post(link, data={"csrf_token": csrf_of(confirm_page.text)})
    assert confirmed.status_code == 200 and f"ログインID（メールアドレス）を {new_address} に変更しました。" in confirmed.text
    [notice] = await site.inbox.wait_for(address, EMAIL_CHANGED)
    assert f"新しいログインID : {new_address}" in notice.get_content()
    assert (await client.get(link)).status_code == 410  # once only

    page = text_of((await client.get("/mypage/profile")).text)
    for shown in ("日昆 次郎", "ヒコン ジロウ", "じろう", "5300001", "大阪府", "大阪市北区", "梅田1-1-1 梅田ビル3F",
                  "09012345678", new_address, "はい", "a@example.jp", "b@example.jp", "8.50 円",
                  "平日 7:00 ~ 23:00 35.12 円", "平日 23:00 ~ 7:00 20 円", "土日祝 0:00 ~ 0:00 28.5 円"):
        assert shown in page, shown
    edit_again = await client.get("/mypage/profile/edit")
    assert 'value="35.12"' in edit_again.text and 'value="b@example.jp"' in edit_again.text

    events = await owner_events(site, owner.owner_id)
    changed, *grants, email_changed, _notice = events[3:]
    assert isinstance(changed, OwnerProfileChanged) and changed.profile.email == address
    assert set(changed.changed) >= {"family_name", "agency_emails", "prices", "info_opt_in"}
    assert "email" not in changed.changed
    assert {(g.agency_email, g.agency_id) for g in grants if isinstance(g, AgencyAccessGranted)} == \
        {("a@example.jp", site.agency_ids["a"]), ("b@example.jp", site.agency_ids["b"])}
    assert isinstance(email_changed, OwnerProfileChanged) and email_changed.changed == ("email",)
    assert email_changed.profile.email == new_address and email_changed.profile.city == "大阪市北区"

    # the new address is the login ID now; the old one no longer logs in
    other = site.browser()
    assert (await login(other, address)).status_code == 401
    assert (await login(other, new_address)).status_code == 303

    # removing a row withdraws that agency's access
    data = edit_data(csrf, new_address, agencies=["a@example.jp"], rows=PLAN, **CHANGED)
    assert (await client.post("/mypage/profile/edit", data=data | {"action": "commit"})).status_code == 303
    last = (await owner_events(site, owner.owner_id))[-1]
    assert isinstance(last, AgencyAccessWithdrawn)
    assert (last.agency_email, last.agency_id) == ("b@example.jp", site.agency_ids["b"])


async def test_refused_edits_name_the_problem_and_store_nothing(site):
    address = "refused@example.jp"
    client = site.browser()
    assert (await register(site, client, address)).status_code == 303
    owner = await site.identity.owners.find_by_email(address)
    csrf = csrf_of((await client.get("/mypage/profile/edit")).text)
    before = await version_of(site, owner.owner_id)
    gap = [("weekday", "09:00", "07:00", "30"), ("holiday", "00:00", "00:00", "25")]
    cases = [
        (dict(agencies=["a@example.jp", "nobody@example.jp"]),
         "nobody@example.jp は登録されている販売店・業者様のメールアドレスではありません。"),
        (dict(rows=gap), "平日 07:00〜09:00 が未設定です。"),
        (dict(rows=[("all", "00:00", "00:00", "30"), ("holiday", "10:00", "12:00", "20")]),
         "土日祝 10:00〜12:00 が重複しています。"),
        (dict(rows=[("all", "00:00", "00:00", "30.123")]), "買電単価（区分1）は0以上の数値で、小数点以下2桁までで入力してください。"),
        (dict(sell_price="-1"), "売電単価は0以上の数値で、小数点以下2桁までで入力してください。"),
        (dict(family_name_kana="ひこん"), "フリガナ（セイ）は全角カタカナで入力してください。"),
        (dict(email="a@example"), "メールアドレスの形式が正しくありません。"),
    ]
    for override, message in cases:
        for action in ("confirm", "commit"):
            r = await client.post("/mypage/profile/edit", data=edit_data(csrf, address, **dict(override))
                                  | {"action": action})
            assert r.status_code == 422, (override, action)
            assert message in text_of(r.text), (override, action)
    # every error at once: the gap in the buy prices, a bad postal code and an unknown agency together
    for action in ("confirm", "commit"):
        r = await client.post("/mypage/profile/edit", data=edit_data(csrf, address, rows=gap, postal_code="103-00",
                                                                     agencies=["nobody@example.jp"])
                              | {"action": action})
        shown = text_of(r.text)
        assert r.status_code == 422 and "平日 07:00〜09:00 が未設定です。" in shown, action
        assert "nobody@example.jp は登録されている販売店・業者様のメールアドレスではありません。" in shown, action
        assert "郵便番号は7桁の数字で入力してください（例: 103-0026）。" in shown, action
    no_csrf = await client.post("/mypage/profile/edit", data=edit_data("forged", address, city="港区")
                                | {"action": "commit"})
    assert no_csrf.status_code == 403 and "画面の有効期限が切れました。" in no_csrf.text
    assert await version_of(site, owner.owner_id) == before
    assert (await site.identity.owners.load(owner.owner_id)).profile.city == "中央区"
    # another owner's address: the edit answers as for any address (no telling whose it is); the link
    # mailed there cannot take it
    assert (await register(site, site.browser(), "second@example.jp")).status_code == 303
    taken = await client.post("/mypage/profile/edit", data=edit_data(csrf, "second@example.jp")
                              | {"action": "commit"})
    assert taken.status_code == 303 and taken.headers["location"] == "/mypage/profile/done?email=sent"
    [mail] = await site.inbox.wait_for("second@example.jp", EMAIL_CHANGE)
    link = re.search(r"https://portal\.ppa\.example(/mypage/email/\S+)", mail.get_content()).group(1)
    holder = site.browser()
    confirm_page = await holder.get(link)
    refused = await holder.post(link, data={"csrf_token": csrf_of(confirm_page.text)})
    assert refused.status_code == 410 and "既に別のアカウントで登録されている" in refused.text
    assert (await site.identity.owners.load(owner.owner_id)).email == address
    assert (await site.identity.owners.find_by_email("second@example.jp")).owner_id != owner.owner_id


async def test_email_change_links_are_limited_per_owner(site):
    address = "limited@example.jp"
    client = site.browser()
    assert (await register(site, client, address)).status_code == 303
    csrf = csrf_of((await client.get("/mypage/profile/edit")).text)
    for n in range(5):
        r = await client.post("/mypage/profile/edit", data=edit_data(csrf, f"new{n}@example.jp") | {"action": "commit"})
        assert r.status_code == 303 and r.headers["location"] == "/mypage/profile/done?email=sent"
    sixth = await client.post("/mypage/profile/edit", data=edit_data(csrf, "new5@example.jp", city="港区")
                              | {"action": "commit"})
    assert sixth.status_code == 429 and "15分ほど待ってから再度お試しください" in sixth.text
    owner = await site.identity.owners.find_by_email(address)
    assert owner.profile.city == "中央区"  # refused as a whole: nothing stored
    await site.inbox.wait_for("new4@example.jp", EMAIL_CHANGE)
    await asyncio.sleep(0.5)
    assert not site.inbox.find("new5@example.jp")


async def test_registration_refuses_bad_fields_and_a_registered_address(site):
    client = site.browser()
    bad = await register(site, client, "x@example.jp", postal_code="103-002", password_confirm="other123",
                         info_opt_in="")
    text = text_of(bad.text)
    assert bad.status_code == 422
    assert "郵便番号は7桁の数字で入力してください（例: 103-0026）。" in text
    assert "パスワード（確認用）がパスワードと一致しません。" in text
    assert "運営会社からの情報提供可を選択してください。" in text
    assert await site.identity.owners.find_by_email("x@example.jp") is None
    assert (await register(site, client, "x@example.jp")).status_code == 303
    # a registered address gets the very same page; the mail says so to the address's holder only
    fresh = await submit_registration(site.browser(), "fresh@example.jp")
    again = await submit_registration(site.browser(), "X@Example.jp", family_name="別人")
    assert fresh.status_code == again.status_code == 200
    assert text_of(fresh.text).replace("fresh@example.jp", "@") == text_of(again.text).replace("X@Example.jp", "@")
    [notice] = await site.inbox.wait_for("x@example.jp", ALREADY_REGISTERED)
    body = notice.get_content()
    assert "ログインID : x@example.jp" in body and "https://portal.ppa.example/mypage/password/forgot" in body
    assert "/mypage/register/" not in body
    assert (await site.identity.owners.find_by_email("x@example.jp")).profile.family_name == "日見"


async def test_registration_links_work_once_for_an_hour_and_a_get_registers_nobody(site):
    client = site.browser()
    assert (await submit_registration(client, "link@example.jp")).status_code == 200
    [mail] = await site.inbox.wait_for("link@example.jp", REGISTRATION_LINK)
    url = re.search(r"https://portal\.ppa\.example(/mypage/register/\S+)", mail.get_content()).group(1)
    page = await client.get(url)
    assert page.status_code == 200 and "link@example.jp" in page.text and page.headers["referrer-policy"] == "no-referrer"
    assert await site.identity.owners.find_by_email("link@example.jp") is None  # following the link is not enough
    forged = await client.post(url, data={"csrf_token": "forged"})
    assert forged.status_code == 403 and "画面の有効期限が切れました" in forged.text
    assert await site.identity.owners.find_by_email("link@example.jp") is None
    done = await client.post(url, data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/mypage/?done=registered"
    assert (await login(site.browser(), "link@example.jp")).status_code == 303  # the password of the form
    await site.inbox.wait_for("link@example.jp", WELCOME)
    used = await site.browser().get(url)
    assert used.status_code == 410 and "このURLによる会員登録は完了しています。" in used.text
    tampered = await site.browser().get(url[:-3] + "xyz")
    assert tampered.status_code == 410 and "このURLは無効です。" in tampered.text
    # two links for one address: the second finds the address taken
    other = site.browser()
    for _ in range(2):
        assert (await submit_registration(other, "twice@example.jp")).status_code == 200
    mails = await site.inbox.wait_for("twice@example.jp", REGISTRATION_LINK, 2)
    urls = [re.search(r"https://portal\.ppa\.example(/mypage/register/\S+)", m.get_content()).group(1) for m in mails]
    first = await other.get(urls[0])
    assert (await other.post(urls[0], data={"csrf_token": csrf_of(first.text)})).status_code == 303
    second_client = site.browser()
    second = await second_client.get(urls[1])
    refused = await second_client.post(urls[1], data={"csrf_token": csrf_of(second.text)})
    assert refused.status_code == 410 and "このメールアドレスは既に登録されています。" in refused.text
    # an hour later the link has expired
    assert (await submit_registration(site.browser(), "late@example.jp")).status_code == 200
    [late] = await site.inbox.wait_for("late@example.jp", REGISTRATION_LINK)
    late_url = re.search(r"https://portal\.ppa\.example(/mypage/register/\S+)", late.get_content()).group(1)
    owners = site.identity.owners
    real_clock = owners.clock
    owners.clock = lambda: real_clock() + timedelta(hours=1, seconds=1)
    try:
        expired = await site.browser().get(late_url)
    finally:
        owners.clock = real_clock
    assert expired.status_code == 410 and "有効期限が切れています" in expired.text


async def test_login_sessions_keep_me_logged_in_idle_timeout_and_logout(site):
    address = "sessions@example.jp"
    assert (await register(site, site.browser(), address)).status_code == 303
    client = site.browser()
    assert (await client.get("/mypage/")).headers["location"] == "/mypage/login"
    planted = (await client.get("/mypage/login")).cookies.get("ppa_session") or client.cookies.get("ppa_session")
    wrong = await login(client, address, "wrong-password")
    assert wrong.status_code == 401 and "メールアドレスまたはパスワードが正しくありません。" in wrong.text

    remembered = await login(client, address, remember=True)
    assert remembered.status_code == 303 and "Max-Age=2592000" in remembered.headers["set-cookie"]
    assert client.cookies.get("ppa_session") != planted  # the id is rotated at login
    assert (await client.get("/mypage/")).status_code == 200

    short = site.browser()
    plain = await login(short, address)
    assert plain.status_code == 303 and "Max-Age" not in plain.headers["set-cookie"]
    assert (await short.get("/mypage/profile")).status_code == 200
    # thirty idle minutes later the browser-session login has ended; the remembered one has not
    sessions = site.identity.sessions.coll
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert await sessions.update({"_id": _key(short.cookies.get("ppa_session"))}, {"$set": {"idle_until": past}})
    assert (await short.get("/mypage/profile")).headers["location"] == "/mypage/login"
    assert (await client.get("/mypage/profile")).status_code == 200

    menu = await client.get("/mypage/")
    out = await client.post("/mypage/logout", data={"csrf_token": csrf_of(menu.text)})
    assert out.status_code == 303 and out.headers["location"] == "/mypage/login"
    assert (await client.get("/mypage/")).headers["location"] == "/mypage/login"


async def test_login_is_throttled_after_five_failures(site):
    address = "throttle@example.jp"
    assert (await register(site, site.browser(), address)).status_code == 303
    client = site.browser()
    for _ in range(5):
        assert (await login(client, address, "wrong-password")).status_code == 401
    locked = await login(client, address)
    assert locked.status_code == 429 and "一時的にログインできません" in locked.text


async def test_password_reset_by_mailed_link_once_without_revealing_addresses(site):
    address = "reset@example.jp"
    owner_client = site.browser()
    assert (await register(site, owner_client, address)).status_code == 303
    owner = await site.identity.owners.find_by_email(address)
    client = site.browser()
    form = await client.get("/mypage/password/forgot")
    known = await client.post("/mypage/password/forgot", data={"email": address, "csrf_token": csrf_of(form.text)})
    unknown = await client.post("/mypage/password/forgot", data={"email": "nobody@example.jp",
                                                                 "csrf_token": csrf_of(form.text)})
    assert known.status_code == unknown.status_code == 200
    assert text_of(known.text) == text_of(unknown.text)
    assert "ご入力のメールアドレスが登録されている場合は" in known.text

    [mail] = await site.inbox.wait_for(address, RESET)
    url = re.search(r"(https://portal\.ppa\.example/mypage/password/reset/\S+)", mail.get_content()).group(1)
    path = urlsplit(url).path
    token = path.rsplit("/", 1)[1]
    assert not site.inbox.find("nobody@example.jp")
    requested = [e for e in await owner_events(site, owner.owner_id) if isinstance(e, OwnerPasswordResetRequested)]
    assert len(requested) == 1 and token not in requested[0].model_dump_json()

    page = await client.get(path)
    assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
    short = await client.post(path, data={"password": "short", "password_confirm": "short",
                                          "csrf_token": csrf_of(page.text)})
    assert short.status_code == 422 and "パスワードは半角英数字8文字以上で入力してください。" in short.text
    done = await client.post(path, data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD,
                                         "csrf_token": csrf_of(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/mypage/login?done=reset"
    assert (await owner_client.get("/mypage/")).headers["location"] == "/mypage/login"  # signed out everywhere
    assert (await login(site.browser(), address)).status_code == 401
    assert (await login(site.browser(), address, NEW_PASSWORD)).status_code == 303

    used = await client.get(path)
    assert used.status_code == 410 and "このURLは無効か、有効期限が切れています。" in used.text
    fresh = csrf_of((await client.get("/mypage/password/forgot")).text)
    again = await client.post(path, data={"password": "Another1234", "password_confirm": "Another1234",
                                          "csrf_token": fresh})
    assert again.status_code == 410
    assert (await client.get("/mypage/password/reset/" + "x" * 43)).status_code == 410


async def test_products_register_edit_and_stay_the_owners_own(site):
    client = site.browser()
    assert (await register(site, client, "products@example.jp")).status_code == 303
    owner = await site.identity.owners.find_by_email("products@example.jp")
    form = await client.get("/mypage/products/new")
    csrf = csrf_of(form.text)
    product = {"system_model": "ess-t1s1", "system_serial": "HI-100001WBG", "remote_serial": "NHN1TJ1000001",
               "install_postal_code": "1030026", "watch_service": "yes", "weather_alert_control": "no",
               "early_warning_control": "no", "ai_control": "yes", "csrf_token": csrf}
    bad = await client.post("/mypage/products/new", data=product | {"system_serial": "", "ai_control": ""})
    assert bad.status_code == 422 and "システム製造番号を入力してください。" in bad.text
    assert "AI自動制御の加入状況を選択してください。" in bad.text
    r = await client.post("/mypage/products/new", data=product)
    assert r.status_code == 303 and r.headers["location"] == "/mypage/profile?done=product_registered"
    stored = (await site.identity.owners.load(owner.owner_id)).products
    assert len(stored) == 1 and stored[0].system_model == "ESS-T1S1" and stored[0].watch_service
    product_id = stored[0].product_id
    page = text_of((await client.get(r.headers["location"])).text)
    assert "製品情報を登録しました。" in page and "HI-100001WBG" in page and "ESS-T1S1" in page
    duplicate = await client.post("/mypage/products/new", data=product)
    assert duplicate.status_code == 422 and "このシステム製造番号の製品は登録済みです。" in duplicate.text

    edit = await client.post(f"/mypage/products/{product_id}/edit", data=product | {"ai_control": "no"})
    assert edit.status_code == 303
    events = await owner_events(site, owner.owner_id)
    assert isinstance(events[-2], ProductRegistered) and isinstance(events[-1], ProductChanged)
    assert events[-1].product.ai_control is False and events[-1].product.product_id == product_id

    stranger = site.browser()
    assert (await register(site, stranger, "stranger@example.jp")).status_code == 303
    stranger_csrf = csrf_of((await stranger.get("/mypage/products/new")).text)
    assert (await stranger.get(f"/mypage/products/{product_id}/edit")).status_code == 404
    theft = await stranger.post(f"/mypage/products/{product_id}/edit", data=product | {"csrf_token": stranger_csrf})
    assert theft.status_code == 404
    assert len(await owner_events(site, owner.owner_id)) == len(events)
