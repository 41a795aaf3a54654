"""An owner attaches a home by proof (serial + auth code) on both runtimes: wrong pairs get one message and are
throttled like logins; a re-issued code, a deleted customer or a detach end what the owner sees."""

from __future__ import annotations

import pytest
from owner_support import csrf_of, customer_with_device, owner_client, prove_home

from ppa_contracts.owner import OwnerHomeAttached, OwnerHomeDetached, ProductRegistered
from ppa_gateway.owner_homes import PROOF_FAILED, PROOF_LOCKED
from ppa_identity.domain.owner import stream_for
from support import eventually, portal


@pytest.fixture
async def site(runtime):
    async with portal(runtime, ["identity", "billing", "metering"]) as p:
        yield p


async def owner_of(p, client) -> str:
    menu = await client.get("/mypage/profile")
    assert menu.status_code == 200
    return (await p.host.service("identity").sessions.get(client.cookies.get("ppa_session")))["principal"]


async def test_a_serial_with_its_auth_code_attaches_the_home_and_a_wrong_pair_changes_nothing(site):
    home = await customer_with_device(site)
    other = await customer_with_device(site)
    client = await owner_client(site)
    owner_id = await owner_of(site, client)
    identity = site.host.service("identity")
    before = len(await identity.events.read(stream_for(owner_id)))

    for serial, code in ((home["serial"], other["code"]), ("NOSUCHSERIAL", home["code"]),
                         (home["serial"], "X" * 16)):
        refused = await prove_home(client, serial, code)
        assert refused.status_code == 422 and PROOF_FAILED in refused.text
        assert home["code"] not in refused.text and other["code"] not in refused.text
    assert len(await identity.events.read(stream_for(owner_id))) == before

    proved = await prove_home(client, home["serial"].lower(), home["code"])
    assert proved.status_code == 303
    events = [e.payload() for e in await identity.events.read(stream_for(owner_id))]
    assert isinstance(events[-3], ProductRegistered) and isinstance(events[-2], OwnerHomeAttached)
    attached = events[-2]
    assert (attached.serial_number, attached.agency_id, attached.customer_number) == (
        home["serial"], site.agency_ids["a"], home["number"])
    profile = await client.get("/mypage/profile")
    assert "連携済み" in profile.text
    menu = await client.get("/mypage/")
    assert f"/mypage/energy/{attached.product_id}" in menu.text


async def test_wrong_pairs_are_throttled_per_owner(site):
    home = await customer_with_device(site)
    client = await owner_client(site)
    for _ in range(5):
        assert PROOF_FAILED in (await prove_home(client, home["serial"], "WRONGWRONGWRONG1")).text
    locked = await prove_home(client, home["serial"], home["code"])
    assert locked.status_code == 422 and PROOF_LOCKED in locked.text
    assert "未連携" not in (await client.get("/mypage/profile")).text  # nothing registered at all


async def test_reissued_code_deleted_customer_and_detach_end_the_home(site):
    a, b, c = [await customer_with_device(site) for _ in range(3)]
    client = await owner_client(site)
    for home in (a, b, c):
        assert (await prove_home(client, home["serial"], home["code"])).status_code == 303
    menu = await client.get("/mypage/")
    assert all(h["serial"] in menu.text for h in (a, b, c))
    owner_id = await owner_of(site, client)
    owner = await site.host.service("identity").owners.load(owner_id)
    products = {h.serial_number: h.product_id for h in owner.homes.values()}

    reissued = await site.client.post(f"/api/v1/customers/{a['number']}/auth-code", headers=site.tokens["a"])
    assert reissued.status_code == 200, reissued.text
    deleted = await site.client.delete(f"/api/v1/customers/{b['number']}", headers=site.tokens["a"])
    assert deleted.status_code == 204, deleted.text
    profile = await client.get("/mypage/profile")
    detach = await client.post(f"/mypage/products/{products[c['serial']]}/detach",
                               data={"csrf_token": csrf_of(profile.text)})
    assert detach.status_code == 303
    events = [e.payload() for e in await site.host.service("identity").events.read(stream_for(owner_id))]
    assert isinstance(events[-1], OwnerHomeDetached) and events[-1].reason == "owner"

    metering = site.host.service("metering")

    async def gone():
        devices = await metering.devices.by_serials([a["serial"], b["serial"]])
        return (b["serial"] not in devices and devices[a["serial"]]["auth_code_hash"] != owner.homes[
            products[a["serial"]]].auth_code_hash) or None

    assert await eventually(gone, timeout=60)
    menu = await client.get("/mypage/")
    assert not any(f"/mypage/energy/{products[h['serial']]}" in menu.text for h in (a, b, c))
    # a new proof with the re-issued code brings the home back
    new_code = reissued.json()["auth_code"]
    form = await client.get(f"/mypage/products/{products[a['serial']]}/edit")
    data = {"csrf_token": csrf_of(form.text), "system_model": "ESS-U4X1", "system_serial": a["serial"],
            "remote_serial": "", "install_postal_code": "1030026", "watch_service": "yes",
            "weather_alert_control": "no", "early_warning_control": "no", "ai_control": "no", "auth_code": new_code}
    again = await client.post(f"/mypage/products/{products[a['serial']]}/edit", data=data)
    assert again.status_code == 303
    assert f"/mypage/energy/{products[a['serial']]}" in (await client.get("/mypage/")).text


async def test_another_owner_cannot_detach_a_home(site):
    home = await customer_with_device(site)
    mine, theirs = await owner_client(site), await owner_client(site)
    assert (await prove_home(mine, home["serial"], home["code"])).status_code == 303
    owner = await site.host.service("identity").owners.load(await owner_of(site, mine))
    [product_id] = owner.homes
    profile = await theirs.get("/mypage/profile")
    refused = await theirs.post(f"/mypage/products/{product_id}/detach", data={"csrf_token": csrf_of(profile.text)})
    assert refused.status_code == 404
    assert f"/mypage/energy/{product_id}" in (await mine.get("/mypage/")).text
