"""Notify end to end on both runtimes: a request on the bus becomes one mail, in a real SMTP server or the Maildir."""

from __future__ import annotations

import asyncio
import email
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest
import structlog
from aiosmtpd.controller import Controller

from ppa_contracts import Envelope, dlq
from ppa_contracts.notify import EmailFailed, EmailRequested, EmailSent, EmailTemplate
from ppa_contracts.ops import DeadLetter
from ppa_contracts.topics import NOTIFY_EMAIL, NOTIFY_REQUESTS
from ppa_notify.service import EMAIL_GROUP, NotifyService
from ppa_runtime.host import Host
from ppa_runtime.settings import Settings
from support import make_settings

SECRET_TOKEN = "tok-" + uuid.uuid4().hex


class CapturingHandler:
    """An aiosmtpd handler that keeps every accepted message, or refuses every recipient."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.refusal: str | None = None
        self.rcpt_calls = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_calls += 1
        if self.refusal:
            return self.refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, handler: CapturingHandler, host: str, port: int) -> None:
        self.handler = handler
        self.host = host
        self.port = port


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free loopback port."""
    handler = CapturingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield SmtpServer(handler, "127.0.0.1", controller.port)
    finally:
        controller.stop()


@pytest.fixture
def settings(runtime_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The shared settings, pointed at the test's SMTP server when the test asks for one."""
    servers = request.getfixturevalue("servers") if runtime_kind == "distributed" else None
    extra = {}
    if "smtp" in request.fixturenames:
        server = request.getfixturevalue("smtp")
        extra = {"smtp_host": server.host, "smtp_port": server.port}
    return make_settings(runtime_kind, tmp_path, servers, **extra)


def signup_request(message_id: str | None = None, **context) -> EmailRequested:
    return EmailRequested(
        message_id=message_id or f"signup-{uuid.uuid4().hex}",
        template=EmailTemplate.AGENCY_SIGNUP_LINK,
        recipient="sales@agency.example.jp",
        context={"signup_url": f"https://ppa.example/agency/signup?token={SECRET_TOKEN}",
                 "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(), **context},
    )


def wrap(req: EmailRequested) -> Envelope:
    return Envelope.wrap(req, subject=req.message_id, correlation_id=uuid.uuid4().hex)


async def eventually(check, timeout: float = 45) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


@asynccontextmanager
async def notify_running(runtime) -> AsyncIterator[tuple[NotifyService, Host]]:
    notify = NotifyService(runtime)
    host = Host(runtime, [notify])
    await host.start()
    try:
        yield notify, host
    finally:
        await host.stop()


async def read_topic(runtime, topic: str, want: int, timeout: float = 30) -> list[Envelope]:
    sub = await runtime.bus.subscribe(f"test-read-{uuid.uuid4().hex[:8]}", [topic])
    out: list[Envelope] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while len(out) < want and loop.time() < deadline:
            out += [r.envelope for r in await sub.fetch(timeout=0.5)]
    finally:
        await sub.close()
    return out


async def test_requested_email_goes_to_smtp_once_even_when_delivered_twice(runtime, smtp):
    req = signup_request()
    first = wrap(req)
    again = wrap(req)  # the same request in a second event: still one mail
    await runtime.bus.publish(NOTIFY_REQUESTS, [first, first, again])
    with structlog.testing.capture_logs() as logs:
        async with notify_running(runtime) as (notify, host):
            await eventually(lambda: _applied(host, 2))
            sent = await notify.deliveries(recipient="SALES@agency.example.jp")
            results = await read_topic(runtime, NOTIFY_EMAIL, 2, timeout=3)
    assert len(smtp.handler.messages) == 1
    mail = smtp.handler.messages[0]
    assert mail["Subject"] == "[家庭用PPAポータル]新規販売店仮登録のご案内"
    assert mail["To"] == "sales@agency.example.jp"
    assert mail["From"].addresses[0].addr_spec == "no-reply@ppa.example"
    assert mail["Message-ID"] == f"<{req.message_id}@ppa.example>"
    body = mail.get_content()
    assert f"https://ppa.example/agency/signup?token={SECRET_TOKEN}" in body
    assert "1時間以内にアクセスいただけなかった場合は、再度、最初からお手続きください。" in body
    assert [(d.message_id, d.status, d.attempts) for d in sent] == [(req.message_id, "sent", 1)]
    assert sent[0].sent_at is not None
    assert [e.type for e in results] == [EmailSent.event_type()]
    outcome = results[0].payload()
    assert (outcome.message_id, outcome.recipient, outcome.attempts) == (req.message_id, "sales@agency.example.jp", 1)
    assert results[0].subject == req.message_id and results[0].correlationid == first.correlationid
    assert "context" not in results[0].data and SECRET_TOKEN not in results[0].to_json().decode()
    assert logs and SECRET_TOKEN not in repr(logs)


async def _applied(host: Host, n: int) -> bool:
    return sum(c.applied for c in host.consumers) >= n


async def test_without_smtp_the_mail_lands_in_the_maildir_as_rfc5322(runtime):
    assert runtime.settings.smtp_host is None
    req = signup_request()
    await runtime.bus.publish(NOTIFY_REQUESTS, [wrap(req)])
    async with notify_running(runtime) as (notify, host):
        await eventually(lambda: _applied(host, 1))
        [delivery] = await notify.deliveries(status="sent")
    assert delivery.message_id == req.message_id
    maildir = runtime.settings.data_dir / "maildir"
    files = list((maildir / "new").iterdir())
    assert len(files) == 1 and list((maildir / "tmp").iterdir()) == []
    mail = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert mail["Subject"] == "[家庭用PPAポータル]新規販売店仮登録のご案内"
    assert mail["To"] == "sales@agency.example.jp"
    assert mail["Message-ID"] == f"<{req.message_id}@ppa.example>"
    assert f"token={SECRET_TOKEN}" in mail.get_content()


async def test_refused_mail_is_retried_then_dead_lettered_and_logged_as_failed(runtime, smtp):
    smtp.handler.refusal = "550 5.1.1 mailbox unavailable"
    req = signup_request()
    await runtime.bus.publish(NOTIFY_REQUESTS, [wrap(req)])
    with structlog.testing.capture_logs() as logs:
        async with notify_running(runtime) as (notify, host):
            await eventually(lambda: _applied(host, 1))
            [failed] = await notify.deliveries(status="failed")
            assert await notify.deliveries(status="sent") == []
            results = await read_topic(runtime, NOTIFY_EMAIL, 1)
    attempts = runtime.settings.consumer_max_attempts
    assert smtp.handler.messages == [] and smtp.handler.rcpt_calls == attempts
    assert (failed.message_id, failed.attempts) == (req.message_id, attempts)
    assert "550" in (failed.last_error or "") and failed.failed_at is not None
    [letter] = await read_topic(runtime, dlq(NOTIFY_REQUESTS), 1)
    dead = letter.payload()
    assert isinstance(dead, DeadLetter)
    assert (dead.consumer_group, dead.attempts) == (EMAIL_GROUP, attempts)
    assert Envelope.model_validate(dead.original).payload() == req
    assert [e.type for e in results] == [EmailFailed.event_type()]
    outcome = results[0].payload()
    assert outcome.attempts == attempts and "550" in outcome.error
    assert SECRET_TOKEN not in results[0].to_json().decode()
    assert SECRET_TOKEN not in repr(logs)


async def test_request_missing_a_template_key_sends_nothing_and_dead_letters(runtime):
    req = EmailRequested(message_id=f"reset-{uuid.uuid4().hex}", template=EmailTemplate.OWNER_PASSWORD_RESET,
                         recipient="taro@example.jp", context={"reset_url": f"https://ppa.example/r?t={SECRET_TOKEN}"})
    await runtime.bus.publish(NOTIFY_REQUESTS, [wrap(req)])
    async with notify_running(runtime) as (notify, host):
        await eventually(lambda: _applied(host, 1))
        [failed] = await notify.deliveries(recipient="taro@example.jp")
    assert failed.status == "failed" and "expires_at" in (failed.last_error or "")
    assert not (runtime.settings.data_dir / "maildir" / "new").exists() or not any(
        (runtime.settings.data_dir / "maildir" / "new").iterdir())
    [letter] = await read_topic(runtime, dlq(NOTIFY_REQUESTS), 1)
    assert "expires_at" in letter.payload().error and SECRET_TOKEN not in letter.payload().error


async def test_a_request_sent_before_a_restart_is_not_sent_again(runtime, smtp):
    req = signup_request()
    await runtime.bus.publish(NOTIFY_REQUESTS, [wrap(req)])
    async with notify_running(runtime) as (_, host):
        await eventually(lambda: _applied(host, 1))
    await runtime.bus.publish(NOTIFY_REQUESTS, [wrap(req)])  # e.g. the requester's relay republished it
    async with notify_running(runtime) as (notify, host):
        await eventually(lambda: _applied(host, 1))
        [delivery] = await notify.deliveries()
        results = await read_topic(runtime, NOTIFY_EMAIL, 2, timeout=3)
    assert len(smtp.handler.messages) == 1
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert [e.type for e in results] == [EmailSent.event_type()]
