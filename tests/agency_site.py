"""A logged-in agency portal in process (identity + billing behind httpx), for the page tests of one feature."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from ppa.platform import build_host
from ppa_contracts.identity import AgencyProfile
from ppa_gateway.app import create_app


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


class Agency:
    """A logged-in browser-like client of one agency."""

    def __init__(self, client: httpx.AsyncClient, agency_id: str) -> None:
        self.client = client
        self.agency_id = agency_id

    async def token(self, path: str = "/agency/customers") -> str:
        return csrf_of((await self.client.get(path)).text)

    async def post(self, path: str, data: dict, token_from: str = "/agency/customers") -> httpx.Response:
        return await self.client.post(path, data={**data, "csrf_token": await self.token(token_from)})


@asynccontextmanager
async def agency_site(runtime, services: tuple[str, ...] = ("identity", "billing")) -> AsyncIterator[tuple]:
    """Agencies `a` and `b`, each logged in on its own client; and the host."""
    host = build_host(runtime, list(services))
    app = create_app(host)
    await host.start()
    agencies: dict[str, Agency] = {}
    try:
        for who in ("a", "b"):
            agency_id = await host.service("identity").create_agency(f"{who}@example.jp", "password123",
                                                                     AgencyProfile(company=f"{who}電力"))
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
            token = csrf_of((await client.get("/agency/login")).text)
            done = await client.post("/agency/login", data={"email": f"{who}@example.jp", "password": "password123",
                                                            "csrf_token": token})
            assert done.status_code == 303
            agencies[who] = Agency(client, agency_id)
        yield agencies, host
    finally:
        for agency in agencies.values():
            await agency.client.aclose()
        await host.stop()
