"""Agency sign-up through the gateway pages, on both runtimes, with a real SMTP server catching the mails.

The test follows the link from the mail as a person would: form → 確認 → 登録 → completion mail → login.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import structlog

from ppa.platform import build_host
from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyRegistered, AgencySignupRequested
from ppa_contracts.notify import EmailRequested
from ppa_contracts.topics import IDENTITY_AGENCY, NOTIFY_REQUESTS
from ppa_gateway.app import create_app
from ppa_identity.domain.agency import stream_for
from ppa_runtime.settings import Settings
from support import Inbox, make_settings

SEED_FORM = {"company": "ニチコン株式会社", "name": "テスト", "name_kana": "テスト", "postal_code": "1030026",
             "prefecture": "東京都", "city": "中央区", "street": "日本橋兜町14-9", "phone": "0336667945"}
PASSWORD = "Passw0rd2024"
LINK_SUBJECT = "[家庭用PPAポータル]新規販売店仮登録のご案内"
DONE_SUBJECT = "家庭用PPAポータルへの会員登録ありがとうございます"
KNOWN_SUBJECT = "[家庭用PPAポータル]新規販売店登録のお申込みについて"


@pytest.fixture
def settings(runtime_kind: str, tmp_path: Path, request: pytest.FixtureRequest, inbox) -> Settings:
    servers = request.getfixturevalue("servers") if runtime_kind == "distributed" else None
    return make_settings(runtime_kind, tmp_path, servers, smtp_host="127.0.0.1", smtp_port=inbox[1],
                         public_url="https://portal.ppa.example")


@dataclass
class Site:
    client: httpx.AsyncClient
    host: object
    inbox: Inbox

    @property
    def identity(self):
        return self.host.service("identity")


@pytest.fixture
async def site(runtime, inbox) -> AsyncIterator[Site]:
    host = build_host(runtime, ["identity", "notify"])
    app = create_app(host)
    await host.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://t") as client:
            yield Site(client, host, inbox[0])
    finally:
        await host.stop()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def link_in(mail) -> str:
    return re.search(r"(https://portal\.ppa\.example/agency/signup/\S+)", mail.get_content()).group(1)


async def ask_for_link(site: Site, address: str) -> httpx.Response:
    token = csrf_of((await site.client.get("/agency/signup")).text)
    return await site.client.post("/agency/signup", data={"email": address, "csrf_token": token})


async def mailed_link(site: Site, address: str, count: int = 1) -> str:
    """Ask for a sign-up link and return the path of the newest one mailed."""
    r = await ask_for_link(site, address)
    assert r.status_code == 200, r.text
    mails = await site.inbox.wait_for(address, LINK_SUBJECT, count)
    return urlsplit(link_in(mails[-1])).path


async def fill_and_confirm(site: Site, path: str, **override: str) -> httpx.Response:
    form = await site.client.get(path)
    assert form.status_code == 200, form.text
    data = {**SEED_FORM, "password": PASSWORD, "password_confirm": PASSWORD, "csrf_token": csrf_of(form.text),
            **override}
    return await site.client.post(path, data=data)


async def register(site: Site, path: str) -> httpx.Response:
    confirm = await fill_and_confirm(site, path)
    assert confirm.status_code == 200, confirm.text
    return await site.client.post(f"{path}/register", data={"csrf_token": csrf_of(confirm.text)})


async def replay_all(runtime, topic: str) -> list[Envelope]:
    """Every event on a topic up to its current end."""
    seen: list[Envelope] = []

    async def keep(record) -> None:
        seen.append(record.envelope)

    await runtime.bus.replay(topic, keep)
    return seen


async def topic_events(runtime, topic: str, want: set[str], timeout: float = 60) -> list[Envelope]:
    """Everything on a topic once the wanted event types have all been published."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = await replay_all(runtime, topic)
        if want <= {e.type for e in seen} or loop.time() > deadline:
            return seen
        await asyncio.sleep(0.1)


