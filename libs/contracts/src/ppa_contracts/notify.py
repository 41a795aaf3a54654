"""Events of the notify service: e-mail requests and their delivery results.

How another service sends an e-mail: it records an `EmailRequested` with its own event store, in the
same `append` as the event that causes the mail, so the mail is requested exactly when that event is
stored (its outbox relay then publishes the request on `ppa.notify.requests.v1`):

    await self.record(f"agency:{agency_id}", version,
                      AgencySignupRequested(email=email, expires_at=expires_at),
                      EmailRequested(message_id=f"agency-signup-{token_id}",
                                     template=EmailTemplate.AGENCY_SIGNUP_LINK, recipient=email,
                                     context={"signup_url": url, "expires_at": expires_at.isoformat()}),
                      subject=agency_id)

`message_id` makes the mail once-only: notify sends one mail per message id however often the
request is delivered, so derive it from the cause (an event or token id), never from the clock.
Notify reads only the payload, so the envelope's subject may stay the causing aggregate's id.
The context may hold one-time links: only notify reads this topic (and its `.dlq`), and
`EmailSent`/`EmailFailed` never carry it. `TEMPLATE_CONTEXT` lists the keys each template needs; a
missing key fails the request loudly (retried, then dead-lettered) and never sends half a mail.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ppa_contracts.base import Payload
from ppa_contracts.topics import NOTIFY_EMAIL, NOTIFY_REQUESTS


class EmailTemplate(StrEnum):
    """The e-mails notify knows how to write (one template file each)."""

    AGENCY_SIGNUP_LINK = "agency_signup_link"
    AGENCY_REGISTERED = "agency_registered"
    AGENCY_SIGNUP_ALREADY_REGISTERED = "agency_signup_already_registered"
    AGENCY_PASSWORD_CHANGED = "agency_password_changed"
    AGENCY_LOGIN_FAILURES = "agency_login_failures"
    LINK_REQUESTED = "link_requested"
    LINK_APPROVED = "link_approved"
    LINK_REJECTED = "link_rejected"
    OWNER_PASSWORD_RESET = "owner_password_reset"
    OWNER_REGISTERED = "owner_registered"
    OWNER_REGISTRATION_LINK = "owner_registration_link"
    OWNER_REGISTRATION_ALREADY_REGISTERED = "owner_registration_already_registered"
    OWNER_EMAIL_CHANGE = "owner_email_change"
    OWNER_EMAIL_CHANGED = "owner_email_changed"
    INVOICE_ISSUED = "invoice_issued"
    INVOICE_VOIDED = "invoice_voided"
    OWNER_HOME_ATTACHED = "owner_home_attached"


# The context keys each template needs; notify adds `recipient` itself (the greeting uses it).
TEMPLATE_CONTEXT: dict[str, tuple[str, ...]] = {
    EmailTemplate.AGENCY_SIGNUP_LINK: ("signup_url", "expires_at"),
    EmailTemplate.AGENCY_REGISTERED: ("agency_id",),
    # a sign-up asked for an address that is an agency already: no link, a pointer to the login page
    EmailTemplate.AGENCY_SIGNUP_ALREADY_REGISTERED: ("agency_id",),
    # the agency's login password changed: its own change, or the operator's reset (`by_operator`)
    EmailTemplate.AGENCY_PASSWORD_CHANGED: ("agency_id", "changed_at", "by_operator"),
    # logins to the agency failed many times within minutes, from one or many addresses (a guessing attack?)
    EmailTemplate.AGENCY_LOGIN_FAILURES: ("agency_id", "failures", "window_minutes"),
    # products: a list of {"system_model": ..., "system_serial": ...}
    EmailTemplate.LINK_REQUESTED: ("link_id", "owner_name", "owner_name_kana", "prefecture", "city", "street",
                                   "owner_email", "products"),
    EmailTemplate.LINK_APPROVED: ("agency_email",),
    EmailTemplate.LINK_REJECTED: ("agency_email",),
    EmailTemplate.OWNER_PASSWORD_RESET: ("reset_url", "expires_at"),
    EmailTemplate.OWNER_REGISTERED: ("owner_name", "login_id"),
    EmailTemplate.OWNER_REGISTRATION_LINK: ("registration_url", "expires_at"),
    # a registration asked for an address that is an owner's already: no link, pointers to login and reset
    EmailTemplate.OWNER_REGISTRATION_ALREADY_REGISTERED: ("login_id",),
    # to the new address: the link that makes it the login ID
    EmailTemplate.OWNER_EMAIL_CHANGE: ("confirm_url", "expires_at"),
    # to the old address, once the new one is confirmed
    EmailTemplate.OWNER_EMAIL_CHANGED: ("owner_name", "new_email"),
    # revision 1 is the first issue; a higher one says the invoice was corrected (the PDF is attached)
    EmailTemplate.INVOICE_ISSUED: ("customer_name", "invoice_number", "month", "total", "revision",
                                   "issuer_name"),
    # to the address the invoice was mailed to: its last revision was voided (the 取消 PDF is attached)
    EmailTemplate.INVOICE_VOIDED: ("customer_name", "invoice_number", "month", "total", "revision",
                                   "issuer_name"),
    # an agency with an approved link attached one of its PPA customers (a home) to the owner's My Page
    EmailTemplate.OWNER_HOME_ATTACHED: ("owner_name", "agency_name", "agency_email", "serial_number"),
}


class EmailAttachment(BaseModel):
    """A file sent with the mail (e.g. an invoice PDF), base64 in the JSON."""

    model_config = ConfigDict(frozen=True)

    filename: str = Field(min_length=1, max_length=200)
    content_type: str = Field("application/octet-stream", description="MIME type, e.g. application/pdf.")
    content_base64: str = Field(description="The file's bytes, base64 (RFC 4648).")

    @classmethod
    def of(cls, filename: str, content_type: str, data: bytes) -> EmailAttachment:
        """An attachment holding `data`."""
        return cls(filename=filename, content_type=content_type, content_base64=base64.b64encode(data).decode())

    def data(self) -> bytes:
        """The file's bytes."""
        return base64.b64decode(self.content_base64, validate=True)


class EmailRequest(Payload):
    event_service: ClassVar[str] = "notify"
    event_topic: ClassVar[str] = NOTIFY_REQUESTS


class EmailRequested(EmailRequest):
    """A service asks notify to send one e-mail; the context may hold one-time links (notify reads it alone)."""

    event_name: ClassVar[str] = "email_requested"
    message_id: str = Field(min_length=1, max_length=200, description="Once-only key, also the Kafka key.")
    template: str = Field(description="One of EmailTemplate.")
    recipient: str = Field(description="The address the mail goes to.")
    context: dict[str, Any] = Field(default_factory=dict, description="Template values; may hold secrets.")
    attachments: list[EmailAttachment] = Field(default_factory=list, description="Files sent with the mail.")


class EmailResult(Payload):
    event_service: ClassVar[str] = "notify"
    event_topic: ClassVar[str] = NOTIFY_EMAIL


class EmailSent(EmailResult):
    """The mail was handed to the SMTP server (or written to the Maildir)."""

    event_name: ClassVar[str] = "email_sent"
    message_id: str
    template: str
    recipient: str
    attempts: int


class EmailFailed(EmailResult):
    """Every attempt to send the mail failed; the request went to the dead-letter topic."""

    event_name: ClassVar[str] = "email_failed"
    message_id: str
    template: str
    recipient: str
    attempts: int
    error: str
