"""Every response carries the security headers; the pages hold no inline script for the policy to forbid."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from support import portal

from ppa_runtime.headers import SecurityHeadersMiddleware

TEMPLATES = Path(__file__).resolve().parents[2] / "services/gateway/src/ppa_gateway/templates"
PATHS = ["/", "/agency/login", "/mypage/login", "/api/v1/customers", "/static/app.css", "/static/app.js",
         "/healthz", "/no-such-page", "/openapi.json"]


async def test_every_response_has_the_security_headers_and_no_hsts_on_http(runtime):
    async with portal(runtime, ["identity", "billing", "linking", "metering"], agencies=()) as p:
        for path in PATHS:
            r = await p.client.get(path)
            csp = r.headers["content-security-policy"]
            assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp, path
            assert r.headers["x-frame-options"] == "DENY", path
            assert r.headers["referrer-policy"] == "no-referrer", path
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert "strict-transport-security" not in r.headers, path  # the public URL is http here
        refused = await p.client.post("/api/v1/customers", content=b"x" * (2 * 1024 * 1024))
        assert refused.status_code == 413 and refused.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(("public_url", "hsts"), [("https://ppa.example.jp", True), ("http://127.0.0.1:8000", False)])
async def test_hsts_only_when_the_public_url_is_https(public_url, hsts):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = SecurityHeadersMiddleware(app, public_url=public_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://t") as client:
        r = await client.get("/")
    assert ("strict-transport-security" in r.headers) is hsts
    if hsts:
        assert r.headers["strict-transport-security"].startswith("max-age=31536000")


def test_no_template_holds_inline_script_or_event_handler_attributes():
    found = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text(encoding="utf-8")
        found += [f"{template.name}: {m.group(0)}" for m in re.finditer(
            r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|javascript:|\sstyle\s*=|<style", text)]
    assert not found
