"""How every Kafka client reaches the brokers: address, TLS and SASL, from one place.

Managed Kafka (Amazon MSK, Confluent Cloud, Aiven) is reached over TLS with SASL credentials, sometimes with a
client certificate. The producer, the group consumers, the group-less readers and the admin client must all
connect the same way, so they all take `client_options(settings)`; a combination that cannot work is refused by
`check` when the settings are read, before any connection is tried. OAUTHBEARER (MSK IAM) and GSSAPI are not
offered: aiokafka needs a token provider or Kerberos set-up in code for them, which configuration cannot give.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ppa_runtime.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
TLS = frozenset({"SSL", "SASL_SSL"})
SASL = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


class KafkaSetupError(RuntimeError):
    """The Kafka cluster cannot be used as configured; the process stops at start saying why."""


class KafkaUnreachable(KafkaSetupError):
    """No bootstrap broker accepted a connection with the configured address, TLS and credentials."""


class TopicsRefused(KafkaSetupError):
    """The cluster would not create the catalog's topics (replication factor, policy, permissions)."""


# CreateTopics answers per topic; "exists already" is what a second process starting at once gets
_TOPIC_ALREADY_EXISTS = 36


def topics_refused(topic_errors: list[tuple], replication_factor: int) -> None:
    """Raise when a CreateTopics answer refused any topic: aiokafka returns those errors instead of raising,
    and a topic that was never created would only show up later as producer and consumer time-outs."""
    refused = [f"{error[0]}: {error[2] if len(error) > 2 and error[2] else f'error {error[1]}'}"
               for error in topic_errors if error[1] not in (0, _TOPIC_ALREADY_EXISTS)]
    if refused:
        raise TopicsRefused(f"Kafka refused to create topics with replication factor {replication_factor} "
                            f"(KAFKA_REPLICATION_FACTOR; managed clusters want 3, or create them beforehand): "
                            + "; ".join(refused[:3]) + (f"; and {len(refused) - 3} more" if len(refused) > 3 else ""))


def check(settings: Settings) -> None:
    """Refuse a security set-up that cannot connect (raised as ValueError, shown at start)."""
    protocol = settings.kafka_security_protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    sasl_given = [name for name, value in (("KAFKA_SASL_MECHANISM", settings.kafka_sasl_mechanism),
                                           ("KAFKA_SASL_USERNAME", settings.kafka_sasl_username),
                                           ("KAFKA_SASL_PASSWORD", settings.kafka_sasl_password)) if value]
    tls_given = [name for name, value in (("KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
                                          ("KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile),
                                          ("KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile)) if value]
    if protocol in SASL:
        mechanism = settings.kafka_sasl_mechanism
        if mechanism not in MECHANISMS:
            raise ValueError(f"KAFKA_SASL_MECHANISM must be one of {', '.join(MECHANISMS)} with "
                             f"KAFKA_SECURITY_PROTOCOL={protocol}, not {mechanism!r} (OAUTHBEARER and GSSAPI need "
                             "code, not configuration)")
        if not settings.kafka_sasl_username:
            raise ValueError(f"KAFKA_SASL_USERNAME must be set with KAFKA_SECURITY_PROTOCOL={protocol}")
        if not settings.kafka_sasl_password or not settings.kafka_sasl_password.get_secret_value():
            raise ValueError(f"KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE must be set with "
                             f"KAFKA_SECURITY_PROTOCOL={protocol}")
    elif sasl_given:
        raise ValueError(f"{', '.join(sasl_given)} set, but KAFKA_SECURITY_PROTOCOL={protocol} sends no credentials: "
                         "use SASL_SSL")
    if protocol in TLS:
        if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
            raise ValueError("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE (the client certificate it belongs to)")
        for name, path in (("KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
                           ("KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile),
                           ("KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile)):
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file {path}")
        _ssl_context(settings)  # an unreadable certificate or a key that does not match fails here, not later
    elif tls_given:
        raise ValueError(f"{', '.join(tls_given)} set, but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS: "
                         "use SSL or SASL_SSL")


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    from aiokafka.helpers import create_ssl_context  # here: the settings of the embedded runtime need no aiokafka

    # no CA file: the system's trusted CAs, which is what the managed services' certificates chain to
    try:
        return create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
            certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
            keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    except ssl.SSLError as e:
        raise ValueError(f"KAFKA_SSL_CAFILE/CERTFILE/KEYFILE cannot be loaded: {e.reason or e}") from None


def client_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments besides the addresses that every aiokafka client (producer, consumer, admin) gets."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in TLS:
        options["ssl_context"] = _ssl_context(settings)
    if protocol in SASL and settings.kafka_sasl_password is not None:
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username,
                       sasl_plain_password=settings.kafka_sasl_password.get_secret_value())
    return options


async def unreachable(bootstrap: str, options: dict[str, Any]) -> KafkaUnreachable:
    """Why no bootstrap broker answers: aiokafka only logs each broker's reason and raises 'Unable to bootstrap',
    so each one is tried once more here to put the reason (refused credentials, untrusted certificate, no route)
    into the error the process stops with."""
    from aiokafka.conn import collect_hosts, create_conn

    reasons = []
    for host, port, _ in collect_hosts(bootstrap):
        try:
            conn = await create_conn(host, port, request_timeout_ms=10_000, **options)
        except Exception as e:  # noqa: BLE001 - any failure: its reason is what is wanted here
            name = type(e).__name__
            reasons.append(f"{host}:{port}: {e}" if str(e).startswith(name) else f"{host}:{port}: {name}: {e}")
        else:
            conn.close()
            reasons.append(f"{host}:{port}: connects now (it did not a moment ago)")
    how = options["security_protocol"]
    if options.get("sasl_mechanism"):
        how += f" {options['sasl_mechanism']} as {options['sasl_plain_username']!r}"
    return KafkaUnreachable(f"Kafka refused or did not answer ({how}): " + "; ".join(reasons))
