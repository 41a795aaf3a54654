"""The pages' behaviour that used to be inline script works from static JS under the strict CSP, and a customer's
name in a confirmation is only text (the browser_page fixture fails on anything the policy blocks)."""

from __future__ import annotations

import pytest

from ppa_contracts.identity import AgencyProfile
from support import live_portal

pytestmark = pytest.mark.browser
NAME = "x');alert(document.domain);('"
CUSTOMER = {"customer_number": "1120220110", "serial_number": "S1", "name": NAME, "base_fee": "980",
            "sell_unit_price": "16.00", "usage_unit_price": "27.00"}


async def test_delete_asks_with_the_name_as_text_and_the_password_can_be_shown(runtime, browser_page):
    page = browser_page
    async with live_portal(runtime, ["identity", "billing", "linking"]) as (url, host):
        agency_id = await host.service("identity").create_agency("csp@example.jp", "password123",
                                                                 AgencyProfile(company="CSP電力"))
        await host.service("billing").customers.register(agency_id, CUSTOMER)
        await page.goto(f"{url}/agency/login")
        await page.fill("#email", "csp@example.jp")
        await page.fill("#password", "password123")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{url}/agency/")

        await page.goto(f"{url}/agency/customers")
        await page.wait_for_selector("text=1120220110")
        asked: list[str] = []

        async def answer(dialog, accept: bool) -> None:
            asked.append(f"{dialog.type}:{dialog.message}")
            await (dialog.accept() if accept else dialog.dismiss())

        page.once("dialog", lambda d: answer(d, False))
        await page.click("button[aria-label='1120220110 を削除']")
        assert asked == [f"confirm:1120220110 {NAME} を削除します。よろしいですか？"]  # no alert ran
        await page.reload()
        assert await page.locator("text=1120220110").count() > 0  # dismissed: still there
        page.once("dialog", lambda d: answer(d, True))
        await page.click("button[aria-label='1120220110 を削除']")
        await page.wait_for_load_state()
        await page.goto(f"{url}/agency/customers")
        assert await page.locator("button[aria-label='1120220110 を削除']").count() == 0
        assert asked[1:] == [f"confirm:1120220110 {NAME} を削除します。よろしいですか？"]

        await page.goto(f"{url}/mypage/login")
        assert await page.get_attribute("#password", "type") == "password"
        await page.check("#show-password")
        assert await page.get_attribute("#password", "type") == "text"
        await page.uncheck("#show-password")
        assert await page.get_attribute("#password", "type") == "password"
