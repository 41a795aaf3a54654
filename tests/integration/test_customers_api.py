"""Agencies register and manage PPA customers through the JSON API; each agency sees only its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from support import portal

from ppa_billing.customers import NUMBER_TAKEN, hash_auth_code, stream_of
from ppa_contracts.topics import BILLING_CUSTOMER

SEED = {
    "customer_number": "1120230030", "serial_number": "E2300030", "name": "山田 太郎", "name_kana": "ヤマダ タロウ",
    "contract_start": "2023-06-01", "contract_end": None, "base_fee": "980", "sell_unit_price": "16.00",
    "usage_unit_price": "27.00", "notes": "パネル 4.5kW / PCS 4.0kW", "email": "yamada@example.jp",
}


@pytest.fixture
async def api(runtime):
    async with portal(runtime, ["identity", "billing"]) as p:
        yield p.client


async def token(client, user: str, password: str = "password123") -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", data={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_token_needs_the_right_password_and_routes_need_a_token(api):
    bad = await api.post("/api/v1/auth/token", data={"username": "a@example.jp", "password": "wrong-pass1"})
    assert bad.status_code == 401 and bad.headers["content-type"] == "application/problem+json"
    unknown = await api.post("/api/v1/auth/token", data={"username": "zz@example.jp", "password": "wrong-pass1"})
    assert unknown.json()["detail"] == bad.json()["detail"]  # no hint which part was wrong
    assert (await api.get("/api/v1/customers")).status_code == 401
    forged = await api.get("/api/v1/customers", headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401


async def test_register_read_edit_reissue_delete_a_customer(api):
    a = await token(api, "a@example.jp")
    created = await api.post("/api/v1/customers", json=SEED, headers=a)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["usage_unit_price"] == "27.00" and body["base_fee"] == "980"
    code = body["auth_code"]
    assert len(code) == 16 and code.isalnum()

    dup = await api.post("/api/v1/customers", json=SEED, headers=a)
    assert dup.status_code == 409 and dup.json()["errors"][0]["field"] in ("customer_number", "serial_number")

    edited = await api.patch("/api/v1/customers/1120230030", json={"usage_unit_price": "28.50"}, headers=a)
    assert edited.status_code == 200 and edited.json()["usage_unit_price"] == "28.50"
    assert edited.json()["auth_code"] == code
    refused = await api.patch("/api/v1/customers/1120230030", json={"auth_code": "x" * 16}, headers=a)
    assert refused.status_code == 422

    reissued = await api.post("/api/v1/customers/1120230030/auth-code", headers=a)
    assert reissued.status_code == 200 and reissued.json()["auth_code"] != code

    listing = await api.get("/api/v1/customers", params={"q": "ヤマダ"}, headers=a)
    assert listing.json()["total"] == 1 and listing.json()["items"][0]["customer_number"] == "1120230030"
    assert (await api.get("/api/v1/customers", params={"q": "nobody"}, headers=a)).json()["total"] == 0

    assert (await api.delete("/api/v1/customers/1120230030", headers=a)).status_code == 204
    assert (await api.get("/api/v1/customers/1120230030", headers=a)).status_code == 404


async def test_the_list_counts_every_match_on_every_page_of_a_search(api):
    a = await token(api, "a@example.jp")
    for i in range(23):  # a page is 20
        body = {**SEED, "customer_number": f"11202301{i:02d}", "serial_number": f"E23001{i:02d}",
                "name": f"頁 {'田中' if i % 2 else '佐藤'} {i}", "email": f"p{i}@example.jp"}
        assert (await api.post("/api/v1/customers", json=body, headers=a)).status_code == 201

    async def listing(**params) -> tuple[int, list[str]]:
        body = (await api.get("/api/v1/customers", params=params, headers=a)).json()
        return body["total"], [c["customer_number"] for c in body["items"]]

    total, first = await listing()
    assert total == 23 and first == [f"11202301{i:02d}" for i in range(20)]
    assert await listing(page=2) == (23, [f"11202301{i:02d}" for i in range(20, 23)])
    assert await listing(page=3) == (23, [])
    assert await listing(q="頁") == (23, first)  # a full first page: the rest are counted
    assert await listing(q="田中") == (11, [f"11202301{i:02d}" for i in range(1, 23, 2)])
    assert await listing(q="P2@EXAMPLE") == (1, ["1120230102"])
    assert await listing(q="112023011") == (10, [f"1120230{i}" for i in range(110, 120)])
    assert await listing(q="nobody") == (0, [])


async def test_invalid_customer_is_refused_field_by_field_and_nothing_is_stored(api):
    a = await token(api, "a@example.jp")
    bad = {**SEED, "customer_number": "2120230030", "contract_start": "2023-06-01", "contract_end": "2023-05-01",
           "sell_unit_price": "16.001", "base_fee": "-1"}
    r = await api.post("/api/v1/customers", json=bad, headers=a)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"customer_number", "contract_end", "sell_unit_price", "base_fee"}
    detail = r.json()["detail"]  # the messages follow one another as sentences, never joined by 「。、」
    assert "。、" not in detail and detail.endswith("。")
    assert detail == "".join(e["message"] for e in r.json()["errors"])
    assert (await api.get("/api/v1/customers", headers=a)).json()["total"] == 0
    malformed = await api.post("/api/v1/customers", content=b"{not json", headers={**a, "content-type": "application/json"})
    assert malformed.status_code == 422


async def test_another_agencys_customer_is_not_found(api):
    a = await token(api, "a@example.jp")
    b = await token(api, "b@example.jp")
    assert (await api.post("/api/v1/customers", json=SEED, headers=a)).status_code == 201
    assert (await api.get("/api/v1/customers/1120230030", headers=b)).status_code == 404
    assert (await api.patch("/api/v1/customers/1120230030", json={"name": "乗っ取り"}, headers=b)).status_code == 404
    assert (await api.delete("/api/v1/customers/1120230030", headers=b)).status_code == 404
    assert (await api.post("/api/v1/customers/1120230030/auth-code", headers=b)).status_code == 404
    assert (await api.get("/api/v1/customers", headers=b)).json() == {"items": [], "total": 0}
    assert (await api.get("/api/v1/customers/1120230030", headers=a)).json()["name"] == "山田 太郎"


async def test_customer_events_carry_only_the_auth_code_hash(api, runtime):
    a = await token(api, "a@example.jp")
    code = (await api.post("/api/v1/customers", json=SEED, headers=a)).json()["auth_code"]
    sub = await runtime.bus.subscribe("test-customer-events", [BILLING_CUSTOMER])
    got = []
    try:
        for _ in range(60):
            got += await sub.fetch(timeout=0.5)
            if got:
                break
    finally:
        await sub.close()
    assert got, "customer_registered was not published"
    data = got[0].envelope.data
    assert got[0].envelope.type == "jp.ppa.billing.customer_registered.v1"
    assert data["auth_code_hash"] == hash_auth_code(code)
    assert code not in got[0].envelope.to_json().decode()
    await asyncio.sleep(0)


SERIAL_TAKEN = [{"field": "serial_number", "message": "この製造番号は既に登録されています。"}]


async def test_one_serial_number_goes_to_one_customer_even_at_the_same_moment(api):
    a, b = await token(api, "a@example.jp"), await token(api, "b@example.jp")
    attempts = [({**SEED, "customer_number": f"11202300{40 + i}"}, a if i % 2 else b) for i in range(6)]
    results = await asyncio.gather(*(api.post("/api/v1/customers", json=body, headers=h) for body, h in attempts))
    assert sorted(r.status_code for r in results) == [201] + [409] * 5
    assert all(r.json()["errors"] == SERIAL_TAKEN for r in results if r.status_code == 409)
    listed = [c for h in (a, b) for c in (await api.get("/api/v1/customers", headers=h)).json()["items"]]
    assert [c["serial_number"] for c in listed] == [SEED["serial_number"]]


async def test_one_customer_number_registered_at_the_same_moment_keeps_the_winners_code(api):
    a = await token(api, "a@example.jp")
    attempts = [{**SEED, "serial_number": f"E23000{50 + i}"} for i in range(4)]
    results = await asyncio.gather(*(api.post("/api/v1/customers", json=body, headers=a) for body in attempts))
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
    (won,) = [r.json() for r in results if r.status_code == 201]
    stored = (await api.get(f"/api/v1/customers/{SEED['customer_number']}", headers=a)).json()
    assert (stored["serial_number"], stored["auth_code"]) == (won["serial_number"], won["auth_code"])
    # the losers' serial numbers were let go
    loser = next(body for body in attempts if body["serial_number"] != won["serial_number"])
    again = await api.post("/api/v1/customers", json={**loser, "customer_number": "1120230099"}, headers=a)
    assert again.status_code == 201, again.text


async def test_a_serial_number_is_free_again_once_its_customer_is_deleted_or_moved(api, runtime):
    import time

    a = await token(api, "a@example.jp")
    assert (await api.post("/api/v1/customers", json=SEED, headers=a)).status_code == 201
    taken = await api.post("/api/v1/customers", json={**SEED, "customer_number": "1120230031"}, headers=a)
    assert taken.status_code == 409 and taken.json()["errors"] == SERIAL_TAKEN
    moved = await api.patch("/api/v1/customers/1120230030", json={"serial_number": "E2300031"}, headers=a)
    assert moved.status_code == 200
    assert (await api.post("/api/v1/customers", json={**SEED, "customer_number": "1120230031"},
                           headers=a)).status_code == 201  # took the old serial
    onto = await api.patch("/api/v1/customers/1120230031", json={"serial_number": "E2300031"}, headers=a)
    assert onto.status_code == 409 and onto.json()["errors"] == SERIAL_TAKEN
    assert (await api.delete("/api/v1/customers/1120230030", headers=a)).status_code == 204
    freed = await api.patch("/api/v1/customers/1120230031", json={"serial_number": "E2300031"}, headers=a)
    assert freed.status_code == 200

    # a claim left by a registration that never finished holds its serial a minute, then is taken over
    claims = runtime.docstore("billing").collection("serial_claims")
    await claims.insert({"_id": "E2300077", "stream": "customer:gone:1120239999", "at": time.time()})
    await claims.insert({"_id": "E2300078", "stream": "customer:gone:1120239998", "at": time.time() - 120})
    fresh = await api.post("/api/v1/customers", json={**SEED, "customer_number": "1120230077",
                                                      "serial_number": "E2300077"}, headers=a)
    assert fresh.status_code == 409 and fresh.json()["errors"] == SERIAL_TAKEN
    stale = await api.post("/api/v1/customers", json={**SEED, "customer_number": "1120230078",
                                                      "serial_number": "E2300078"}, headers=a)
    assert stale.status_code == 201, stale.text


async def test_edits_at_the_same_moment_are_applied_or_refused_never_an_error(api):
    a = await token(api, "a@example.jp")
    assert (await api.post("/api/v1/customers", json=SEED, headers=a)).status_code == 201
    names = [f"同時 編集{i}" for i in range(4)]
    results = await asyncio.gather(*(api.patch("/api/v1/customers/1120230030", json={"name": n}, headers=a)
                                     for n in names))
    assert {r.status_code for r in results} <= {200, 409} and 200 in {r.status_code for r in results}
    refused = [r for r in results if r.status_code == 409]
    assert all(r.headers["content-type"] == "application/problem+json" and "同時に" in r.json()["detail"]
               for r in refused)
    stored = (await api.get("/api/v1/customers/1120230030", headers=a)).json()["name"]
    assert stored in [n for n, r in zip(names, results, strict=True) if r.status_code == 200]


async def test_a_number_registered_a_moment_ago_is_taken_before_the_read_model_shows_it(runtime):
    async with portal(runtime, ["identity", "billing"]) as p:
        a = p.tokens["a"]
        first = await p.client.post("/api/v1/customers", json=SEED, headers=a)
        assert first.status_code == 201, first.text
        customers = p.host.service("billing").customers
        # the window in which the registration is stored but its read model is not yet written
        doc_id = f"{p.agency_ids['a']}:{SEED['customer_number']}"
        doc = await customers.coll.get(doc_id)
        await customers.coll.delete({"_id": doc_id})
        again = await p.client.post("/api/v1/customers", json={**SEED, "serial_number": "E2300031"}, headers=a)
        assert again.status_code == 409
        assert again.json()["errors"] == [{"field": "customer_number", "message": NUMBER_TAKEN}]
        stream = stream_of(p.agency_ids["a"], SEED["customer_number"])
        assert [e.type for e in await p.host.service("billing").events.read(stream)] == [
            "jp.ppa.billing.customer_registered.v1"]
        # the second serial number was not kept: another customer can have it
        other = await p.client.post("/api/v1/customers", json={**SEED, "customer_number": "1120230098",
                                                               "serial_number": "E2300031"}, headers=a)
        assert other.status_code == 201, other.text
        await customers.coll.replace(doc)  # the read model catches up
        # once that customer is deleted, its number can be registered again, on top of its history
        assert (await p.client.delete(f"/api/v1/customers/{SEED['customer_number']}", headers=a)).status_code == 204
        reused = await p.client.post("/api/v1/customers", json={**SEED, "serial_number": "E2300032"}, headers=a)
        assert reused.status_code == 201, reused.text
        assert [e.type.rsplit(".", 2)[1] for e in await p.host.service("billing").events.read(stream)] == [
            "customer_registered", "customer_deleted", "customer_registered"]


async def test_a_late_event_of_a_deleted_customer_does_not_bring_it_back(runtime):
    """The read model is written by the command and again by billing's consumer, which may be far behind."""
    async with portal(runtime, ["identity", "billing"]) as p:
        a, number = p.tokens["a"], SEED["customer_number"]
        billing = p.host.service("billing")
        customers = billing.customers

        async def shown() -> bool:
            one = await p.client.get(f"/api/v1/customers/{number}", headers=a)
            listed = (await p.client.get("/api/v1/customers", params={"q": number}, headers=a)).json()["total"]
            assert (one.status_code == 200) == (listed == 1), (one.status_code, listed)
            return one.status_code == 200

        async def replay(history) -> AsyncIterator[None]:
            for env in history:
                await customers.apply(env.payload(), env.aggregateversion, env.time)
                yield

        assert (await p.client.post("/api/v1/customers", json=SEED, headers=a)).status_code == 201
        edited = await p.client.patch(f"/api/v1/customers/{number}", json={"name": "山田 花子"}, headers=a)
        assert edited.status_code == 200
        assert (await p.client.post(f"/api/v1/customers/{number}/auth-code", headers=a)).status_code == 200
        assert (await p.client.delete(f"/api/v1/customers/{number}", headers=a)).status_code == 204
        history = await billing.events.read(stream_of(p.agency_ids["a"], number))
        assert [e.aggregateversion for e in history] == [1, 2, 3, 4]
        async for _ in replay(history):  # the consumer applies the customer's history after the command did
            assert not await shown()

        # the deletion is written while an older event is being applied (after that event looked for it); first
        # the consumer finishes the history, so only this test writes meanwhile
        for _ in range(120):
            parts = await runtime.bus.lag("billing.customers", [BILLING_CUSTOMER])
            if sum(g.end for g in parts) >= len(history) and sum(g.lag for g in parts) == 0:
                break
            await asyncio.sleep(0.25)
        else:
            pytest.fail("billing.customers did not catch up")
        doc_id = f"{p.agency_ids['a']}:{number}"
        await customers.deletions.delete({"_id": doc_id})
        look = customers._deleted_after

        async def deleted_meanwhile(doc: str, version: int) -> int:
            customers._deleted_after = look
            found = await look(doc, version)
            await customers.apply(history[-1].payload(), 4, history[-1].time)
            return found

        customers._deleted_after = deleted_meanwhile
        await customers.apply(history[0].payload(), 1, history[0].time)
        assert customers._deleted_after == look and not await shown()
        assert await customers.coll.get(doc_id) is None  # the write taken back, not only passed over by readers

        # registered again on top of its history: the old events leave the new customer as it is
        again = await p.client.post(
            "/api/v1/customers", json={**SEED, "name": "佐藤 一郎", "serial_number": "E2300032"}, headers=a)
        assert again.status_code == 201, again.text
        async for _ in replay(history):
            got = await p.client.get(f"/api/v1/customers/{number}", headers=a)
            assert got.status_code == 200 and got.json()["name"] == "佐藤 一郎"
            assert got.json()["auth_code"] == again.json()["auth_code"]


async def test_a_customer_registered_before_serial_claims_existed_gets_its_claim_and_keeps_its_serial(runtime):
    """Serial uniqueness is read from the claims by `_id` (no scan of the customers): a customer stored without a
    claim (an install from before claims) has one made at start, once, so its serial is still refused to others."""
    async with portal(runtime, ["identity", "billing"]) as p:
        a = await token(p.client, "a@example.jp")
        assert (await p.client.post("/api/v1/customers", json=SEED, headers=a)).status_code == 201
        customers = p.host.service("billing").customers
        await customers.serials.delete({"_id": SEED["serial_number"]})
        await customers.serials.delete({"_id": "~claims-backfilled"})
        await customers.setup()
        claim = await customers.serials.get(SEED["serial_number"])
        assert claim is not None and claim["stream"].endswith(SEED["customer_number"])
        again = await p.client.post("/api/v1/customers", json={**SEED, "customer_number": "1120230032"}, headers=a)
        assert again.status_code == 409 and again.json()["errors"] == SERIAL_TAKEN
        # once per install: a claim removed after the marker is not made again at the next start
        await customers.serials.delete({"_id": SEED["serial_number"]})
        await customers.setup()
        assert await customers.serials.get(SEED["serial_number"]) is None
