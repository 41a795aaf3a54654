"""MongoDB reached as a managed service is: over TLS, with the CA named in the URI (or given as a mounted file).

Runs against the FerretDB `.ci/ferretdb.sh start-tls` starts (the `secure_mongo` fixture).
"""

from __future__ import annotations

import pytest

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_runtime.runtime import MongoUnreachable, Runtime
from support import drop_namespace, make_settings


def agency_registered() -> Envelope:
    payload = AgencyRegistered(agency_id="a1", email="a1@example.jp", profile=AgencyProfile(company="社1"))
    return Envelope.wrap(payload, subject="a1", correlation_id="c1", aggregate_version=1)


async def test_the_stores_work_over_tls_with_the_uri_from_a_mounted_file(tmp_path, servers, secure_mongo):
    uri_file = tmp_path / "mongodb-uri"
    uri_file.write_text(secure_mongo + "\n", encoding="utf-8")
    settings = make_settings("distributed", tmp_path, {**servers, "mongo": None}, mongodb_uri_file=uri_file)
    assert settings.mongodb_uri_value == secure_mongo
    rt = await Runtime.open(settings)
    try:
        store = rt.eventstore("testsvc")
        assert await store.append("agency:a1", 0, [(IDENTITY_AGENCY, agency_registered())]) == 1
        assert [e.payload().email for e in await store.read("agency:a1")] == ["a1@example.jp"]
    finally:
        await rt.close()
        await drop_namespace(settings)


async def test_a_server_certificate_from_an_untrusted_ca_stops_the_start(tmp_path, servers, secure_mongo):
    # without tlsCAFile the system's CAs are asked, and none of them signed the CI server's certificate
    uri = secure_mongo.split("&tlsCAFile=")[0] + "&serverSelectionTimeoutMS=3000"
    settings = make_settings("distributed", tmp_path, {**servers, "mongo": uri})
    with pytest.raises(MongoUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        await Runtime.open(settings)
