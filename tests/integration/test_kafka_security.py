"""Kafka reached as a managed service is: over TLS, with SCRAM credentials and a client certificate, and with
topics replicated as the cluster demands.

Runs against the broker `.ci/kafka.sh start-sasl-ssl` starts (the `secure_kafka` fixture); the whole bus suite
runs through it a second time in CI (.ci/run).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_runtime import logging as ppa_logging
from ppa_runtime.kafka_security import KafkaUnreachable, TopicsRefused
from ppa_runtime.runtime import Runtime
from support import drop_namespace, make_settings

WRONG = "not-the-password-0f3a9c"


def secure_settings(tmp_path: Path, servers: dict[str, str], env: dict[str, str], **changes):
    """Settings for the SASL_SSL broker, as an operator would write them (the password from its file)."""
    fields = {
        "kafka_security_protocol": env["KAFKA_SECURITY_PROTOCOL"],
        "kafka_sasl_mechanism": env["KAFKA_SASL_MECHANISM"],
        "kafka_sasl_username": env["KAFKA_SASL_USERNAME"],
        "kafka_sasl_password_file": env["KAFKA_SASL_PASSWORD_FILE"],
        "kafka_ssl_cafile": env["KAFKA_SSL_CAFILE"],
        "kafka_ssl_certfile": env["KAFKA_SSL_CERTFILE"],
        "kafka_ssl_keyfile": env["KAFKA_SSL_KEYFILE"],
        **changes,
    }
    return make_settings("distributed", tmp_path, {"kafka": env["KAFKA_BOOTSTRAP_SERVERS"], "mongo": servers["mongo"]},
                         **fields)


def agency_registered(i: int) -> Envelope:
    payload = AgencyRegistered(agency_id=f"a{i}", email=f"a{i}@example.jp", profile=AgencyProfile(company=f"社{i}"))
    return Envelope.wrap(payload, subject=f"a{i}", correlation_id=f"c{i}", aggregate_version=1)


async def round_trip(settings) -> list[str]:
    """Publish three events and replay the topic: the subjects read back."""
    rt = await Runtime.open(settings)
    try:
        await rt.bus.publish(IDENTITY_AGENCY, [agency_registered(i) for i in range(3)])
        seen: list[str] = []

        async def keep(record) -> None:
            seen.append(record.envelope.subject)

        await rt.bus.replay(IDENTITY_AGENCY, keep)
        return sorted(seen)
    finally:
        await rt.close()
        await drop_namespace(settings)


async def test_the_bus_publishes_and_reads_over_sasl_ssl_with_a_client_certificate(tmp_path, servers, secure_kafka):
    settings = secure_settings(tmp_path, servers, secure_kafka)
    assert await round_trip(settings) == ["a0", "a1", "a2"]


async def test_a_wrong_password_stops_the_start_with_the_brokers_reason(tmp_path, servers, secure_kafka):
    settings = secure_settings(tmp_path, servers, secure_kafka, kafka_sasl_password_file=None,
                               kafka_sasl_password=WRONG)
    with pytest.raises(KafkaUnreachable, match="SaslAuthenticationFailed") as refused:
        await Runtime.open(settings)
    assert "invalid credentials" in str(refused.value) and "SCRAM-SHA-512 as 'ppa'" in str(refused.value)
    assert WRONG not in str(refused.value)


async def test_a_broker_certificate_from_an_untrusted_ca_is_refused(tmp_path, servers, secure_kafka):
    # no KAFKA_SSL_CAFILE: the system's CAs, which never signed the CI broker's certificate
    settings = secure_settings(tmp_path, servers, secure_kafka, kafka_ssl_cafile=None)
    with pytest.raises(KafkaUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        await Runtime.open(settings)


async def test_a_broker_that_wants_a_client_certificate_refuses_a_client_without_one(tmp_path, servers, secure_kafka):
    settings = secure_settings(tmp_path, servers, secure_kafka, kafka_ssl_certfile=None, kafka_ssl_keyfile=None)
    with pytest.raises(KafkaUnreachable, match="Kafka refused or did not answer"):
        await Runtime.open(settings)


async def test_no_log_line_or_repr_holds_the_password(tmp_path, servers, secure_kafka, capsys):
    password = Path(secure_kafka["KAFKA_SASL_PASSWORD_FILE"]).read_text(encoding="utf-8").strip()
    ppa_logging.configure("DEBUG", json=True)
    logging.getLogger("aiokafka").setLevel(logging.DEBUG)  # the client's own connection and SASL chatter too
    try:
        good = secure_settings(tmp_path, servers, secure_kafka)
        assert await round_trip(good) == ["a0", "a1", "a2"]
        bad = secure_settings(tmp_path, servers, secure_kafka, kafka_sasl_password_file=None, kafka_sasl_password=WRONG)
        with pytest.raises(KafkaUnreachable) as refused:
            await Runtime.open(bad)
        logging.getLogger(__name__).error("start refused", exc_info=refused.value)
    finally:
        ppa_logging.configure("INFO", json=True)
    out, err = capsys.readouterr()
    assert "SaslAuthenticationFailed" in err  # the failure was logged, so the lines searched are the right ones
    for text in (out, err, repr(good), str(good), good.model_dump_json(), repr(bad), str(refused.value)):
        assert password not in text
        assert WRONG not in text


async def test_a_replication_factor_the_cluster_cannot_give_stops_the_start(tmp_path, servers):
    # the CI brokers are single nodes: 2 replicas cannot be had, as 1 cannot on a cluster whose policy wants 3
    settings = make_settings("distributed", tmp_path, servers, kafka_replication_factor=2)
    try:
        with pytest.raises(TopicsRefused, match="replication factor of 2 cannot be reached") as refused:
            await Runtime.open(settings)
        assert "KAFKA_REPLICATION_FACTOR" in str(refused.value)
    finally:
        await drop_namespace(settings)
