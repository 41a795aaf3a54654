"""Agency portal login as a person uses it: CSRF-protected form, Japanese errors, session rotation, logout."""

from __future__ import annotations

import re

import httpx
import pytest

from ppa.platform import build_host
from ppa_contracts.identity import AgencyProfile
from ppa_gateway.app import create_app


@pytest.fixture
async def client(runtime):
    host = build_host(runtime, ["identity"], workers=False)
    app = create_app(host)
    await host.start()
    await host.service("identity").create_agency("shop@example.jp", "password123", AgencyProfile(company="太陽電力"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c
    await host.stop()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


async def test_login_page_has_labelled_fields_csrf_and_a_safe_cookie(client):
    page = await client.get("/agency/login")
    assert page.status_code == 200
    assert '<label for="email">ID</label>' in page.text and '<label for="password">パスワード</label>' in page.text
    assert "新規会員登録はこちら" in page.text and csrf_of(page.text)
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


async def test_the_seeds_address_leads_to_the_agency_sign_up(client):
    moved = await client.get("/store/linkaccounts")
    assert moved.status_code == 301 and moved.headers["location"] == "/agency/login"
    page = await client.get("/store/linkaccounts", follow_redirects=True)
    assert page.status_code == 200 and '<a href="/agency/signup">新規会員登録はこちら</a>' in page.text
    assert (await client.get("/agency/signup")).status_code == 200


async def test_login_without_the_forms_token_is_refused(client):
    await client.get("/agency/login")
    r = await client.post("/agency/login", data={"email": "shop@example.jp", "password": "password123"})
    assert r.status_code == 403 and "画面の有効期限が切れました" in r.text
    assert (await client.get("/agency/")).status_code == 303


async def test_wrong_password_gets_one_message_for_every_failure(client):
    token = csrf_of((await client.get("/agency/login")).text)
    wrong = await client.post("/agency/login", data={"email": "shop@example.jp", "password": "nope12345",
                                                     "csrf_token": token})
    unknown = await client.post("/agency/login", data={"email": "who@example.jp", "password": "nope12345",
                                                       "csrf_token": token})
    assert wrong.status_code == unknown.status_code == 401
    assert "販売店IDまたはパスワードが正しくありません。" in wrong.text and "販売店IDまたはパスワードが正しくありません。" in unknown.text
    assert 'value="shop@example.jp"' in wrong.text


async def test_login_rotates_the_session_and_logout_ends_it(client):
    page = await client.get("/agency/login")
    before = client.cookies.get("ppa_session")
    done = await client.post("/agency/login", data={"email": "SHOP@example.jp", "password": "password123",
                                                    "csrf_token": csrf_of(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/agency/"
    after = client.cookies.get("ppa_session")
    assert after and after != before
    home = await client.get("/agency/")
    assert home.status_code == 200 and "太陽電力 様" in home.text and "販売店・業者様向け管理画面" in home.text
    # the id from before login is worth nothing now
    client.cookies.clear()
    client.cookies.set("ppa_session", before)
    assert (await client.get("/agency/")).status_code == 303
    client.cookies.clear()
    client.cookies.set("ppa_session", after)
    out = await client.post("/agency/logout", data={"csrf_token": csrf_of(home.text)})
    assert out.status_code == 303 and out.headers["location"] == "/agency/login"
    client.cookies.clear()
    client.cookies.set("ppa_session", after)
    assert (await client.get("/agency/")).status_code == 303


async def test_repeated_failures_lock_the_account_with_a_clear_message(client):
    token = csrf_of((await client.get("/agency/login")).text)
    for _ in range(5):
        r = await client.post("/agency/login", data={"email": "shop@example.jp", "password": "wrong1234",
                                                     "csrf_token": token})
        assert r.status_code == 401
    locked = await client.post("/agency/login", data={"email": "shop@example.jp", "password": "password123",
                                                      "csrf_token": token})
    assert locked.status_code == 429 and "一時的にログインできません" in locked.text
    api = await client.post("/api/v1/auth/token", data={"username": "shop@example.jp", "password": "password123"})
    assert api.status_code == 429 and api.headers["content-type"] == "application/problem+json"
    other = await client.post("/api/v1/auth/token", data={"username": "nobody@example.jp", "password": "x1234567"})
    assert other.status_code == 401  # another account is not locked by this one's failures


async def test_login_returns_to_the_portal_page_asked_for_and_never_to_another_site(client):
    page = await client.get("/agency/login", params={"next": "/agency_admin/abc123"})
    assert '<input type="hidden" name="next" value="/agency_admin/abc123">' in page.text
    token = csrf_of(page.text)
    failed = await client.post("/agency/login", data={"email": "shop@example.jp", "password": "nope12345",
                                                      "csrf_token": token, "next": "/agency_admin/abc123"})
    assert failed.status_code == 401 and 'name="next" value="/agency_admin/abc123"' in failed.text
    done = await client.post("/agency/login", data={"email": "shop@example.jp", "password": "password123",
                                                    "csrf_token": token, "next": "/agency_admin/abc123"})
    assert done.status_code == 303 and done.headers["location"] == "/agency_admin/abc123"
    for hostile in ("https://evil.example/", "//evil.example/agency/", "/agency/\\evil", "/mypage/",
                    "/agency//evil.example", "/agency/\nSet-Cookie:x"):
        await client.post("/agency/logout", data={"csrf_token": csrf_of((await client.get("/agency/")).text)})
        token = csrf_of((await client.get("/agency/login", params={"next": hostile})).text)
        r = await client.post("/agency/login", data={"email": "shop@example.jp", "password": "password123",
                                                     "csrf_token": token, "next": hostile})
        assert r.status_code == 303 and r.headers["location"] == "/agency/", hostile
