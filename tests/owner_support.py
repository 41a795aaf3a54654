"""Shared steps of the owner energy tests: a PPA customer with a device, an owner logged in to My Page."""

from __future__ import annotations

import re
import uuid

import httpx

from support import eventually

OWNER_FORM = {"family_name": "日見", "given_name": "太郎", "family_name_kana": "ニチコン", "given_name_kana": "タロウ",
              "postal_code": "1030026", "prefecture": "東京都", "city": "中央区", "street": "日本橋兜町",
              "phone": "0336667945", "info_opt_in": "no"}
PASSWORD = "Passw0rd2024"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


async def customer_with_device(p, agency: str = "a") -> dict:
    """A PPA customer of the agency with a fresh serial, once metering's registry knows its device."""
    serial = f"HEMS{uuid.uuid4().hex[:8].upper()}"
    number = f"11{uuid.uuid4().int % 10**8:08d}"
    created = await p.client.post("/api/v1/customers", headers=p.tokens[agency], json={
        "customer_number": number, "serial_number": serial, "name": "日見 太郎", "base_fee": "980",
        "sell_unit_price": "16.00", "usage_unit_price": "27.00", "contract_start": "2024-01-01"})
    assert created.status_code == 201, created.text
    code = created.json()["auth_code"]
    metering = p.host.service("metering")

    async def registered():
        return await metering.devices.authenticate(serial, code) or None

    assert await eventually(registered, timeout=60), "registry never saw the device"
    return {"serial": serial, "number": number, "code": code, "agency": agency}


async def owner_client(p, email: str | None = None) -> httpx.AsyncClient:
    """A new owner, logged in to My Page through the login form."""
    email = email or f"owner-{uuid.uuid4().hex[:8]}@example.jp"
    await p.host.service("identity").owners.register({**OWNER_FORM, "email": email}, PASSWORD, PASSWORD,
                                                     f"10.0.{uuid.uuid4().int % 250}.1")
    client = httpx.AsyncClient(transport=p.client._transport, base_url="http://t")
    form = await client.get("/mypage/login")
    done = await client.post("/mypage/login", data={"email": email, "password": PASSWORD,
                                                   "csrf_token": csrf_of(form.text)})
    assert done.status_code == 303, done.text
    return client


def product_form(csrf: str, serial: str, auth_code: str = "") -> dict:
    return {"csrf_token": csrf, "system_model": "ESS-U4X1", "system_serial": serial, "remote_serial": "",
            "install_postal_code": "1030026", "watch_service": "yes", "weather_alert_control": "no",
            "early_warning_control": "no", "ai_control": "no", "auth_code": auth_code}


async def prove_home(client: httpx.AsyncClient, serial: str, auth_code: str) -> httpx.Response:
    """Register a product (製品情報) with the device's serial and auth code."""
    form = await client.get("/mypage/products/new")
    return await client.post("/mypage/products/new", data=product_form(csrf_of(form.text), serial, auth_code))


async def owner_id_of(p, client: httpx.AsyncClient) -> str:
    return (await p.host.service("identity").sessions.get(client.cookies.get("ppa_session")))["principal"]


async def set_prices(p, owner_id: str, sell: str, segments: list[tuple[str, str, str, str]]) -> None:
    """電力料金情報 (sell price and buy segments as (day type, start, end, price)) through identity's command."""
    from decimal import Decimal

    from ppa_contracts.owner import BuyPriceSegment, DayType, ElectricityPrices

    owners = p.host.service("identity").owners
    owner = await owners.load(owner_id)
    prices = ElectricityPrices(sell_price=Decimal(sell), buy_segments=tuple(
        BuyPriceSegment(day_type=DayType(d), start=s, end=e, price=Decimal(x)) for d, s, e, x in segments))
    await owners.change_profile(owner_id, owner.profile.model_copy(update={"prices": prices}))


def registers(day: str, hhmm: str, channel: str, values: list[str]) -> list[dict]:
    """Registers of one channel every half hour from HH:MM (JST) of a day."""
    start = int(hhmm[:2]) * 2 + int(hhmm[3:]) // 30
    return [{"at": f"{day}T{(start + i) // 2:02d}:{(start + i) % 2 * 30:02d}:00+09:00", "channel": channel,
             "kwh": v} for i, v in enumerate(values)]
