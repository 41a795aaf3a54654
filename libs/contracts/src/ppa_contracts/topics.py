"""The topic catalog: every Kafka topic the platform uses, declared once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    """A topic, what its key is and who reads it."""

    name: str
    key: str
    description: str
    partitions: int = 3


def dlq(topic: str) -> str:
    """The dead-letter topic of a topic."""
    return f"{topic}.dlq"


IDENTITY_AGENCY = "ppa.identity.agency.v1"
IDENTITY_OWNER = "ppa.identity.owner.v1"
LINKING_LINK = "ppa.linking.link.v1"
LINKING_PROXY_SESSION = "ppa.linking.proxy_session.v1"
METERING_READINGS = "ppa.metering.readings.v1"
METERING_DAILY_USAGE = "ppa.metering.daily_usage.v1"
BILLING_CUSTOMER = "ppa.billing.customer.v1"
BILLING_INVOICE = "ppa.billing.invoice.v1"
BILLING_SETTINGS = "ppa.billing.settings.v1"
NOTIFY_REQUESTS = "ppa.notify.requests.v1"
NOTIFY_EMAIL = "ppa.notify.email.v1"
OPS_AUDIT = "ppa.ops.audit.v1"

TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        Topic(IDENTITY_AGENCY, "agency id", "Agency sign-up, registration and profile changes."),
        Topic(IDENTITY_OWNER, "owner id", "Owner accounts, profiles, products and agency access grants."),
        Topic(LINKING_LINK, "link id", "Link requests between owners and agencies and their decisions."),
        Topic(LINKING_PROXY_SESSION, "session id", "Proxy-login sessions: started, ended, refused."),
        Topic(METERING_READINGS, "device serial", "Accepted meter reading batches.", partitions=6),
        Topic(METERING_DAILY_USAGE, "customer number", "Daily usage computed and revised."),
        Topic(BILLING_CUSTOMER, "customer number", "PPA customers and their devices."),
        Topic(BILLING_INVOICE, "invoice number", "Invoices drafted, issued, revised and voided."),
        Topic(BILLING_SETTINGS, "agency id", "Each agency's billing settings: closing day, rounding, issuer."),
        Topic(NOTIFY_REQUESTS, "message id", "E-mail requests, may carry one-time links: notify reads it alone."),
        Topic(NOTIFY_EMAIL, "message id", "E-mail delivery results."),
        Topic(OPS_AUDIT, "dead letter id or projection", "Operators' actions: dead letters replayed or discarded, "
              "projections rebuilt.", partitions=1),
    )
}