async def registrations(site: Site, address: str) -> int:
    envelopes = await site.identity.events.read(stream_for(address))
    return sum(e.type == AgencyRegistered.event_type() for e in envelopes)


async def test_agency_signs_up_through_the_mailed_link_and_logs_in(site, runtime):
    address = "test@nichicon.example.jp"
    with structlog.testing.capture_logs() as logs:
        entry = await site.client.get("/agency/signup")
        assert "メールアドレスを入力してください" in entry.text and "送信する" in entry.text
        sent = await site.client.post("/agency/signup", data={"email": address, "csrf_token": csrf_of(entry.text)})
        assert sent.status_code == 200 and "「新規販売店仮登録案内メール」を送信いたしました。" in sent.text
        [mail] = await site.inbox.wait_for(address, LINK_SUBJECT)
        url = link_in(mail)
        assert "この URL は、1時間有効です" in mail.get_content()
        path = urlsplit(url).path

        form = await site.client.get(path)
        assert form.status_code == 200 and address in form.text
        assert form.headers["referrer-policy"] == "no-referrer"
        for label in ("企業名", "氏名", "フリガナ", "郵便番号", "都道府県", "市区町村", "町名番地 (建物名)", "電話番号",
                      "ログインパスワード", "ログインパスワード (確認用)"):
            assert f"{label} <small" in form.text, label
        assert form.text.count("<option value=") == 48  # 47 prefectures and "選択してください"

        confirm = await fill_and_confirm(site, path)
        assert confirm.status_code == 200 and "登録する" in confirm.text and "*****" in confirm.text
        for value in SEED_FORM.values():
            assert value in confirm.text
        assert PASSWORD not in confirm.text
        assert await registrations(site, address) == 0  # 確認する registers nothing yet

        done = await site.client.post(f"{path}/register", data={"csrf_token": csrf_of(confirm.text)})
        assert done.status_code == 303 and done.headers["location"] == "/agency/signup/done"
        page = await site.client.get("/agency/signup/done")
        assert "新規販売店登録完了" in page.text and "ご登録ありがとうございました。" in page.text

        [welcome] = await site.inbox.wait_for(address, DONE_SUBJECT)
        body = welcome.get_content()
        assert f"販売店 ID : {address}" in body and "https://portal.ppa.example/agency/login" in body

        login = await site.client.get("/agency/login")
        home = await site.client.post("/agency/login", data={"email": address, "password": PASSWORD,
                                                             "csrf_token": csrf_of(login.text)})
        assert home.status_code == 303 and home.headers["location"] == "/agency/"
        profile = await site.client.get("/agency/profile")
        for value in (*SEED_FORM.values(), address):
            assert value in profile.text
        token = await site.client.post("/api/v1/auth/token", data={"username": address, "password": PASSWORD})
        assert token.status_code == 200

    secret = url.rsplit("/", 1)[1]
    assert logs and secret not in repr(logs) and PASSWORD not in repr(logs)
    published = await topic_events(runtime, IDENTITY_AGENCY, {AgencySignupRequested.event_type(),
                                                               AgencyRegistered.event_type()})
    [requested] = [e for e in published if e.type == AgencySignupRequested.event_type()]
    [registered] = [e for e in published if e.type == AgencyRegistered.event_type()]
    asked = requested.payload()
    assert asked.email == address
    assert timedelta(minutes=59) < asked.expires_at - requested.time <= timedelta(hours=1)
    assert registered.payload().signup_id == asked.signup_id and registered.subject == registered.payload().agency_id
    for envelope in published:
        text = envelope.to_json().decode()
        assert secret not in text and PASSWORD not in text and "argon2" not in text
    # the link travels only on notify's topic
    mails = await topic_events(runtime, NOTIFY_REQUESTS, {EmailRequested.event_type()})
    assert any(secret in e.to_json().decode() for e in mails)


