"""The OpenAPI document says what the API does: problem+json on every refusal, the media types of files, the device
API's body and bearer scheme, the patterns of numbers and months, servers, and links for stateful clients."""

from __future__ import annotations

import re

import httpx
import pytest

from ppa.platform import build_host
from ppa_gateway.app import create_app
from ppa_runtime.runtime import Runtime
from support import make_settings

PROBLEM = "application/problem+json"


@pytest.fixture
async def app(tmp_path):
    runtime = await Runtime.open(make_settings("embedded", tmp_path, public_url="https://ppa.example.jp"))
    try:
        yield create_app(build_host(runtime))
    finally:
        await runtime.close()


@pytest.fixture
async def spec(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return (await client.get("/openapi.json")).json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_every_refusal_is_problem_json_with_its_schema(spec):
    assert {"Problem", "FieldError"} <= set(spec["components"]["schemas"])
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # never sent
    for name, operation in operations(spec):
        refusals = {status: r for status, r in operation["responses"].items() if status.startswith(("4", "5"))}
        assert "422" in refusals or "requestBody" not in operation, name
        for status, response in refusals.items():
            assert list(response["content"]) == [PROBLEM], (name, status)
            assert response["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
        if operation.get("security"):
            assert "401" in refusals, name
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= set(refusals), name


def test_statuses_each_operation_answers(spec):
    statuses = {name: set(op["responses"]) for name, op in operations(spec)}
    assert {"200", "401", "422", "429"} <= statuses["POST /api/v1/auth/token"]
    assert {"201", "409"} <= statuses["POST /api/v1/customers"]
    assert {"404", "409"} <= statuses["PATCH /api/v1/customers/{customer_number}"]
    assert {"204", "404", "409"} <= statuses["DELETE /api/v1/customers/{customer_number}"]
    assert {"202", "401", "413", "422", "503"} <= statuses["POST /api/v1/devices/{serial_number}/readings"]
    assert {"201", "404", "409"} <= statuses["POST /api/v1/invoices/{invoice_number}/issue"]


def test_files_have_their_media_types(spec):
    paths = spec["paths"]
    for path in ("/api/v1/customers.csv", "/api/v1/invoices.csv", "/api/v1/invoices/{invoice_number}.csv"):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["text/csv"], path
    assert list(paths["/api/v1/invoices/{invoice_number}.pdf"]["get"]["responses"]["200"]["content"]) == \
        ["application/pdf"]


def test_security_schemes_and_the_device_body(spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes["AgencyToken"]["type"] == "oauth2"
    assert schemes["AgencyToken"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    assert schemes["DeviceAuthCode"] == {**schemes["DeviceAuthCode"], "type": "http", "scheme": "bearer"}
    push = spec["paths"]["/api/v1/devices/{serial_number}/readings"]["post"]
    assert push["security"] == [{"DeviceAuthCode": []}]
    assert all(p["in"] != "header" for p in push.get("parameters", []))  # no plain Authorization parameter
    body = push["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["readings"] and body["properties"]["readings"]["maxItems"] == 10_000
    reading = body["properties"]["readings"]["items"]
    assert set(reading["required"]) == {"at", "channel", "kwh"}
    assert reading["properties"]["at"]["format"] == "date-time"
    for name, operation in operations(spec):
        if name.startswith(("GET /api/v1/customers", "POST /api/v1/customers", "GET /api/v1/invoices")):
            assert operation["security"] == [{"AgencyToken": []}], name


def parameter(spec, path, name, method="get"):
    return next(p for p in spec["paths"][path][method]["parameters"] if p["name"] == name)


def test_formats_of_numbers_months_and_serials(spec):
    number = parameter(spec, "/api/v1/customers/{customer_number}", "customer_number")["schema"]["pattern"]
    assert re.fullmatch(number, "1120240001") and not re.fullmatch(number, "2120240001")
    month = parameter(spec, "/api/v1/invoices", "month")
    assert month["required"] is True
    assert re.fullmatch(month["schema"]["pattern"], "2024-01") and not re.fullmatch(month["schema"]["pattern"],
                                                                                    "2024-13")
    assert parameter(spec, "/api/v1/invoices.csv", "month")["required"] is True
    serial = parameter(spec, "/api/v1/devices/{serial_number}/readings", "serial_number", "post")["schema"]
    assert re.fullmatch(serial["pattern"], "SN-0001") and not re.fullmatch(serial["pattern"], "SN 0001")
    invoice = parameter(spec, "/api/v1/invoices/{invoice_number}", "invoice_number")["schema"]["pattern"]
    assert re.fullmatch(invoice, "24011120240001")
    create = spec["components"]["schemas"]["CustomerCreate"]["properties"]
    assert create["customer_number"]["pattern"] == number and "pattern" in create["serial_number"]


def test_servers_and_links(spec):
    assert spec["servers"][0]["url"] == "https://ppa.example.jp"
    created = spec["paths"]["/api/v1/customers"]["post"]["responses"]["201"]["links"]
    ids = {op["operationId"] for _, op in operations(spec)}
    assert {link["operationId"] for link in created.values()} <= ids
    assert created["GetCustomer"]["parameters"] == {"customer_number": "$response.body#/customer_number"}
    invoice = spec["paths"]["/api/v1/invoices/{invoice_number}"]["get"]["responses"]["200"]["links"]
    assert {"InvoicePdf", "IssueInvoice"} <= set(invoice)


async def test_a_wrong_method_names_every_method_of_the_path(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.request("OPTIONS", "/api/v1/customers/1120240001")
    assert r.status_code == 405 and r.headers["content-type"] == PROBLEM
    assert {"GET", "PATCH", "DELETE"} <= set(r.headers["allow"].split(", "))
