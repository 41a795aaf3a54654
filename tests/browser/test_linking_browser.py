"""The seed's login-linkage manual in chromium: the owner allows the agency on お客様情報変更, the agency
opens the request from the e-mail (read from the Maildir), approves it, proxy-logs in and sees the
banner; the owner removes the agency and the proxy's next page is refused. Screenshots of each step."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest
from linking_support import PASSWORD, SEED_OWNER, SEED_PRODUCT, eventually, mail_to

from ppa_contracts.identity import AgencyProfile
from support import live_portal, screenshot

pytestmark = pytest.mark.browser


async def test_link_approve_proxy_login_and_revocation_in_chromium(runtime, settings, browser_page, runtime_kind):
    agency = browser_page
    async with live_portal(runtime, ["identity", "linking", "notify"]) as (url, host):
        identity = host.service("identity")
        await identity.create_agency("test@example.jp", PASSWORD, AgencyProfile(company="テスト電力株式会社"))
        owner_email = "taro_nichicon@example.jp"
        created = await identity.owners.register({**SEED_OWNER, "email": owner_email}, PASSWORD, PASSWORD, "192.0.2.9")
        await identity.owners.register_product(created.owner_id, SEED_PRODUCT)

        # the owner, in a browser of their own, allows the agency's e-mail
        owner_context = await agency.context.browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo",
                                                                 viewport={"width": 1280, "height": 900})
        owner = await owner_context.new_page()
        owner.set_default_timeout(20_000)
        await owner.goto(f"{url}/mypage/login")
        await owner.fill("#email", owner_email)
        await owner.fill("#password", PASSWORD)
        await owner.click("form[action='/mypage/login'] button[type=submit]")
        await owner.wait_for_url(f"{url}/mypage/")
        await owner.goto(f"{url}/mypage/profile/edit")
        await owner.fill("input[name=agency_email]", "test@example.jp")
        await screenshot(owner, f"linking_01_owner_allows_agency_{runtime_kind}")
        await owner.click("button[value=confirm]:not(.visually-hidden)")
        await owner.click("button[value=commit]")
        await owner.wait_for_url(re.compile(r".*/mypage/profile/done$"))

        # the agency's mail, read from the Maildir, points to the request page
        mail = await mail_to(settings, "test@example.jp", "新規メールアドレス登録用リンク")
        link = re.search(r"^(http\S+/agency_admin/(\d+))$", mail.get_content(), re.M)
        assert link and link.group(1).startswith(settings.public_url)  # the configured public address
        request_url = url + urlparse(link.group(1)).path
        await agency.goto(f"{url}/agency/login")
        await agency.fill("#email", "test@example.jp")
        await agency.fill("#password", PASSWORD)
        await agency.click("form[action='/agency/login'] button[type=submit]")
        await agency.wait_for_url(f"{url}/agency/")
        await agency.goto(request_url)
        assert "HC-A10001WN1" in await agency.inner_text("main")
        await screenshot(agency, f"linking_02_request_page_{runtime_kind}")
        await agency.get_by_role("button", name="連携を許可", exact=True).click()
        await agency.wait_for_selector("text=オーナー様情報との連携に成功しました！")
        await screenshot(agency, f"linking_03_approved_{runtime_kind}")

        # 登録ユーザー一覧 → 詳細 → 代理ログイン
        async def listed():
            await agency.goto(f"{url}/agency/users")
            return owner_email in await agency.inner_text("table.users")
        await eventually(listed)
        await screenshot(agency, f"linking_04_user_list_{runtime_kind}")
        await agency.get_by_role("link", name=f"{link.group(2)} の詳細").click()
        await agency.get_by_role("button", name="代理ログイン").click()
        await agency.wait_for_url(f"{url}/mypage/")
        banner = await agency.inner_text(".proxy-banner")
        assert f"ようこそ代理ログイン ({link.group(2)}) 様" in banner
        assert "日見 太郎 様" in await agency.inner_text("main")
        await screenshot(agency, f"linking_05_proxy_mypage_banner_{runtime_kind}")

        # the owner sees it in 代理ログイン履歴, then removes the agency's e-mail
        await owner.goto(f"{url}/mypage/proxy-history")
        assert "利用中（" in await owner.inner_text("table.proxy-history")
        await screenshot(owner, f"linking_06_owner_proxy_history_{runtime_kind}")
        await owner.goto(f"{url}/mypage/profile/edit")
        await owner.fill("input[name=agency_email]", "")
        await owner.click("button[value=confirm]:not(.visually-hidden)")
        await owner.click("button[value=commit]")
        await owner.wait_for_url(re.compile(r".*/mypage/profile/done$"))

        # the proxy session's next page is refused
        await agency.reload()
        assert "オーナー様により連携が解除されたため、代理ログインは終了しました。" in await agency.inner_text("main")
        assert await agency.locator(".proxy-banner").count() == 0
        await screenshot(agency, f"linking_07_proxy_refused_after_revocation_{runtime_kind}")
        await owner.goto(f"{url}/mypage/proxy-history")
        assert "連携解除により終了" in await owner.inner_text("table.proxy-history")
        await owner_context.close()