async def test_a_registered_address_gets_the_same_page_and_a_log_in_mail(site):
    await site.identity.create_agency("known@example.jp", "password123", _profile())
    known = await ask_for_link(site, "known@example.jp")
    unknown = await ask_for_link(site, "new@example.jp")
    assert known.status_code == unknown.status_code == 200
    assert _without_csrf(known.text) == _without_csrf(unknown.text)
    [note] = await site.inbox.wait_for("known@example.jp", KNOWN_SUBJECT)
    assert "既に販売店 ID として登録されています" in note.get_content()
    assert "/agency/signup/" not in note.get_content()
    assert "https://portal.ppa.example/agency/login" in note.get_content()
    await site.inbox.wait_for("new@example.jp", LINK_SUBJECT)
    assert site.inbox.find("known@example.jp", LINK_SUBJECT) == []


async def test_rejects_expired_signup_link(site):
    path = await mailed_link(site, "late@example.jp")
    form = await site.client.get(path)
    assert form.status_code == 200
    site.identity.agencies.clock = lambda: datetime.now(UTC) + timedelta(minutes=61)
    expired = await site.client.get(path)
    assert expired.status_code == 410 and "有効期限（1時間）が切れています" in expired.text
    assert "最初からお手続きください" in expired.text and 'href="/agency/signup"' in expired.text
    late = await site.client.post(path, data={**SEED_FORM, "password": PASSWORD, "password_confirm": PASSWORD,
                                              "csrf_token": csrf_of(form.text)})
    assert late.status_code == 410
    assert await registrations(site, "late@example.jp") == 0


async def test_a_confirmed_form_cannot_register_after_the_link_expired(site):
    path = await mailed_link(site, "slow@example.jp")
    confirm = await fill_and_confirm(site, path)
    assert confirm.status_code == 200
    site.identity.agencies.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    r = await site.client.post(f"{path}/register", data={"csrf_token": csrf_of(confirm.text)})
    assert r.status_code == 410 and "有効期限" in r.text
    assert await registrations(site, "slow@example.jp") == 0


async def test_rejects_a_reused_link_and_registers_once(site):
    path = await mailed_link(site, "once@example.jp")
    confirm = await fill_and_confirm(site, path)
    first = await site.client.post(f"{path}/register", data={"csrf_token": csrf_of(confirm.text)})
    assert first.status_code == 303
    again = await site.client.get(path)
    assert again.status_code == 410 and "このURLは既に使用されています" in again.text
    replay = await site.client.post(f"{path}/register", data={"csrf_token": csrf_of(confirm.text)})
    assert replay.status_code == 410
    assert await registrations(site, "once@example.jp") == 1


async def test_two_racing_registrations_through_one_link_register_once(site):
    path = await mailed_link(site, "race@example.jp")
    confirm = await fill_and_confirm(site, path)
    token = csrf_of(confirm.text)
    results = await asyncio.gather(*[site.client.post(f"{path}/register", data={"csrf_token": token})
                                     for _ in range(4)])
    codes = sorted(r.status_code for r in results)
    assert codes[0] == 303 and codes.count(303) == 1 and set(codes[1:]) <= {409, 410}
    assert await registrations(site, "race@example.jp") == 1


async def test_rejects_a_tampered_link(site):
    path = await mailed_link(site, "tamper@example.jp")
    token = path.rsplit("/", 1)[1]
    forged = path[: -len(token)] + token[:-1] + ("A" if token[-1] != "A" else "B")
    for candidate in (forged, "/agency/signup/" + "x" * 43, "/agency/signup/short"):
        r = await site.client.get(candidate)
        assert r.status_code == 404 and "このURLは無効です" in r.text
    assert (await site.client.get(path)).status_code == 200  # the real one still works


async def test_a_second_link_for_an_address_registered_meanwhile_is_refused(site):
    first = await mailed_link(site, "twice@example.jp")
    second = await mailed_link(site, "twice@example.jp", count=2)
    assert first != second
    assert (await register(site, first)).status_code == 303
    r = await site.client.get(second)
    assert r.status_code == 409 and "既に販売店として登録されています" in r.text
    assert await registrations(site, "twice@example.jp") == 1


