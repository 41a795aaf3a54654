"""Agency sign-up in a real browser: e-mail entry, the link from the Maildir, form with a mistake, 確認,
登録, login and the profile page; a screenshot of every step under artifacts/screenshots/."""

from __future__ import annotations

import asyncio
import email
import re
from email import policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from support import live_portal, screenshot

pytestmark = pytest.mark.browser
ADDRESS = "browser-shop@example.jp"
PASSWORD = "Browser2024"


async def link_from_maildir(maildir: Path, timeout: float = 60) -> str:
    """The sign-up link of the first mail that reaches the Maildir."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for path in sorted((maildir / "new").glob("*")) if (maildir / "new").exists() else []:
            mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if mail["To"] == ADDRESS and "仮登録" in mail["Subject"]:
                return re.search(r"(https?://\S+/agency/signup/\S+)", mail.get_content()).group(1)
        await asyncio.sleep(0.1)
    raise AssertionError("no sign-up mail in the Maildir")


async def test_agency_signs_up_and_logs_in_in_chromium(runtime, browser_page, runtime_kind):
    page = browser_page
    async with live_portal(runtime, ["identity", "notify"]) as (url, host):
        await page.goto(f"{url}/agency/login")
        await page.click("text=新規会員登録はこちら")
        await page.wait_for_url(f"{url}/agency/signup")
        await page.get_by_label("メールアドレスを入力してください").fill(ADDRESS)
        await screenshot(page, f"agency_signup_1_email_{runtime_kind}")
        await page.click("button:has-text('送信する')")
        await page.wait_for_selector("text=「新規販売店仮登録案内メール」を送信いたしました。")
        await screenshot(page, f"agency_signup_2_mail_sent_{runtime_kind}")

        link = await link_from_maildir(runtime.settings.data_dir / "maildir")
        assert link.startswith(runtime.settings.public_url)
        await page.goto(url + urlsplit(link).path)  # the mail names the configured public URL, not this test port
        assert ADDRESS in await page.inner_text("#email")
        await page.get_by_label("企業名").fill("ブラウザ電力株式会社")
        await page.get_by_label("氏名").fill("山田 花子")
        await page.get_by_label("フリガナ").fill("やまだ はなこ")  # hiragana: refused
        await page.get_by_label("郵便番号").fill("1030026")
        await page.get_by_label("都道府県").select_option("東京都")
        await page.get_by_label("市区町村").fill("中央区")
        await page.get_by_label("町名番地 (建物名)").fill("日本橋兜町14-9")
        await page.get_by_label("電話番号").fill("0336667945")
        await page.fill("#password", PASSWORD)
        await page.get_by_label("ログインパスワード (確認用)").fill(PASSWORD)
        await page.click("button:has-text('確認する')")
        await page.wait_for_selector("#name_kana-error")
        assert "全角カタカナ" in await page.inner_text("#name_kana-error")
        assert await page.input_value("#company") == "ブラウザ電力株式会社"
        assert await page.input_value("#password") == ""
        await screenshot(page, f"agency_signup_3_form_error_{runtime_kind}")

        await page.get_by_label("フリガナ").fill("ヤマダ ハナコ")
        await page.fill("#password", PASSWORD)
        await page.fill("#password_confirm", PASSWORD)
        await page.click("button:has-text('確認する')")
        await page.wait_for_selector("button:has-text('登録する')")
        assert await page.inner_text("#confirm-name_kana") == "ヤマダ ハナコ"
        assert PASSWORD not in await page.content()
        await screenshot(page, f"agency_signup_4_confirm_{runtime_kind}")
        await page.click("button:has-text('登録する')")
        await page.wait_for_url(f"{url}/agency/signup/done")
        assert "新規販売店登録完了" in await page.content()
        await screenshot(page, f"agency_signup_5_done_{runtime_kind}")

        await page.click("text=ログイン画面へ")
        await page.fill("#email", ADDRESS)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{url}/agency/")
        assert "ブラウザ電力株式会社 様" in await page.content()
        await screenshot(page, f"agency_signup_6_home_{runtime_kind}")
        await page.click("nav >> text=販売店・業者様情報")
        await page.wait_for_url(f"{url}/agency/profile")
        assert await page.inner_text("#profile-name_kana") == "ヤマダ ハナコ"
        assert await page.inner_text("#profile-email") == ADDRESS
        await screenshot(page, f"agency_signup_7_profile_{runtime_kind}")
