"""Settings for managed Kafka and MongoDB: what is refused at start, secrets read from files and never shown."""

from __future__ import annotations

import os
import re
import ssl

import pytest
from pydantic import ValidationError

from ppa_runtime.kafka_security import client_options
from ppa_runtime.settings import Settings

PASSWORD = "pw-7c1e0d9b-secret"
URI = f"mongodb+srv://ppa:{PASSWORD}@cluster0.example.mongodb.net/?tls=true"


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("KAFKA_", "MONGODB_")) or name in ("PPA_SECRET_KEY", "PPA_ENV"):
            monkeypatch.delenv(name)


def sasl(**changes) -> dict:
    return {"kafka_bootstrap_servers": "b-1.example:9096", "mongodb_uri": URI, "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "ppa", "kafka_sasl_password": PASSWORD,
            "secret_key": "k" * 40, **changes}


@pytest.mark.parametrize(("changes", "message"), [
    ({"kafka_security_protocol": "TLS"}, "KAFKA_SECURITY_PROTOCOL must be one of PLAINTEXT, SSL"),
    ({"kafka_sasl_mechanism": None}, "KAFKA_SASL_MECHANISM must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ({"kafka_sasl_mechanism": "OAUTHBEARER"}, "OAUTHBEARER and GSSAPI need code"),
    ({"kafka_sasl_username": None}, "KAFKA_SASL_USERNAME must be set with KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
    ({"kafka_sasl_password": None}, "KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE must be set"),
    ({"kafka_security_protocol": "PLAINTEXT"}, "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD set, "
                                               "but KAFKA_SECURITY_PROTOCOL=PLAINTEXT sends no credentials"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_ssl_cafile": "/etc/hostname"},
     "KAFKA_SSL_CAFILE set, but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS"),
    ({"kafka_ssl_cafile": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE: no such file /nonexistent/ca.pem"),
    ({"kafka_ssl_keyfile": "/etc/hostname"}, "KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE"),
    ({"kafka_ssl_cafile": "/etc/hostname"}, "KAFKA_SSL_CAFILE/CERTFILE/KEYFILE cannot be loaded"),
    ({"mongodb_uri": f"https://ppa:{PASSWORD}@example/"}, "MONGODB_URI must begin with mongodb:// or mongodb+srv://"),
    ({"kafka_replication_factor": 0}, "kafka_replication_factor\n  Input should be greater than or equal to 1"),
])
def test_a_combination_that_cannot_connect_is_refused_at_start_without_echoing_secrets(changes, message):
    with pytest.raises(ValidationError, match=re.escape(message)) as refused:
        Settings(**sasl(**changes))
    assert PASSWORD not in str(refused.value)


def test_secrets_are_read_from_mounted_files_without_their_trailing_newline(tmp_path):
    (tmp_path / "kafka").write_text(PASSWORD + "\n", encoding="utf-8")
    (tmp_path / "mongo").write_text(URI + "\n", encoding="utf-8")
    settings = Settings(**sasl(kafka_sasl_password=None, kafka_sasl_password_file=tmp_path / "kafka",
                               mongodb_uri=None, mongodb_uri_file=tmp_path / "mongo"))
    assert settings.mongodb_uri_value == URI
    assert client_options(settings)["sasl_plain_password"] == PASSWORD
    assert settings.distributed


def test_a_secret_given_both_ways_or_from_a_missing_file_is_refused(tmp_path):
    (tmp_path / "kafka").write_text(PASSWORD, encoding="utf-8")
    with pytest.raises(ValidationError, match="set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both"):
        Settings(**sasl(kafka_sasl_password_file=tmp_path / "kafka"))
    with pytest.raises(ValidationError, match="set MONGODB_URI or MONGODB_URI_FILE, not both"):
        Settings(**sasl(mongodb_uri_file=tmp_path / "kafka"))
    with pytest.raises(ValidationError, match="MONGODB_URI_FILE: cannot read .*/absent"):
        Settings(**sasl(mongodb_uri=None, mongodb_uri_file=tmp_path / "absent"))


def test_settings_never_show_the_kafka_password_or_the_mongodb_uri():
    settings = Settings(**sasl())
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())):
        assert PASSWORD not in text


def test_every_client_verifies_the_broker_and_sends_the_credentials():
    options = client_options(Settings(**sasl()))
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512" and options["sasl_plain_username"] == "ppa"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_a_plain_broker_gets_neither_tls_nor_credentials():
    options = client_options(Settings(kafka_bootstrap_servers="k:9092", mongodb_uri="mongodb://m/",
                                      secret_key="k" * 40))
    assert options == {"security_protocol": "PLAINTEXT"}
