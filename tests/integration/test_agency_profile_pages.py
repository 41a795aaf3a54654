"""The agency's own profile (販売店・業者様情報), its edit and the password change, on both runtimes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from ppa.platform import build_host
from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyPasswordChanged, AgencyProfile, AgencyProfileChanged
from ppa_contracts.notify import EmailRequested, EmailTemplate
from ppa_contracts.topics import IDENTITY_AGENCY, NOTIFY_REQUESTS
from ppa_gateway.app import create_app
from ppa_identity.domain.agency import InvalidAgencyForm

SEED = {"company": "ニチコン株式会社", "name": "テスト", "name_kana": "テスト", "postal_code": "1030026",
        "prefecture": "東京都", "city": "中央区", "street": "日本橋兜町14-9", "phone": "0336667945"}
EMAIL = "shop@example.jp"
PASSWORD = "password123"


@pytest.fixture
async def app(runtime) -> AsyncIterator[tuple]:
    host = build_host(runtime, ["identity"])
    app = create_app(host)
    await host.start()
    agency_id = await host.service("identity").create_agency(EMAIL, PASSWORD, AgencyProfile(**SEED))
    try:
        yield app, host, agency_id
    finally:
        await host.stop()


def client_of(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


async def log_in(client: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/agency/login")
    return await client.post("/agency/login", data={"email": EMAIL, "password": password,
                                                    "csrf_token": csrf_of(page.text)})


async def replay_all(runtime, topic: str) -> list[Envelope]:
    """Every event on a topic up to its current end."""
    seen: list[Envelope] = []

    async def keep(record) -> None:
        seen.append(record.envelope)

    await runtime.bus.replay(topic, keep)
    return seen


async def topic_events(runtime, want: str, timeout: float = 60, topic: str = IDENTITY_AGENCY) -> list[Envelope]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = await replay_all(runtime, topic)
        if any(e.type == want for e in seen) or loop.time() > deadline:
            return seen
        await asyncio.sleep(0.1)


async def password_mails(runtime) -> list[dict]:
    """The requested 'password changed' mails (notify's topic), as their data."""
    requests = await topic_events(runtime, EmailRequested.event_type(), topic=NOTIFY_REQUESTS)
    return [e.data for e in requests if e.data.get("template") == EmailTemplate.AGENCY_PASSWORD_CHANGED]


async def test_profile_pages_need_a_signed_in_agency(app):
    async with client_of(app[0]) as client:
        for path in ("/agency/profile", "/agency/profile/edit", "/agency/password"):
            r = await client.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/agency/login", path
        r = await client.post("/agency/profile/edit", data=SEED)
        assert r.status_code == 303 and r.headers["location"] == "/agency/login"


async def test_profile_shows_every_field_and_is_linked_from_home_and_nav(app):
    async with client_of(app[0]) as client:
        assert (await log_in(client)).status_code == 303
        home = await client.get("/agency/")
        assert 'href="/agency/profile"' in home.text and 'href="/agency/password"' in home.text
        profile = await client.get("/agency/profile")
        assert profile.status_code == 200 and "<h1>販売店・業者様情報</h1>" in profile.text
        for label in ("企業名", "氏名", "フリガナ", "郵便番号", "都道府県", "市区町村", "町名番地（建物名）",
                      "電話番号", "メールアドレス"):
            assert f'<th scope="row">{label}</th>' in profile.text, label
        for field, value in SEED.items():
            assert f'<td id="profile-{field}">{value}</td>' in profile.text
        assert f'<td id="profile-email">{EMAIL}</td>' in profile.text
        assert "登録情報を変更する" in profile.text and "販売店・業者様向け管理画面を見る" in profile.text
        nav = re.search(r"<nav class=\"site-menu\">(.*?)</nav>", profile.text, re.S).group(1)
        assert 'href="/agency/profile"' in nav and "ログアウト" in nav


async def test_profile_edit_validates_like_sign_up_and_records_the_change(app, runtime):
    application, host, agency_id = app
    async with client_of(application) as client:
        await log_in(client)
        form = await client.get("/agency/profile/edit")
        assert 'value="ニチコン株式会社"' in form.text and 'value="東京都" selected' in form.text
        token = csrf_of(form.text)
        bad = await client.post("/agency/profile/edit", data={**SEED, "name_kana": "てすと", "postal_code": "1030",
                                                              "phone": "", "csrf_token": token})
        assert bad.status_code == 422
        assert "フリガナは全角カタカナで入力してください。" in bad.text
        assert "郵便番号は7桁の数字で入力してください（例: 103-0026）。" in bad.text
        assert "電話番号を入力してください。" in bad.text and 'value="てすと"' in bad.text
        agency = await host.service("identity").agencies.load(EMAIL)
        assert agency.profile == AgencyProfile(**SEED)

        changed = {**SEED, "company": "新太陽電力株式会社", "street": "日本橋兜町1-1 PPAビル5F", "phone": "09012345678"}
        ok = await client.post("/agency/profile/edit", data={**changed, "csrf_token": token})
        assert ok.status_code == 303 and ok.headers["location"] == "/agency/profile?done=profile"
        page = await client.get(ok.headers["location"])
        assert "登録情報を変更しました。" in page.text
        assert "新太陽電力株式会社" in page.text and "PPAビル5F" in page.text and "09012345678" in page.text
        assert "新太陽電力株式会社 様" in (await client.get("/agency/")).text
        # the same values again change nothing and record nothing
        same = await client.post("/agency/profile/edit", data={**changed, "csrf_token": token})
        assert same.status_code == 303
    published = await topic_events(runtime, AgencyProfileChanged.event_type())
    changes = [e for e in published if e.type == AgencyProfileChanged.event_type()]
    assert len(changes) == 1 and changes[0].subject == agency_id
    assert changes[0].payload().profile == AgencyProfile(**changed)


async def test_password_change_needs_the_current_password_and_retires_the_old_one(app, runtime):
    application, _, agency_id = app
    async with client_of(application) as client, client_of(application) as elsewhere:
        await log_in(client)
        await log_in(elsewhere)
        assert (await elsewhere.get("/agency/profile")).status_code == 200
        form = await client.get("/agency/password")
        token = csrf_of(form.text)
        wrong = await client.post("/agency/password", data={"current_password": "nope12345", "password": "newpass2024",
                                                            "password_confirm": "newpass2024", "csrf_token": token})
        assert wrong.status_code == 422 and "現在のパスワードが正しくありません。" in wrong.text
        mismatch = await client.post("/agency/password", data={
            "current_password": PASSWORD, "password": "newpass2024", "password_confirm": "newpass2025",
            "csrf_token": token})
        assert mismatch.status_code == 422
        assert "ログインパスワード（確認用）がログインパスワードと一致しません。" in mismatch.text
        weak = await client.post("/agency/password", data={"current_password": PASSWORD, "password": "short",
                                                           "password_confirm": "short", "csrf_token": token})
        assert weak.status_code == 422 and "半角英数字8文字以上" in weak.text
        assert PASSWORD not in weak.text and "newpass2024" not in mismatch.text

        done = await client.post("/agency/password", data={"current_password": PASSWORD, "password": "newpass2024",
                                                           "password_confirm": "newpass2024", "csrf_token": token})
        assert done.status_code == 303 and done.headers["location"] == "/agency/profile?done=password"
        assert "パスワードを変更しました。" in (await client.get(done.headers["location"])).text
        # the other session ended with the old password
        assert (await elsewhere.get("/agency/profile")).status_code == 303

        old = await client.post("/api/v1/auth/token", data={"username": EMAIL, "password": PASSWORD})
        assert old.status_code == 401
        async with client_of(application) as fresh:
            assert (await log_in(fresh, PASSWORD)).status_code == 401
            assert (await log_in(fresh, "newpass2024")).status_code == 303
        new = await client.post("/api/v1/auth/token", data={"username": EMAIL, "password": "newpass2024"})
        assert new.status_code == 200
    published = await topic_events(runtime, AgencyPasswordChanged.event_type())
    [changed] = [e for e in published if e.type == AgencyPasswordChanged.event_type()]
    assert changed.subject == agency_id and changed.data == {"agency_id": agency_id}
    assert all("argon2" not in e.to_json().decode() and "newpass2024" not in e.to_json().decode() for e in published)
    [mail] = await password_mails(runtime)  # the agency is told, without the password
    assert mail["recipient"] == EMAIL and mail["context"]["by_operator"] is False
    assert mail["context"]["agency_id"] == EMAIL and "newpass2024" not in str(mail)


async def test_the_operator_resets_a_forgotten_password_and_signs_the_agency_out(app, runtime):
    application, host, agency_id = app
    agencies = host.service("identity").agencies
    async with client_of(application) as client:
        await log_in(client)
        assert (await client.get("/agency/profile")).status_code == 200
        with pytest.raises(InvalidAgencyForm) as bad:
            await agencies.reset_password(EMAIL, "short")
        assert "半角英数字8文字以上" in bad.value.errors["password"]
        with pytest.raises(LookupError):
            await agencies.reset_password("nobody@example.jp", "newpass2024")
        assert (await client.get("/agency/profile")).status_code == 200  # refused resets change nothing

        async with client_of(application) as locked:
            for _ in range(5):  # the agency tried to remember its password, and locked the address
                assert (await log_in(locked, "guess12345")).status_code == 401
            assert (await log_in(locked, PASSWORD)).status_code == 429

        assert await agencies.reset_password(" SHOP@example.jp ", "reset2024x") == agency_id
        assert (await client.get("/agency/profile")).status_code == 303  # signed out everywhere
        async with client_of(application) as fresh:
            assert (await log_in(fresh, "reset2024x")).status_code == 303  # the reset lifted the lock
        async with client_of(application) as fresh:
            assert (await log_in(fresh, PASSWORD)).status_code == 401
    published = await topic_events(runtime, AgencyPasswordChanged.event_type())
    [changed] = [e for e in published if e.type == AgencyPasswordChanged.event_type()]
    assert changed.subject == agency_id and changed.data == {"agency_id": agency_id}
    assert all("reset2024x" not in e.to_json().decode() and "argon2" not in e.to_json().decode() for e in published)
    [mail] = await password_mails(runtime)
    assert mail["recipient"] == EMAIL and mail["context"]["by_operator"] is True and "reset2024x" not in str(mail)


async def test_profile_and_password_forms_refuse_a_missing_csrf_token(app):
    application, host, _ = app
    async with client_of(application) as client:
        await log_in(client)
        edit = await client.post("/agency/profile/edit", data={**SEED, "company": "乗っ取り株式会社"})
        assert edit.status_code == 403 and "画面の有効期限が切れました" in edit.text
        password = await client.post("/agency/password", data={
            "current_password": PASSWORD, "password": "hijacked99", "password_confirm": "hijacked99",
            "csrf_token": "forged"})
        assert password.status_code == 403
        agency = await host.service("identity").agencies.load(EMAIL)
        assert agency.profile.company == "ニチコン株式会社"
        token = await client.post("/api/v1/auth/token", data={"username": EMAIL, "password": PASSWORD})
        assert token.status_code == 200
