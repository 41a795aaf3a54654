"""Agency bearer tokens end with a password change: the agency's own or the operator's reset, on both runtimes."""

from __future__ import annotations

import asyncio

from support import portal

SERVICES = ["identity", "billing", "metering"]
CUSTOMERS = "/api/v1/customers"
DAILY = "/api/v1/customers/1100000001/daily-usage?from=2024-01-01&to=2024-01-31"
PROFILE = {"company": "a電力販売", "name": "テスト", "name_kana": "テスト", "postal_code": "1030026",
           "prefecture": "東京都", "city": "中央区", "street": "日本橋兜町14-9", "phone": "0336667945"}


async def token(client, email: str, password: str) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def until_refused(client, headers: dict[str, str], path: str = CUSTOMERS, timeout: float = 60) -> None:
    """Wait until the services have read the change (its event goes through the bus)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (r := await client.get(path, headers=headers)).status_code != 401:
        assert r.status_code == 200, r.text
        assert loop.time() < deadline, "a token issued before the password change still works"
        await asyncio.sleep(0.1)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == "有効なアクセストークンが必要です。"


async def test_an_operator_reset_retires_the_agencys_tokens_and_no_one_elses(runtime):
    async with portal(runtime, SERVICES) as p:
        client, agencies = p.client, p.host.service("identity").agencies
        before = p.tokens["a"]
        await agencies.change_profile(p.agency_ids["a"], "a@example.jp", PROFILE)
        after_profile = await token(client, "a@example.jp", "password123")
        assert (await client.get(CUSTOMERS, headers=before)).status_code == 200  # a profile edit retires nothing

        await agencies.reset_password("a@example.jp", "reset2024x")
        await until_refused(client, before)
        assert (await client.get(CUSTOMERS, headers=after_profile)).status_code == 401
        assert (await client.get(DAILY, headers=before)).status_code == 401  # every service that serves the API
        assert (await client.get(CUSTOMERS, headers=p.tokens["b"])).status_code == 200  # another agency's stand

        fresh = await token(client, "a@example.jp", "reset2024x")
        assert (await client.get(CUSTOMERS, headers=fresh)).status_code == 200
        assert (await client.get(DAILY, headers=fresh)).status_code == 404  # through to the route: no such customer


async def test_the_agencys_own_password_change_retires_its_older_tokens(runtime):
    async with portal(runtime, SERVICES, agencies=("a",)) as p:
        client, agencies = p.client, p.host.service("identity").agencies
        before = p.tokens["a"]
        await agencies.change_password(p.agency_ids["a"], "a@example.jp", "password123", "newpass2024", "newpass2024",
                                       "127.0.0.1")
        await until_refused(client, before)
        fresh = await token(client, "a@example.jp", "newpass2024")
        assert (await client.get(CUSTOMERS, headers=fresh)).status_code == 200
        # a second change retires the token issued between the two
        await agencies.change_password(p.agency_ids["a"], "a@example.jp", "newpass2024", "third2024x", "third2024x",
                                       "127.0.0.1")
        await until_refused(client, fresh)
        third = await token(client, "a@example.jp", "third2024x")
        assert (await client.get(CUSTOMERS, headers=third)).status_code == 200


async def test_only_a_token_for_the_agencys_current_password_signed_with_the_installs_key_is_accepted(runtime):
    from ppa_runtime.auth import issue_agency_token

    async with portal(runtime, SERVICES, agencies=("a",)) as p:
        client, agency_id, keys = p.client, p.agency_ids["a"], runtime.keys.verifying
        for service in ("billing", "metering"):  # an unknown agency is refused after this wait
            p.host.service(service).agency_credentials.unknown_wait_seconds = 0.5

        def minted(key_list, agency=agency_id, version=0):
            return {"Authorization": f"Bearer {issue_agency_token(key_list, agency, 'a@example.jp', version)}"}

        assert (await client.get(CUSTOMERS, headers=minted(keys))).status_code == 200  # what identity issues
        assert (await client.get(CUSTOMERS, headers=minted(["w" * 48]))).status_code == 401  # another key
        assert (await client.get(CUSTOMERS, headers=minted(keys, version=10**9))).status_code == 401  # the future
        assert (await client.get(CUSTOMERS, headers=minted(keys, agency="no-such-agency"))).status_code == 401

        await p.host.service("identity").agencies.reset_password("a@example.jp", "reset2024x")
        await until_refused(client, minted(keys, version=0))  # the old password's version
        fresh = await token(client, "a@example.jp", "reset2024x")
        assert (await client.get(CUSTOMERS, headers=fresh)).status_code == 200
        assert (await client.get(DAILY, headers=minted(keys, version=10**9))).status_code == 401
