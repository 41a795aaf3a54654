"""A poison event lands in the dead-letter topic, shows on /ops/dead-letters, and a replay after the fix
applies it exactly once; a discard needs a reason and is audited; the dead-letter topic loses nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from ops_helpers import publish_broken, sign_in_operator, wait_until
from ppa_contracts import Envelope, dlq
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.ops import DeadLetterDiscarded, DeadLetterReplayed
from ppa_contracts.topics import IDENTITY_AGENCY, OPS_AUDIT
from ppa_gateway.app import create_app
from ppa_identity.service import IdentityService
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.host import Host
from ppa_runtime.service import Service

GROUP = "testsvc.company-counter"


class CompanyCounter(Service):
    """A projection that counts applications per agency with `$inc` (not idempotent by itself: the inbox is)."""

    name = "testsvc"
    has_outbox = False
    broken_for = {"毒株式会社"}

    async def on_registered(self, event: AgencyRegistered, env: Envelope) -> None:
        if event.profile.company in self.broken_for:
            raise ValueError(f"会社名を解釈できません: {event.profile.company}")
        await self.docs.collection("counts").update({"_id": event.agency_id}, {"$inc": {"applied": 1}}, upsert=True)

    def consumers(self) -> list[ConsumerSpec]:
        return [ConsumerSpec(group=GROUP, topics=[IDENTITY_AGENCY],
                             handlers={AgencyRegistered.event_type(): self.on_registered})]


@dataclass
class Site:
    client: httpx.AsyncClient
    host: Host
    counter: CompanyCounter
    identity: IdentityService

    async def applied(self, agency_id: str) -> int:
        doc = await self.counter.docs.collection("counts").get(agency_id)
        return doc["applied"] if doc else 0

    async def page(self) -> str:
        r = await self.client.get("/ops/dead-letters")
        assert r.status_code == 200
        return r.text

    async def letters(self):
        return await self.client._transport.app.state.ops.dead_letters.list()


@pytest.fixture
async def site(runtime) -> AsyncIterator[Site]:
    counter = CompanyCounter(runtime)
    counter.broken_for = {"毒株式会社", "壊れた商事"}
    identity = IdentityService(runtime)
    host = Host(runtime, [identity, counter])
    app = create_app(host)
    await host.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            csrf = await sign_in_operator(client, identity)
            client.headers["x-test-csrf"] = csrf
            yield Site(client, host, counter, identity)
    finally:
        await host.stop()


def key_of(html: str) -> list[str]:
    """The letters' keys on the page (each pending letter has a replay and a discard form)."""
    return list(dict.fromkeys(re.findall(r'name="key" value="([^"]+)"', html)))


async def dlq_records(runtime) -> int:
    return sum((await runtime.bus.ends([dlq(IDENTITY_AGENCY)])).values())


async def test_poison_event_is_listed_and_a_replay_after_the_fix_applies_it_exactly_once(site, runtime):
    csrf = site.client.headers["x-test-csrf"]
    good = await site.identity.create_agency("ok@example.jp", "password123", AgencyProfile(company="良い電力"))
    poison = await site.identity.create_agency("poison@example.jp", "password123", AgencyProfile(company="毒株式会社"))

    async def one_letter() -> bool:
        return len(await site.letters()) == 1 and await site.applied(good) == 1

    await wait_until(one_letter, what="the poison event dead-lettered")
    html = await site.page()
    assert "会社名を解釈できません: 毒株式会社" in html and GROUP in html and "未処理" in html
    assert re.search(r'<td class="num">3</td>', html)  # the attempts (PPA_CONSUMER_MAX_ATTEMPTS=3 in tests)
    assert await site.applied(poison) == 0
    (key,) = key_of(html)

    site.counter.broken_for.discard("毒株式会社")  # the fix is deployed
    replayed = await site.client.post("/ops/dead-letters/replay", data={"key": key, "csrf_token": csrf})
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/ops/dead-letters")

    async def applied_once() -> bool:
        return await site.applied(poison) == 1

    await wait_until(applied_once, what="the replayed event applied")
    html = await site.page()
    assert "再送済み" in html and "ops@example.jp" in html and "未処理 <strong id=\"pending-count\">0</strong>" in html

    # a second replay is refused, and "replay all" has nothing left to send
    again = await site.client.post("/ops/dead-letters/replay", data={"key": key, "csrf_token": csrf})
    assert again.status_code == 409 and "再送または破棄済み" in again.text
    await site.client.post("/ops/dead-letters/replay-all", data={"topic": "", "csrf_token": csrf})
    # the original delivered once more by the bus (at-least-once) is still applied once
    (letter,) = await site.letters()
    original = (await site.client._transport.app.state.ops.dead_letters.get(letter.key))[1].envelope.payload().original
    await runtime.bus.publish(IDENTITY_AGENCY, [Envelope.model_validate(original)])
    marker = await runtime.bus.ends([IDENTITY_AGENCY])

    async def consumed_everything() -> bool:
        return sum(p.lag for p in await runtime.bus.lag(GROUP, [IDENTITY_AGENCY])) == 0 and \
            sum((await runtime.bus.ends([IDENTITY_AGENCY])).values()) == sum(marker.values())

    await wait_until(consumed_everything, what="the group caught up")
    assert await site.applied(poison) == 1 and await site.applied(good) == 1
    # nothing left the dead-letter topic; the replay is an audit event
    assert await dlq_records(runtime) == 1
    audit = await site.client._transport.app.state.ops.audit.store.read(f"dead-letter:{letter.letter_id}")
    assert [e.type for e in audit] == [DeadLetterReplayed.event_type()]
    assert audit[0].payload().consumer_group == GROUP and audit[0].payload().original_id == letter.original_id
    assert sum((await runtime.bus.ends([OPS_AUDIT])).values()) >= 1


