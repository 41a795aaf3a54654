"""Failed logins refuse the address that guesses, slow the account down for everyone, and mail the agency once;
they never lock the account holder out."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import make_settings, portal

from ppa_runtime.auth import LoginLocked
from ppa_runtime.settings import Settings

SUBJECT = "[家庭用PPAポータル]ログイン失敗が続いています"
EMAIL = "a@example.jp"


@pytest.fixture
def settings(runtime_kind: str, tmp_path: Path, request: pytest.FixtureRequest, inbox) -> Settings:
    servers = request.getfixturevalue("servers") if runtime_kind == "distributed" else None
    return make_settings(runtime_kind, tmp_path, servers, smtp_host="127.0.0.1", smtp_port=inbox[1])


async def test_strangers_slow_the_account_down_but_never_lock_its_holder_out(runtime, inbox):
    async with portal(runtime, ["identity", "notify"], agencies=("a",)) as p:
        identity = p.host.service("identity")
        throttle = identity.throttle
        throttle.slow_step = 0.01  # the rule, not the wait, is under test
        for i in range(12):  # 12 addresses, one guess each
            assert await identity.login_agency(EMAIL, "guess12345", f"198.51.100.{i}") is None
        assert await throttle.delay(EMAIL) > 0  # every attempt on the account now waits first

        holder = await identity.login_agency(EMAIL, "password123", "192.0.2.7")
        assert holder is not None and holder.email == EMAIL

        for _ in range(5):  # one address guessing: refused for this account, even with the right password
            assert await identity.login_agency(EMAIL, "guess12345", "203.0.113.9") is None
        with pytest.raises(LoginLocked):
            await identity.login_agency(EMAIL, "password123", "203.0.113.9")
        assert await identity.login_agency(EMAIL, "password123", "192.0.2.7") is not None  # not the holder

        [mail] = await inbox[0].wait_for(EMAIL, SUBJECT)  # once, when the burst began
        body = mail.get_content()
        assert "直近15分間に10回失敗しました" in body and "password123" not in body and "guess12345" not in body


async def test_an_address_guessing_many_accounts_is_refused_for_all(runtime):
    async with portal(runtime, ["identity"], agencies=("a", "b")) as p:
        identity = p.host.service("identity")
        for i in range(20):
            assert await identity.login_agency(f"user{i}@example.jp", "guess12345", "203.0.113.50") is None
        with pytest.raises(LoginLocked):
            await identity.login_agency("b@example.jp", "password123", "203.0.113.50")
        assert await identity.login_agency("b@example.jp", "password123", "192.0.2.8") is not None
