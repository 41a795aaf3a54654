"""/ops/health: lag rises while a worker is stopped (shown stalled) and falls when it resumes; topic rates;
a rebuild from the page gives the read model built live. Both runtimes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from ops_helpers import sign_in_operator, wait_until
from ppa.platform import build_host
from ppa_contracts.identity import AgencyProfile
from ppa_contracts.ops import ProjectionRebuilt
from ppa_gateway.app import create_app
from ppa_linking.projections import AGENCY_DIRECTORY

GROUP = "linking.agency-directory"


def group_row(html: str, group: str) -> str:
    return re.search(rf'<tr class="[^"]*" data-group="{re.escape(group)}">.*?</tr>', html, re.S).group(0)


def lag_in(row: str) -> int:
    return int(re.search(r'<td class="num lag">(\d+)</td>', row).group(1))


@pytest.fixture
async def pages(runtime) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    """The gateway as deployed: every service's pages, no workers in this process."""
    runtime.settings.ops_stall_seconds = 0  # any lag without progress counts as stalled
    host = build_host(runtime, ["identity", "linking"], workers=False)
    app = create_app(host)
    await host.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            await sign_in_operator(client, host.service("identity"))
            yield client, host
    finally:
        await host.stop()


async def test_lag_rises_while_the_worker_is_stopped_and_falls_when_it_resumes(runtime, pages):
    client, _ = pages
    identity_worker = build_host(runtime, ["identity"])  # the identity relay publishes the agencies' events
    await identity_worker.start()
    linking_worker = build_host(runtime, ["linking"])
    await linking_worker.start()
    try:
        identity = identity_worker.service("identity")
        directory = linking_worker.service("linking").docs.collection(AGENCY_DIRECTORY)
        await identity.create_agency("first@example.jp", "password123", AgencyProfile(company="一社"))

        async def applied(n: int):
            async def check() -> bool:
                return await directory.count() == n
            return check

        await wait_until(await applied(1), what="the first agency in the directory")

        async def committed() -> bool:
            return lag_in(group_row((await client.get("/ops/health")).text, GROUP)) == 0

        await wait_until(committed, what="the group's commit")
        await linking_worker.stop()  # the linking worker goes down
        for i in range(3):
            await identity.create_agency(f"later{i}@example.jp", "password123", AgencyProfile(company=f"後{i}"))

        async def lag_of_three() -> bool:
            return lag_in(group_row((await client.get("/ops/health")).text, GROUP)) == 3

        await wait_until(lag_of_three, what="a lag of 3")
        exported = (await client.get("/metrics")).text
        assert re.search(rf'ppa_consumer_lag\{{group="{GROUP}",partition="\d+",topic="ppa.identity.agency.v1"\}} [1-3]\.0',
                         exported)
        row = group_row((await client.get("/ops/health")).text, GROUP)
        assert 'class="stalled"' in row and "停滞" in row
        # the other groups of linking read other topics: no lag, not stalled
        assert 'class="ok"' in group_row((await client.get("/ops/health")).text, "linking.owners")

        resumed = build_host(runtime, ["linking"])  # the worker comes back
        await resumed.start()
        try:
            await wait_until(committed, what="the lag back to 0")
            row = group_row((await client.get("/ops/health")).text, GROUP)
            assert 'class="ok"' in row and "最新" in row
            assert await directory.count() == 4
        finally:
            await resumed.stop()
        html = (await client.get("/ops/health")).text
        rate = re.search(r'data-topic="ppa\.identity\.agency\.v1">.*?</tr>', html, re.S).group(0)
        assert re.findall(r'<td class="num">(\d+)</td>', rate) [0] == "4"  # all four within the last hour
        assert rate.count("<rect") >= 1 and "分前: " in rate
    finally:
        await identity_worker.stop()


async def test_rebuild_from_the_page_gives_the_read_model_built_live(runtime, pages):
    client, host = pages
    worker = build_host(runtime, ["identity", "linking"])
    await worker.start()
    try:
        for i in range(5):
            await worker.service("identity").create_agency(f"r{i}@example.jp", "password123",
                                                           AgencyProfile(company=f"再{i}"))
        directory = worker.service("linking").docs.collection(AGENCY_DIRECTORY)

        async def all_five() -> bool:
            return await directory.count() == 5

        await wait_until(all_five, what="the live directory")
        live = await directory.find({}, sort=[("email", 1)])
        html = (await client.get("/ops/health")).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        assert "/ops/projections/agency_directory/rebuild" in html
        started = await client.post("/ops/projections/agency_directory/rebuild", data={"csrf_token": csrf})
        assert started.status_code == 303
        refused = await client.post("/ops/projections/agency_directory/rebuild", data={})
        assert refused.status_code == 303 and "error=csrf" in refused.headers["location"]

        async def finished() -> bool:
            state = (await client.get("/ops/projections/agency_directory/rebuild")).json()
            assert state["phase"] != "failed", state
            return state["phase"] == "done"

        await wait_until(finished, what="the rebuild")
        state = (await client.get("/ops/projections/agency_directory/rebuild")).json()
        assert state["percent"] == 100 and state["read"] >= 5 and state["applied"] == 5
        assert await directory.find({}, sort=[("email", 1)]) == live
        page = (await client.get("/ops/health")).text
        assert "完了" in page
        audit = await client._transport.app.state.ops.audit.store.read("projection:agency_directory")
        assert [e.type for e in audit] == [ProjectionRebuilt.event_type()]
        assert audit[0].payload().events_applied == 5 and audit[0].payload().operator_email == "ops@example.jp"
        unknown = await client.post("/ops/projections/nope/rebuild", data={"csrf_token": csrf})
        assert "error=unknown" in unknown.headers["location"]
    finally:
        await worker.stop()


async def test_the_health_page_shows_each_dependency_and_no_outage_while_they_answer(runtime, pages):
    client, _ = pages
    html = (await client.get("/ops/health")).text
    section = re.search(r'<section id="dependencies">.*?</section>', html, re.S).group(0)
    if runtime.kind == "distributed":
        for name in ("kafka", "mongodb"):
            row = re.search(rf'<tr class="(\w+)" data-dependency="{name}">.*?</tr>', section, re.S)
            assert row.group(1) == "ok" and "正常" in row.group(0)
    else:
        assert "外部の依存先はありません" in section
    assert 'class="outage"' not in html
