"""The operators' dashboard in chromium: events arrive live, a stopped worker shows as stalled and
catches up when it resumes, and a dead letter is replayed after the fix — all from the browser."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest
import uvicorn

from ops_helpers import OPERATOR_EMAIL, OPERATOR_PASSWORD, wait_until
from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_gateway.app import create_app
from ppa_identity.service import IdentityService
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.host import Host
from ppa_runtime.service import Service
from support import screenshot

pytestmark = pytest.mark.browser
GROUP = "testsvc.company-counter"
BROKEN = {"毒株式会社"}


class CompanyCounter(Service):
    """Counts agencies; fails on the companies in BROKEN until they are removed (the fix)."""

    name = "testsvc"
    has_outbox = False

    async def on_registered(self, event: AgencyRegistered, env: Envelope) -> None:
        if event.profile.company in BROKEN:
            raise ValueError(f"会社名を解釈できません: {event.profile.company}")
        await self.docs.collection("counts").update({"_id": event.agency_id}, {"$inc": {"applied": 1}}, upsert=True)

    def consumers(self) -> list[ConsumerSpec]:
        return [ConsumerSpec(group=GROUP, topics=[IDENTITY_AGENCY],
                             handlers={AgencyRegistered.event_type(): self.on_registered})]


@asynccontextmanager
async def serve(host: Host):
    app = create_app(host)
    await host.start()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        await host.stop()


async def test_operator_watches_events_lag_and_replays_a_dead_letter(runtime, browser_page, runtime_kind):
    page = browser_page
    runtime.settings.ops_stall_seconds = 0
    BROKEN.add("毒株式会社")
    identity_worker = Host(runtime, [IdentityService(runtime)])
    counter_worker = Host(runtime, [CompanyCounter(runtime)])
    await identity_worker.start()
    await counter_worker.start()
    counts = runtime.docstore("testsvc").collection("counts")
    identity = identity_worker.service("identity")
    try:
        async with serve(Host(runtime, [IdentityService(runtime), CompanyCounter(runtime)], workers=False)) as url:
            await identity.operators.create(OPERATOR_EMAIL, OPERATOR_PASSWORD)
            await page.goto(f"{url}/ops/events")
            assert page.url.endswith("/ops/login")
            await page.fill("#email", OPERATOR_EMAIL)
            await page.fill("#password", OPERATOR_PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{url}/ops/events")
            await page.wait_for_selector("#live-dot.on")

            # events arrive live while the operator watches
            for i in range(3):
                await identity.create_agency(f"live{i}@example.jp", "password123", AgencyProfile(company=f"生{i}電力"))
            await page.locator("details.event.fresh").nth(2).wait_for()  # the CSP forbids wait_for_function's eval
            await page.click("details.event.fresh summary")
            body = await page.inner_text("details.event.fresh[open] pre")
            assert "jp.ppa.identity.agency_registered.v1" in body and "@example.jp" in body
            await screenshot(page, f"ops_events_{runtime_kind}")

            # the counter's worker stops: its lag rises and it is shown stalled, in red
            async def counted(n: int):
                async def check() -> bool:
                    return await counts.count() == n
                return check

            await wait_until(await counted(3), what="the live worker's counts")
            await counter_worker.stop()
            await identity.create_agency("late@example.jp", "password123", AgencyProfile(company="遅延電力"))
            await identity.create_agency("poison@example.jp", "password123", AgencyProfile(company="毒株式会社"))
            row = f"tr[data-group='{GROUP}']"
            for _ in range(100):
                await page.goto(f"{url}/ops/health")
                if (await page.inner_text(f"{row} td.lag")).strip() == "2":
                    break
                await asyncio.sleep(0.3)
            assert "停滞" in await page.inner_text(f"{row} td.state")
            assert await page.get_attribute(row, "class") == "stalled"
            await screenshot(page, f"ops_health_{runtime_kind}")

            # it resumes: the late event is applied, the poison one is dead-lettered
            counter_worker = Host(runtime, [CompanyCounter(runtime)])
            await counter_worker.start()
            for _ in range(100):
                await page.goto(f"{url}/ops/dead-letters")
                if await page.locator("tr.letter.pending").count() == 1:
                    break
                await asyncio.sleep(0.3)
            assert "会社名を解釈できません: 毒株式会社" in await page.inner_text("tr.letter.pending")
            await page.goto(f"{url}/ops/health")
            assert (await page.inner_text(f"{row} td.lag")).strip() == "0"
            await page.goto(f"{url}/ops/dead-letters")
            await screenshot(page, f"ops_dead_letters_{runtime_kind}")

            BROKEN.discard("毒株式会社")  # the fix
            await page.click("tr.letter.pending form[action='/ops/dead-letters/replay'] button")
            await page.wait_for_url(f"{url}/ops/dead-letters?done=replayed")
            assert "再送済み" in await page.inner_text("tr.letter")
            await wait_until(await counted(5), what="the replayed event applied")
            assert {d["applied"] for d in await counts.find({})} == {1}
    finally:
        await counter_worker.stop()
        await identity_worker.stop()
