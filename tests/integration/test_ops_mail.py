"""/ops/mail: operators see notify's delivery log — a real mail through a real SMTP server shows up as sent,
filters work, a bad status is explained, and no one-time link reaches the page; on both runtimes."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest

from ops_helpers import sign_in_operator
from ppa_runtime.settings import Settings
from support import make_settings, portal

SIGNUP_SUBJECT = "[家庭用PPAポータル]新規販売店仮登録のご案内"


@pytest.fixture
def settings(runtime_kind: str, tmp_path: Path, request: pytest.FixtureRequest, inbox) -> Settings:
    servers = request.getfixturevalue("servers") if runtime_kind == "distributed" else None
    return make_settings(runtime_kind, tmp_path, servers, smtp_host="127.0.0.1", smtp_port=inbox[1])


def rows(html: str) -> list[list[str]]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return [[unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


async def test_operators_see_each_mail_once_sent_without_its_link(runtime, inbox):
    smtp, _ = inbox
    async with portal(runtime, ["identity", "notify"], agencies=("a",)) as p:
        identity = p.host.service("identity")
        await identity.agencies.request_signup("new-shop@example.jp", "198.51.100.9")
        [mail] = await smtp.wait_for("new-shop@example.jp", SIGNUP_SUBJECT)
        link = re.search(r"(\S+/agency/signup/\S+)", mail.get_content()).group(1)
        await sign_in_operator(p.client, identity)

        page = await p.client.get("/ops/mail", params={"recipient": "NEW-SHOP@example.jp"})
        assert page.status_code == 200 and 'aria-current="page">メール送信履歴' in page.text
        [row] = rows(page.text)
        assert row[1:5] == ["agency_signup_link", "new-shop@example.jp", "送信済", "1"]
        assert link not in page.text and "/agency/signup/" not in page.text
        # 関連イベント follows the mail's correlation id to the sign-up request that caused it
        correlation = re.search(r'href="/ops/events\?correlation=([^&"]+)', page.text).group(1)
        events = await p.client.get("/ops/events", params={"correlation": correlation, "window": "all"})
        assert "jp.ppa.identity.agency_signup_requested.v1" in events.text
        assert rows((await p.client.get("/ops/mail", params={"status": "failed"})).text) == []
        assert rows((await p.client.get("/ops/mail", params={"recipient": "other@example.jp"})).text) == []
        assert len(rows((await p.client.get("/ops/mail", params={"status": "sent"})).text)) == 1
        bad = await p.client.get("/ops/mail", params={"status": "lost"})
        assert bad.status_code == 422 and "状態は「送信中」「送信済」「失敗」から選んでください。" in bad.text
