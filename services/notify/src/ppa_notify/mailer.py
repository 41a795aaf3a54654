"""Mailer port and its adapters: an SMTP server (aiosmtplib) or a Maildir when none is configured."""

from __future__ import annotations

import asyncio
import hashlib
import mailbox
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol

import aiosmtplib

_MSGID_LOCAL = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Hand one message over for delivery; raises when it was not accepted."""
        ...


def message_id_header(message_id: str, sender: str) -> str:
    """A Message-ID derived from the request's message id, so a resend carries the same one."""
    local = message_id if _MSGID_LOCAL.match(message_id) else hashlib.sha256(message_id.encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2] or "ppa.example"
    return f"<{local}@{domain}>"


def build_message(*, message_id: str, sender: str, sender_name: str, recipient: str, subject: str,
                  body: str, now: datetime | None = None,
                  attachments: Sequence[tuple[str, str, bytes]] = ()) -> EmailMessage:
    """An RFC 5322 message: UTF-8 text body (base64), encoded-word subject and sender name.

    `attachments` are (filename, MIME type, bytes); with any, the message becomes multipart/mixed.
    """
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = Address(display_name=sender_name, addr_spec=sender)
    msg["To"] = recipient
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = message_id_header(message_id, sender)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to the system's mail
    msg.set_content(body, charset="utf-8", cte="base64")
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=filename)
    return msg


class SmtpMailer:
    """Sends through an SMTP server; STARTTLS is used when the server offers it."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(message, hostname=self.host, port=self.port, timeout=self.timeout)


class MaildirMailer:
    """Writes each message as a file into `<root>/new/`, through `tmp/` and a rename (atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _add(self, raw: bytes) -> str:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        return mailbox.Maildir(self.root, create=True).add(raw)

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._add, message.as_bytes())
