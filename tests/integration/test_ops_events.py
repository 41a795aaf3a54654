"""/ops/events: live tail over server-sent events with filters, event detail, following a correlation id
across services (sign-up request → e-mail sent), and one-time links never shown. Both runtimes."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

from prometheus_client import REGISTRY

from ops_helpers import csrf_of, sign_in_operator, wait_until
from ppa_contracts import Envelope, dlq
from ppa_contracts.identity import AgencyProfile
from ppa_contracts.notify import EmailRequested
from ppa_contracts.ops import DeadLetter
from ppa_contracts.topics import IDENTITY_AGENCY, NOTIFY_EMAIL, NOTIFY_REQUESTS
from ppa_runtime.context import correlated
from support import portal


def sse_events(body: str) -> list[dict]:
    """The `ppa-event` messages of a server-sent events body."""
    out = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        lines = block.split("\n")
        if "event: ppa-event" in lines:
            out.append(json.loads("".join(line[len("data: "):] for line in lines if line.startswith("data: "))))
    return out


async def _published(p, n: int) -> bool:
    return sum((await p.host.runtime.bus.ends([IDENTITY_AGENCY])).values()) >= n


async def test_stream_tails_new_events_matching_the_filter(runtime):
    async with portal(runtime, ["identity"], agencies=()) as p:
        await sign_in_operator(p.client, p.host.service("identity"))
        identity = p.host.service("identity")
        # the stream starts at the end: an earlier event is not sent, though it matches the filter
        with correlated("corr-wanted"):
            await identity.create_agency("before@example.jp", "password123", AgencyProfile(company="前"))
        await wait_until(lambda: _published(p, 1), what="the earlier event on the bus")
        stream = asyncio.create_task(p.client.get(
            "/ops/events/stream", params={"topic": IDENTITY_AGENCY, "correlation": "corr-wanted", "limit": "1"}))
        await asyncio.sleep(1.0)  # the stream's reader is at the end of the topic
        with correlated("corr-other"):
            await identity.create_agency("other@example.jp", "password123", AgencyProfile(company="他"))
        with correlated("corr-wanted"):
            wanted = await identity.create_agency("wanted@example.jp", "password123", AgencyProfile(company="的"))
        response = await asyncio.wait_for(stream, 60)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        (event,) = sse_events(response.text)
        assert event["type"] == "jp.ppa.identity.agency_registered.v1" and event["subject"] == wanted
        assert event["correlationid"] == "corr-wanted" and event["envelope"]["data"]["email"] == "wanted@example.jp"
        assert "password_hash" not in response.text  # private events are never published

        detail = await p.client.get(f"/ops/events/{event['topic']}/{event['partition']}/{event['offset']}")
        assert detail.status_code == 200 and "wanted@example.jp" in detail.text and wanted in detail.text
        missing = await p.client.get(f"/ops/events/{IDENTITY_AGENCY}/0/99999")
        assert missing.status_code == 404 and "見つかりません" in missing.text

        # `since` starts the stream at a moment (0: the beginning); a subject filter keeps one aggregate's events
        since = await p.client.get("/ops/events/stream", params={"subject": wanted, "since": "0", "limit": "1"})
        assert [e["subject"] for e in sse_events(since.text)] == [wanted]
        # the history part of the page honours the same filters
        page = await p.client.get("/ops/events", params={"correlation": "corr-other", "window": "24h"})
        assert "other@example.jp" in page.text and "wanted@example.jp" not in page.text


async def test_follow_a_sign_up_request_to_the_mail_sent_without_showing_the_link(runtime):
    async with portal(runtime, ["identity", "notify"], agencies=()) as p:
        await sign_in_operator(p.client, p.host.service("identity"))
        request_id = f"flow-{uuid.uuid4().hex[:12]}"
        sent_before = REGISTRY.get_sample_value("ppa_emails_total", {"template": "agency_signup_link",
                                                                    "outcome": "sent"}) or 0
        form = await p.client.get("/agency/signup")
        sent = await p.client.post("/agency/signup", data={"email": "newcomer@example.jp",
                                                           "csrf_token": csrf_of(form.text)},
                                   headers={"X-Request-ID": request_id})
        assert sent.status_code in (200, 303), sent.text

        async def followed() -> bool:
            page = await p.client.get("/ops/events", params={"correlation": request_id, "window": "24h"})
            return "jp.ppa.notify.email_sent.v1" in page.text

        await wait_until(followed, what="the mail sent event under the request's correlation id")
        page = (await p.client.get("/ops/events", params={"correlation": request_id, "window": "24h"})).text
        types = re.findall(r'<span class="type">([^<]+)</span>', page)
        assert {"jp.ppa.identity.agency_signup_requested.v1", "jp.ppa.notify.email_requested.v1",
                "jp.ppa.notify.email_sent.v1"} <= set(types)
        topics = set(re.findall(r'<span class="topic">([^<]+)</span>', page))
        assert {IDENTITY_AGENCY, NOTIFY_REQUESTS, NOTIFY_EMAIL} <= topics
        # the mail request is shown with its context hidden: no sign-up link anywhere on the page
        assert "/agency/signup/" not in page and "［非表示］" in page
        requested = await p.client.get("/ops/events/stream", params={"topic": NOTIFY_REQUESTS, "since": "0",
                                                                    "correlation": request_id, "limit": "1"})
        (event,) = sse_events(requested.text)
        assert set(event["envelope"]["data"]["context"].values()) == {"［非表示］"}
        assert "/agency/signup/" not in requested.text
        assert REGISTRY.get_sample_value("ppa_emails_total", {"template": "agency_signup_link",
                                                              "outcome": "sent"}) == sent_before + 1
        assert 'ppa_emails_total{outcome="sent",template="agency_signup_link"}' in (await p.client.get("/metrics")).text


async def test_mail_links_are_hidden_in_detail_and_dead_letters_too(runtime):
    async with portal(runtime, ["identity"], agencies=()) as p:
        await sign_in_operator(p.client, p.host.service("identity"))
        secret = "https://portal.example/agency/signup/" + uuid.uuid4().hex
        request = EmailRequested(message_id="m-1", template="agency_signup_link", recipient="x@example.jp",
                                 context={"signup_url": secret, "expires_at": "2030-01-01T00:00:00+09:00"})
        env = Envelope.wrap(request, subject="m-1", correlation_id="corr-mail")
        await p.host.runtime.bus.publish(NOTIFY_REQUESTS, [env])
        ends = await p.host.runtime.bus.ends([NOTIFY_REQUESTS])
        partition, end = next((part, n) for (_, part), n in ends.items() if n)
        detail = await p.client.get(f"/ops/events/{NOTIFY_REQUESTS}/{partition}/{end - 1}")
        assert detail.status_code == 200 and "x@example.jp" in detail.text
        assert secret not in detail.text and "signup_url" in detail.text
        page = await p.client.get("/ops/events", params={"topic": NOTIFY_REQUESTS, "window": "1h"})
        assert "m-1" in page.text and secret not in page.text
        # the same request dead-lettered by notify: the letter's copy of the original is hidden as well
        letter = DeadLetter(original=env.model_dump(mode="json"), original_topic=NOTIFY_REQUESTS,
                            consumer_group="notify.email", error="SMTPServerDisconnected: gone", attempts=5)
        await p.host.runtime.bus.publish(dlq(NOTIFY_REQUESTS), [Envelope.wrap(letter, subject="m-1",
                                                                              correlation_id="corr-mail")])
        letters = await p.client.get("/ops/dead-letters")
        assert "SMTPServerDisconnected: gone" in letters.text and "signup_url" in letters.text
        assert secret not in letters.text
        stream = await p.client.get("/ops/events/stream", params={"since": "0", "correlation": "corr-mail",
                                                                 "limit": "2"})
        assert len(sse_events(stream.text)) == 2 and secret not in stream.text
