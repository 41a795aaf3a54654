"""Notify service: turns `EmailRequested` events into mails, once per message id, and logs each one."""

from __future__ import annotations

import structlog

from ppa_contracts import Envelope, Payload
from ppa_contracts.notify import EmailFailed, EmailRequested, EmailSent, EmailTemplate
from ppa_contracts.topics import NOTIFY_REQUESTS
from ppa_notify.deliveries import DELIVERIES, Delivery, DeliveryLog, Status
from ppa_notify.mailer import Mailer, MaildirMailer, SmtpMailer, build_message
from ppa_notify.rendering import Brand, render
from ppa_notify.settings import MailSettings
from ppa_runtime import metrics, tracing
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.eventstore import ConcurrencyConflict
from ppa_runtime.service import Service

log = structlog.get_logger(__name__)

EMAIL_GROUP = "notify.email"


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


class NotifyService(Service):
    """Renders and sends e-mails; SMTP when SMTP_HOST is set, else a Maildir under the data dir.

    A failed send raises, so the consumer retries with backoff and dead-letters after its last
    attempt; that last attempt also marks the delivery `failed` and records `EmailFailed`. Sending is
    at-least-once only across a crash between the send and the `sent` mark: the resend then carries
    the same Message-ID, so a mail client can tell it is the same mail.
    """

    name = "notify"

    def __init__(self, runtime, mailer: Mailer | None = None, mail: MailSettings | None = None) -> None:
        super().__init__(runtime)
        self.mail = mail or MailSettings()
        self.brand = Brand(site_name=self.mail.site_name, public_url=self.settings.public_url,
                           signature=self.mail.signature)
        self.mailer = mailer or self._configured_mailer()
        self.delivery_log = DeliveryLog(self.docs.collection(DELIVERIES))

    def _configured_mailer(self) -> Mailer:
        if self.settings.smtp_host:
            return SmtpMailer(self.settings.smtp_host, self.settings.smtp_port, self.mail.smtp_timeout)
        return MaildirMailer(self.settings.data_dir / "maildir")

    async def start(self) -> None:
        await self.delivery_log.setup()
        metrics.mailer_started([str(t) for t in EmailTemplate])

    def consumers(self) -> list[ConsumerSpec]:
        return [ConsumerSpec(
            group=EMAIL_GROUP,
            name=DELIVERIES,
            topics=[NOTIFY_REQUESTS],
            handlers={EmailRequested.event_type(): self.on_email_requested},
            setup=self.delivery_log.setup,
            batch_size=50,
        )]

    async def on_email_requested(self, req: EmailRequested, env: Envelope) -> None:
        """Send the requested mail unless its message id was sent already; raise when sending fails."""
        fields = {"message_id": req.message_id, "template": req.template, "recipient_domain": _domain(req.recipient)}
        doc = await self.delivery_log.begin(req, env)
        attempt = int(doc.get("attempts", 0))
        if doc.get("status") == "sent":
            log.info("email_already_sent", **fields)
            await self._record_outcome(req.message_id, EmailSent(
                message_id=req.message_id, template=req.template, recipient=req.recipient, attempts=attempt))
            return
        try:
            subject, body = render(req.template, {**req.context, "recipient": req.recipient}, self.brand)
            message = build_message(message_id=req.message_id, sender=self.mail.mail_from,
                                    sender_name=self.mail.site_name, recipient=req.recipient,
                                    subject=subject, body=body,
                                    attachments=[(a.filename, a.content_type, a.data()) for a in req.attachments])
            about = {"ppa.mail.template": str(req.template), "ppa.mail.recipient_domain": fields["recipient_domain"]}
            with tracing.span("send mail", tracing.SpanKind.CLIENT, **about):
                await self.mailer.send(message)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
            final = attempt >= self.settings.consumer_max_attempts
            await self.delivery_log.failed(req.message_id, error, final)
            log.warning("email_not_sent", attempt=attempt, final=final, error_type=type(exc).__name__, **fields)
            metrics.EMAILS.labels(str(req.template), "failed").inc()
            if final:
                await self._record_outcome(req.message_id, EmailFailed(
                    message_id=req.message_id, template=req.template, recipient=req.recipient,
                    attempts=attempt, error=error))
            raise
        await self.delivery_log.sent(req.message_id)
        metrics.EMAILS.labels(str(req.template), "sent").inc()
        await self._record_outcome(req.message_id, EmailSent(
            message_id=req.message_id, template=req.template, recipient=req.recipient, attempts=attempt))
        log.info("email_sent", attempt=attempt, **fields)

    async def _record_outcome(self, message_id: str, outcome: Payload) -> None:
        """Append the outcome to stream `email:<message_id>` unless it is already its last event."""
        stream = f"email:{message_id}"
        history = await self.events.read(stream)
        if history and history[-1].type == outcome.event_type():
            return
        try:
            await self.record(stream, len(history), outcome, subject=message_id)
        except ConcurrencyConflict:
            pass  # another worker recorded this mail's outcome at the same moment

    async def deliveries(self, recipient: str | None = None, status: Status | None = None,
                         limit: int = 50) -> list[Delivery]:
        """The delivery log, newest first (shown to operators on /ops/mail)."""
        return await self.delivery_log.query(recipient, status, limit)
