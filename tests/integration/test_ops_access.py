"""Only operators reach /ops: agencies' sessions and bearer tokens are refused, on both runtimes."""

from __future__ import annotations

import pytest

from ops_helpers import OPERATOR_EMAIL, OPERATOR_PASSWORD, csrf_of, sign_in_operator
from ppa_identity.operators import InvalidOperator, OperatorExists
from support import portal

OPS_PAGES = ["/ops/", "/ops/events", "/ops/health", "/ops/dead-letters", "/ops/mail",
             "/ops/events/ppa.identity.agency.v1/0/0"]


async def test_agency_session_and_bearer_tokens_never_reach_ops_pages(runtime):
    async with portal(runtime, ["identity", "linking"]) as p:
        client = p.client
        # anonymous: sent to the operators' login
        for path in OPS_PAGES:
            r = await client.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/ops/login", path
        # a bearer token of an agency: 403, with or without a session
        for path in OPS_PAGES + ["/ops/events/stream", "/ops/projections/agency_directory/rebuild"]:
            r = await client.get(path, headers=p.tokens["a"])
            assert r.status_code == 403, path
        # an agency signed in on its own pages
        form = await client.get("/agency/login")
        signed = await client.post("/agency/login", data={"email": "a@example.jp", "password": "password123",
                                                          "csrf_token": csrf_of(form.text)})
        assert signed.status_code == 303 and signed.headers["location"] == "/agency/"
        csrf = csrf_of((await client.get("/agency/")).text)
        for path in OPS_PAGES:
            r = await client.get(path)
            assert r.status_code == 403 and "運用担当者専用" in r.text, path
        for path in ("/ops/events/stream", "/ops/projections/agency_directory/rebuild"):
            r = await client.get(path)
            assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json"), path
        for path, data in (("/ops/dead-letters/replay", {"key": "x/0/0"}), ("/ops/dead-letters/replay-all", {}),
                           ("/ops/dead-letters/discard", {"key": "x/0/0", "reason": "r"}),
                           ("/ops/projections/agency_directory/rebuild", {})):
            r = await client.post(path, data={**data, "csrf_token": csrf})
            assert r.status_code == 403, path
        ops = getattr(client._transport.app.state, "ops", None)
        assert ops is None or not ops.rebuilds.jobs  # nothing was started by the refused requests
        # and the agency's credentials do not sign in as an operator
        form = await client.get("/ops/login")
        refused = await client.post("/ops/login", data={"email": "a@example.jp", "password": "password123",
                                                        "csrf_token": csrf_of(form.text)})
        assert refused.status_code == 401 and "正しくありません" in refused.text


async def test_operator_signs_in_with_csrf_and_is_not_an_agency(runtime):
    async with portal(runtime, ["identity", "linking"], agencies=("a",)) as p:
        identity = p.host.service("identity")
        client = p.client
        form = await client.get("/ops/login")
        await identity.operators.create(OPERATOR_EMAIL, OPERATOR_PASSWORD)
        no_csrf = await client.post("/ops/login", data={"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD})
        assert no_csrf.status_code == 403 and "有効期限" in no_csrf.text
        wrong = await client.post("/ops/login", data={"email": OPERATOR_EMAIL, "password": "not-the-password",
                                                      "csrf_token": csrf_of(form.text)})
        assert wrong.status_code == 401 and "正しくありません" in wrong.text
        ok = await client.post("/ops/login", data={"email": OPERATOR_EMAIL.upper(), "password": OPERATOR_PASSWORD,
                                                   "csrf_token": csrf_of(wrong.text)})
        assert ok.status_code == 303 and ok.headers["location"] == "/ops/events"
        page = await client.get("/ops/events")
        assert page.status_code == 200 and "イベントストリーム" in page.text and OPERATOR_EMAIL in page.text
        # an operator session is not an agency session
        agency_home = await client.get("/agency/")
        assert agency_home.status_code == 303 and agency_home.headers["location"] == "/agency/login"
        out = await client.post("/ops/logout", data={"csrf_token": csrf_of(page.text)})
        assert out.status_code == 303 and (await client.get("/ops/health")).status_code == 303


async def test_operator_accounts_refuse_bad_input_and_duplicates(runtime):
    async with portal(runtime, ["identity"], agencies=()) as p:
        operators = p.host.service("identity").operators
        with pytest.raises(InvalidOperator, match="メールアドレス"):
            await operators.create("not-an-email", OPERATOR_PASSWORD)
        with pytest.raises(InvalidOperator, match="10文字以上"):
            await operators.create(OPERATOR_EMAIL, "short")
        await operators.create(OPERATOR_EMAIL, OPERATOR_PASSWORD)
        with pytest.raises(OperatorExists):
            await operators.create(" OPS@example.jp ", "another-password-2")
        assert (await operators.load(OPERATOR_EMAIL)).password_hash.startswith("$argon2id$")
        assert await sign_in_operator(p.client, p.host.service("identity"), "ops2@example.jp") != ""
