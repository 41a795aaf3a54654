"""My Page in a real browser: an owner registers, logs in, and edits お客様情報 — a segment gap is
refused with its range named, then fixed — with screenshots of each step."""

from __future__ import annotations

import pytest

from ppa_contracts.identity import AgencyProfile
from support import live_portal, screenshot

pytestmark = pytest.mark.browser

OWNER = {"#family_name": "日見", "#given_name": "太郎", "#family_name_kana": "ニチコン", "#given_name_kana": "タロウ",
         "#nickname": "ニチコン タロウ", "#postal_code": "1030026", "#city": "中央区", "#street": "日本橋兜町",
         "#phone": "0336667945", "#email": "taro@example.jp", "#password": "Passw0rd2024",
         "#password_confirm": "Passw0rd2024"}


async def registration_link(host, address: str) -> str:
    """The link path of the registration mail in notify's Maildir (no SMTP is configured here)."""
    import asyncio
    import email
    import mailbox
    import re
    from email import policy

    root = host.runtime.settings.data_dir / "maildir"
    for _ in range(300):
        if root.exists():
            for raw in mailbox.Maildir(root, factory=None):
                message = email.message_from_bytes(raw.as_bytes(), policy=policy.default)
                if message["To"] == address and "会員仮登録のご案内" in message["Subject"]:
                    return re.search(r"https?://\S+?(/mypage/register/\S+)", message.get_content()).group(1)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no registration mail to {address} in {root}")


async def set_segment(page, i: int, day: str, start: str, end: str, price: str) -> None:
    await page.select_option(f"select[name=buy_day_{i}]", day)
    await page.select_option(f"select[name=buy_start_{i}]", start)
    await page.select_option(f"select[name=buy_end_{i}]", end)
    await page.fill(f"input[name=buy_price_{i}]", price)


async def test_owner_registers_logs_in_and_fixes_a_segment_gap_in_chromium(runtime, browser_page, runtime_kind):
    page = browser_page
    async with live_portal(runtime, ["identity", "notify"]) as (url, host):
        await host.service("identity").create_agency("shop@example.jp", "password123",
                                                     AgencyProfile(company="ブラウザ電力"))
        await page.goto(f"{url}/mypage/login")
        await screenshot(page, f"mypage_login_{runtime_kind}")
        await page.click("text=新規会員登録はこちら")
        for selector, value in OWNER.items():
            await page.fill(selector, value)
        await page.select_option("#prefecture", "東京都")
        await page.check("input[name=info_opt_in][value=no]")
        await screenshot(page, f"mypage_register_{runtime_kind}")
        await page.click("button[type=submit]:has-text('登録する')")
        await page.wait_for_selector("text=仮登録メール送信")
        await screenshot(page, f"mypage_register_sent_{runtime_kind}")
        link = await registration_link(host, "taro@example.jp")
        await page.goto(url + link)
        assert await page.inner_text("#login-id") == "taro@example.jp"
        await page.click("#complete-registration")
        await page.wait_for_url(f"{url}/mypage/?done=registered")
        assert "会員登録が完了しました。" in await page.inner_text("main")
        await screenshot(page, f"mypage_menu_{runtime_kind}")

        await page.click("button:has-text('ログアウト')")
        await page.wait_for_url(f"{url}/mypage/login")
        await page.fill("#email", "taro@example.jp")
        await page.fill("#password", "Passw0rd2024")
        await page.check("input[name=remember]")
        await page.click("button[type=submit]:has-text('ログイン')")
        await page.wait_for_url(f"{url}/mypage/")
        cookie = next(c for c in await page.context.cookies() if c["name"] == "ppa_session")
        assert cookie["expires"] > 0 and cookie["httpOnly"]  # 次回から自動ログイン: a persistent cookie

        await page.click("text=お客様情報やサービス加入状況を見る")
        await page.wait_for_url(f"{url}/mypage/profile")
        await page.click("text=登録情報を変更する")
        await page.wait_for_url(f"{url}/mypage/profile/edit")
        await page.fill("input[name=agency_email] >> nth=0", "shop@example.jp")
        await page.click("button:has-text('ログインする販売店・業者様の追加')")
        await page.wait_for_selector("input[name=agency_email] >> nth=1")
        assert await page.input_value("input[name=agency_email] >> nth=0") == "shop@example.jp"
        await page.fill("#nickname", "たろう")
        await page.fill("#sell_price", "8.5")
        await set_segment(page, 0, "weekday", "09:00", "07:00", "35.5")
        await set_segment(page, 1, "holiday", "00:00", "00:00", "28")
        await page.click("#confirm-button")
        await page.wait_for_selector("#buy-error")
        assert await page.inner_text("#buy-error") == "平日 07:00〜09:00 が未設定です。"
        await page.locator("#buy-segments").scroll_into_view_if_needed()
        await screenshot(page, f"mypage_segment_gap_{runtime_kind}")

        await set_segment(page, 2, "weekday", "07:00", "09:00", "40")
        await page.click("#confirm-button")
        await page.wait_for_selector("text=入力内容を確認し")
        await screenshot(page, f"mypage_profile_confirm_{runtime_kind}")
        await page.click("button:has-text('変更する')")
        await page.wait_for_url(f"{url}/mypage/profile/done")
        assert "会員登録情報の変更が完了しました。" in await page.inner_text("main")

        await page.goto(f"{url}/mypage/profile")
        segments = await page.inner_text("#v-buy_segments")
        assert "平日 9:00 ~ 7:00 35.5 円" in segments and "土日祝 0:00 ~ 0:00 28 円" in segments
        assert "平日 7:00 ~ 9:00 40 円" in segments
        assert (await page.inner_text("#v-agency_emails")).startswith("shop@example.jp 申請中")
        assert await page.inner_text("#v-nickname") == "たろう"
        assert await page.inner_text("#v-sell_price") == "8.5 円"
        await screenshot(page, f"mypage_profile_{runtime_kind}")