async def test_discard_needs_a_reason_and_keeps_the_letter(site, runtime):
    csrf = site.client.headers["x-test-csrf"]
    broken = await site.identity.create_agency("broken@example.jp", "password123", AgencyProfile(company="壊れた商事"))

    async def listed() -> bool:
        return len(await site.letters()) == 1

    await wait_until(listed, what="the poison event dead-lettered")
    (key,) = key_of(await site.page())
    empty = await site.client.post("/ops/dead-letters/discard", data={"key": key, "reason": "  ", "csrf_token": csrf})
    assert empty.status_code == 400 and "破棄する理由を入力してください。" in empty.text
    no_csrf = await site.client.post("/ops/dead-letters/discard", data={"key": key, "reason": "重複登録"})
    assert no_csrf.status_code == 403
    missing = await site.client.post("/ops/dead-letters/replay",
                                     data={"key": "ppa.identity.agency.v1.dlq/0/999", "csrf_token": csrf})
    assert missing.status_code == 404 and "見つかりません" in missing.text
    (letter,) = await site.letters()
    assert letter.status == "pending"

    done = await site.client.post("/ops/dead-letters/discard",
                                  data={"key": key, "reason": "テスト用の重複登録のため", "csrf_token": csrf})
    assert done.status_code == 303
    html = await site.page()
    assert "破棄済み" in html and "テスト用の重複登録のため" in html
    refused = await site.client.post("/ops/dead-letters/replay", data={"key": key, "csrf_token": csrf})
    assert refused.status_code == 409
    (letter,) = await site.letters()
    audit = await site.client._transport.app.state.ops.audit.store.read(f"dead-letter:{letter.letter_id}")
    assert [e.payload().reason for e in audit] == ["テスト用の重複登録のため"]
    assert audit[0].type == DeadLetterDiscarded.event_type()
    assert await site.applied(broken) == 0 and await dlq_records(runtime) == 1


async def test_a_record_that_is_no_event_can_be_discarded_but_not_replayed(site, runtime):
    csrf = site.client.headers["x-test-csrf"]
    before = await runtime.bus.ends([IDENTITY_AGENCY])
    await publish_broken(runtime, IDENTITY_AGENCY, "x1", b"\xff not json", [("ce_type", b"jp.example.unknown.v1")])
    after = await runtime.bus.ends([IDENTITY_AGENCY])
    ((_, partition),) = [p for p, end in after.items() if end > before.get(p, 0)]
    offset = before.get((IDENTITY_AGENCY, partition), 0)
    shown = await site.client.get(f"/ops/events/{IDENTITY_AGENCY}/{partition}/{offset}")
    assert shown.status_code == 200 and "イベントの形式が正しくありません" in shown.text
    assert "not json" in shown.text and "jp.example.unknown.v1" in shown.text
    good = await site.identity.create_agency("after@example.jp", "password123", AgencyProfile(company="後続電力"))

    async def listed() -> bool:
        return len(await site.letters()) == 1 and await site.applied(good) == 1  # the group went on past it

    await wait_until(listed, what="the broken record dead-lettered")
    html = await site.page()
    assert "ValidationError" in html and GROUP in html
    events = await site.client.get("/ops/events", params={"topic": IDENTITY_AGENCY, "window": "all"})
    assert events.status_code == 200 and "後続電力" in events.text  # the event stream passes over the record
    (key,) = key_of(html)
    refused = await site.client.post("/ops/dead-letters/replay", data={"key": key, "csrf_token": csrf})
    assert refused.status_code == 409 and "形式が正しくないため再送できません" in refused.text
    await site.client.post("/ops/dead-letters/replay-all", data={"topic": "", "csrf_token": csrf})
    (letter,) = await site.letters()
    assert letter.status == "pending" and letter.original_type == "jp.example.unknown.v1"
    done = await site.client.post("/ops/dead-letters/discard",
                                  data={"key": key, "reason": "他システムの誤送信", "csrf_token": csrf})
    assert done.status_code == 303
    (letter,) = await site.letters()
    assert letter.status == "discarded" and await dlq_records(runtime) == 1