async def test_every_invalid_field_gets_its_message_and_the_form_keeps_what_was_typed(site):
    path = await mailed_link(site, "typo@example.jp")
    bad = {"company": "", "name": "", "name_kana": "てすと", "postal_code": "103-002", "prefecture": "東京",
           "city": "", "street": "", "phone": "03-3666-794", "password": "short", "password_confirm": "short"}
    r = await fill_and_confirm(site, path, **bad)
    assert r.status_code == 422
    for message in ("企業名を入力してください。", "氏名を入力してください。",
                    "フリガナは全角カタカナで入力してください。",
                    "郵便番号は7桁の数字で入力してください（例: 103-0026）。", "都道府県は一覧から選択してください。",
                    "市区町村を入力してください。", "町名番地（建物名）を入力してください。",
                    "電話番号は10桁または11桁の数字で入力してください（例: 03-1234-5678）。",
                    "ログインパスワードは半角英数字8文字以上で入力してください。"):
        assert message in r.text, message
    assert 'value="てすと"' in r.text and 'value="103-002"' in r.text and 'value="03-3666-794"' in r.text
    assert "short" not in r.text  # passwords are never sent back
    mismatch = await fill_and_confirm(site, path, password_confirm=PASSWORD + "x")
    assert mismatch.status_code == 422
    assert "ログインパスワード（確認用）がログインパスワードと一致しません。" in mismatch.text
    assert 'value="ニチコン株式会社"' in mismatch.text and 'value="東京都" selected' in mismatch.text
    assert PASSWORD not in mismatch.text
    assert await registrations(site, "typo@example.jp") == 0
    # 登録する without a confirmed form registers nothing either
    nothing = await site.client.post(f"{path}/register", data={"csrf_token": csrf_of(mismatch.text)})
    assert nothing.status_code == 409 and "入力内容の確認からやり直してください" in nothing.text
    assert await registrations(site, "typo@example.jp") == 0


async def test_the_email_entry_explains_a_malformed_address(site):
    r = await ask_for_link(site, "not-an-address")
    assert r.status_code == 422 and "メールアドレスの形式が正しくありません。" in r.text
    assert 'value="not-an-address"' in r.text


async def test_sign_up_forms_refuse_a_missing_csrf_token(site):
    await site.client.get("/agency/signup")
    refused = await site.client.post("/agency/signup", data={"email": "nocsrf@example.jp"})
    assert refused.status_code == 403 and "画面の有効期限が切れました" in refused.text
    path = await mailed_link(site, "csrf@example.jp")
    form = await site.client.post(path, data={**SEED_FORM, "password": PASSWORD, "password_confirm": PASSWORD})
    assert form.status_code == 403 and "画面の有効期限が切れました" in form.text
    confirm = await fill_and_confirm(site, path)
    assert confirm.status_code == 200
    forged = await site.client.post(f"{path}/register", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert await registrations(site, "csrf@example.jp") == 0
    # the refused request asked for no mail (and did not even count against the address's limit)
    assert site.inbox.find("nocsrf@example.jp", LINK_SUBJECT) == []
    assert await site.identity.agencies.requests.coll.count({"key": "account:nocsrf@example.jp"}) == 0


def _profile():
    from ppa_contracts.identity import AgencyProfile

    return AgencyProfile(**SEED_FORM)


def _without_csrf(html: str) -> str:
    return re.sub(r'name="csrf_token" value="[^"]+"', "", html)


async def test_too_many_link_requests_for_one_address_are_refused_politely(site):
    for _ in range(5):
        assert (await ask_for_link(site, "spam@example.jp")).status_code == 200
    sixth = await ask_for_link(site, "spam@example.jp")
    assert sixth.status_code == 429 and "15分ほど待ってから再度お試しください" in sixth.text
    await site.inbox.wait_for("spam@example.jp", LINK_SUBJECT, count=5)
    assert (await ask_for_link(site, "other@example.jp")).status_code == 200  # another address is not held up
