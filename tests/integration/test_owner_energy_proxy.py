"""代理ログイン shows the agency exactly the owner's 電力データを見る, under the proxy banner; an agency without an
approved link never reaches it."""

from __future__ import annotations

import httpx
import pytest
from linking_support import Platform, csrf_of
from owner_support import prove_home, registers

from ppa.platform import build_host
from ppa_contracts.identity import AgencyProfile
from ppa_gateway.app import create_app
from support import eventually

CUSTOMER = {"customer_number": "1120249901", "serial_number": "PROXY-HOME-01", "name": "日見 太郎",
            "base_fee": "980", "sell_unit_price": "16.00", "usage_unit_price": "27.00", "contract_start": "2024-01-01"}


@pytest.fixture
async def p(runtime):
    host = build_host(runtime, ["identity", "linking", "notify", "billing", "metering"])
    app = create_app(host)
    await host.start()
    platform = Platform(host, app, {})
    try:
        for who in ("a", "b"):
            platform.agencies[who] = await host.service("identity").create_agency(
                f"{who}@example.jp", "password123", AgencyProfile(company=f"{who}電力"))
        yield platform
    finally:
        for client in platform.clients:
            await client.aclose()
        await host.stop()


async def test_proxy_login_sees_the_owners_energy_pages_and_nothing_without_approval(p):
    customer = await p.host.service("billing").portal.register_customer(p.agencies["a"], CUSTOMER)
    metering = p.host.service("metering")
    assert await eventually(lambda: metering.devices.authenticate("PROXY-HOME-01", customer["auth_code"]), 60)
    device = httpx.AsyncClient(transport=httpx.ASGITransport(app=p.app), base_url="http://t")
    pushed = await device.post("/api/v1/devices/PROXY-HOME-01/readings", headers={
        "Authorization": f"Bearer {customer['auth_code']}"}, json={"readings": registers(
            "2024-05-07", "12:00", "pv_generation", ["10.0", "12.5"])})
    assert pushed.status_code == 202
    await device.aclose()

    owner = await p.register_owner(products=0)
    browser = await p.owner_browser(owner.email)
    assert (await prove_home(browser, "PROXY-HOME-01", customer["auth_code"])).status_code == 303
    [product_id] = (await p.identity.owners.load(owner.owner_id)).homes
    url = f"/mypage/energy/{product_id}"

    async def shown():
        page = await browser.get(url, params={"view": "day", "at": "2024-05-07"})
        return page if "2.50" in page.text else None

    own_view = await eventually(shown, timeout=60)

    await p.set_agencies(owner.owner_id, "a@example.jp", "b@example.jp")
    link = await p.link_of(owner.owner_id, "a")
    agency = await p.agency("a")
    user = await agency.get(f"/agency_admin/{link.link_id}")
    assert (await agency.post(f"/agency_admin/{link.link_id}/approve",
                              data={"csrf_token": csrf_of(user.text)})).status_code == 303
    user = await agency.get(f"/agency_admin/{link.link_id}")
    assert (await agency.post(f"/agency_admin/{link.link_id}/proxy",
                              data={"csrf_token": csrf_of(user.text)})).status_code == 303
    proxied = await agency.get(url, params={"view": "day", "at": "2024-05-07"})
    assert proxied.status_code == 200 and f"ようこそ代理ログイン ({link.link_id}) 様" in proxied.text
    assert "2.50" in proxied.text and "PROXY-HOME-01" in proxied.text
    assert own_view.text.count("2.50") == proxied.text.count("2.50")

    # agency b's request is still pending: no proxy session, so no My Page and no energy page
    pending = await p.link_of(owner.owner_id, "b")
    other = await p.agency("b")
    page = await other.get(f"/agency_admin/{pending.link_id}")
    refused = await other.post(f"/agency_admin/{pending.link_id}/proxy", data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 403
    assert (await other.get(url)).status_code in (303, 404)
    assert "2.50" not in (await other.get(url, follow_redirects=True)).text


async def attach(agency, number: str, link_id: str):
    page = await agency.get(f"/agency/customers/{number}")
    return await agency.post(f"/agency/customers/{number}/owner-link",
                             data={"csrf_token": csrf_of(page.text), "link_id": link_id})


async def test_an_agency_with_an_approved_link_attaches_its_customer_and_the_owner_is_mailed_and_can_detach(
        p, runtime):
    from linking_support import mail_to

    billing = p.host.service("billing").portal
    customer = await billing.register_customer(p.agencies["a"], {**CUSTOMER, "customer_number": "1120249902",
                                                                 "serial_number": "AGENCY-HOME-02"})
    theirs = await billing.register_customer(p.agencies["b"], {**CUSTOMER, "customer_number": "1120249903",
                                                               "serial_number": "AGENCY-HOME-03"})
    metering = p.host.service("metering")
    assert await eventually(lambda: metering.devices.authenticate("AGENCY-HOME-02", customer["auth_code"]), 60)
    assert await eventually(lambda: metering.devices.authenticate("AGENCY-HOME-03", theirs["auth_code"]), 60)
    owner = await p.register_owner(products=0)
    await p.set_agencies(owner.owner_id, "a@example.jp", "b@example.jp")
    link = await p.link_of(owner.owner_id, "a")
    pending = await p.link_of(owner.owner_id, "b")
    a, b = await p.agency("a"), await p.agency("b")

    # not approved yet: refused, nothing recorded
    refused = await attach(a, "1120249902", link.link_id)
    assert refused.status_code == 422 and "連携を許可したユーザーのID" in refused.text
    user = await a.get(f"/agency_admin/{link.link_id}")
    await a.post(f"/agency_admin/{link.link_id}/approve", data={"csrf_token": csrf_of(user.text)})
    await p.link_of(owner.owner_id, "a", status="approved")
    # agency b: its link is pending, and agency a's link id is not b's
    assert (await attach(b, "1120249903", pending.link_id)).status_code == 422
    assert (await attach(b, "1120249903", link.link_id)).status_code == 422
    # another agency's customer number is a 404 for agency a
    assert (await attach(a, "1120249903", link.link_id)).status_code == 404
    assert not (await p.identity.owners.load(owner.owner_id)).homes

    done = await attach(a, "1120249902", link.link_id)
    assert done.status_code == 303 and done.headers["location"].endswith("?done=owner_linked")
    assert (await attach(a, "1120249902", link.link_id)).status_code == 409  # once
    [home] = (await p.identity.owners.load(owner.owner_id)).homes.values()
    assert home.attached_by_agency == p.agencies["a"] and home.serial_number == "AGENCY-HOME-02"
    mail = await mail_to(runtime.settings, owner.email, "電力データの連携のお知らせ")
    assert "AGENCY-HOME-02" in mail.get_content() and "a電力（a@example.jp）" in mail.get_content()

    browser = await p.owner_browser(owner.email)
    menu = await browser.get("/mypage/")
    assert f"/mypage/energy/{home.product_id}" in menu.text
    assert (await browser.get(f"/mypage/energy/{home.product_id}")).status_code == 200
    profile = await browser.get("/mypage/profile")
    assert "販売店・業者様から連携されたご自宅" in profile.text
    detached = await browser.post(f"/mypage/products/{home.product_id}/detach",
                                  data={"csrf_token": csrf_of(profile.text)})
    assert detached.status_code == 303
    assert (await browser.get(f"/mypage/energy/{home.product_id}")).status_code == 404
