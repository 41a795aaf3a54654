"""The agency login page in a real browser: wrong password answered in Japanese, then logged in and out."""

from __future__ import annotations

import pytest

from ppa_contracts.identity import AgencyProfile
from support import live_portal, screenshot

pytestmark = pytest.mark.browser


async def test_agency_logs_in_and_out_in_chromium(runtime, browser_page, runtime_kind):
    page = browser_page
    async with live_portal(runtime, ["identity"]) as (url, host):
        await host.service("identity").create_agency("shop@example.jp", "password123",
                                                     AgencyProfile(company="ブラウザ電力"))
        await page.goto(f"{url}/agency/login")
        await page.fill("#email", "shop@example.jp")
        await page.fill("#password", "wrong-password")
        await page.click("button[type=submit]")
        await page.wait_for_selector("p.error")
        assert "正しくありません" in await page.inner_text("p.error")
        await screenshot(page, f"agency_login_failed_{runtime_kind}")

        await page.fill("#password", "password123")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{url}/agency/")
        assert "ブラウザ電力" in await page.content()
        await screenshot(page, f"agency_home_{runtime_kind}")

        await page.click("form[action='/agency/logout'] button")
        await page.wait_for_url(f"{url}/agency/login")
        await page.goto(f"{url}/agency/")
        assert page.url.endswith("/agency/login")
