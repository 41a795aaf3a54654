"""The seed's login-linkage manual (seed 000 §2–4) end to end through the pages, on both runtimes, with
the e-mails caught by a real SMTP server (aiosmtpd): an agency exists → the owner registers, adds a
product and allows the agency's e-mail → the agency is mailed the request → approves it → 代理ログイン
→ the owner's My Page with the banner → the owner removes the agency → the proxy's next request is
refused, the agency loses the user, and the owner's 代理ログイン履歴 says what happened."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from linking_support import PASSWORD, SEED_OWNER, SEED_PRODUCT, csrf_of, eventually, flashes, form_fields, platform

from support import make_settings


@pytest.fixture
def settings(runtime_kind: str, tmp_path: Path, request: pytest.FixtureRequest, inbox):
    servers = request.getfixturevalue("servers") if runtime_kind == "distributed" else None
    return make_settings(runtime_kind, tmp_path, servers, smtp_host="127.0.0.1", smtp_port=inbox[1])


async def submit(client, page_html: str, action: str, changes: dict | None = None, extra=(), drop=()) -> object:
    """Post the form of `page_html` that targets `action`, as a browser would, with some fields changed."""
    pairs = [(k, v) for k, v in form_fields(page_html, action) if k not in drop]
    for key, value in (changes or {}).items():
        pairs = [(k, value if k == key else v) for k, v in pairs]
    data: dict[str, list[str]] = {}
    for key, value in pairs + list(extra):
        data.setdefault(key, []).append(value)
    return await client.post(action, data=data)


async def test_the_seed_manual_from_grant_to_revocation(runtime, settings, inbox):
    smtp, _ = inbox
    async with platform(runtime) as p:
        # 2. お客様: register, add the product, allow the agency's e-mail (販売店ID) on お客様情報変更
        owner = p.browser("198.51.100.20")
        form = await owner.get("/mypage/register")
        owner_email = "taro_nichicon@example.jp"
        r = await owner.post("/mypage/register", data={**SEED_OWNER, "email": owner_email, "password": PASSWORD,
                                                       "password_confirm": PASSWORD, "csrf_token": csrf_of(form.text)})
        assert r.status_code == 200 and "仮登録メール送信" in r.text, r.text
        link = re.search(r"https?://\S+(/mypage/register/\S+)",
                         (await smtp.wait_for(owner_email, "[家庭用PPAポータル]会員仮登録のご案内"))[0].get_content()).group(1)
        confirm_page = await owner.get(link)
        r = await owner.post(link, data={"csrf_token": csrf_of(confirm_page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/mypage/?done=registered", r.text
        product = await owner.get("/mypage/products/new")
        r = await owner.post("/mypage/products/new", data={**SEED_PRODUCT, "csrf_token": csrf_of(product.text)})
        assert r.status_code == 303, r.text
        edit = await owner.get("/mypage/profile/edit")
        confirm = await submit(owner, edit.text, "/mypage/profile/edit", {"agency_email": "A@example.jp"},
                               [("action", "confirm")])
        assert confirm.status_code == 200 and "a@example.jp" in confirm.text, confirm.text
        done = await submit(owner, confirm.text, "/mypage/profile/edit", extra=[("action", "commit")])
        assert done.status_code == 303

        # 3. 業者様: the request mail, exactly the seed's fields and the URL of the request page
        mail = (await smtp.wait_for("a@example.jp", "[家庭用PPAポータル]新規メールアドレス登録用リンクにアクセスしてください"))[0]
        body = mail.get_content()
        assert body.startswith("※このメールはシステムからの自動返信です") and "a@example.jp様" in body
        assert "下記のオーナー様より、ログイン連携の申請がありました。" in body
        fields = re.findall(r"^(氏名|フリガナ|都道府県|市区町村|町名番地|メールアドレス|システム機種名|システム製造番号)\s*[：:](.*)$",
                            body, re.M)
        assert fields == [("氏名", "日見 太郎"), ("フリガナ", "ニチコン タロウ"), ("都道府県", "東京都"),
                          ("市区町村", "中央区"), ("町名番地", "日本橋兜町"), ("メールアドレス", owner_email),
                          ("システム機種名", "ESS-U4X1"), ("システム製造番号", "HC-A10001WN1")]
        url = re.search(r"^(http\S+/agency_admin/(\d+))$", body, re.M)
        assert url and url.group(1).startswith(settings.public_url)
        request_path, link_id = urlparse(url.group(1)).path, url.group(2)

        agency = await p.agency("a", ip="192.0.2.44")
        page = await agency.get(request_path)
        assert page.status_code == 200
        for text in ("ユーザー情報", owner_email, "登録日", "登録製品情報", "ESS-U4X1", "HC-A10001WN1", "1030026",
                     "見守りサービス", "未加入", "連携を許可", "連携を許可しない"):
            assert text in page.text, text
        r = await agency.post(f"{request_path}/approve", data={"csrf_token": csrf_of(page.text)})
        approved = await agency.get(r.headers["location"])
        assert flashes(approved.text) == ["オーナー様情報との連携に成功しました！"] and "代理ログイン" in approved.text
        told = (await smtp.wait_for(owner_email, "[家庭用PPAポータル]ログイン連携が許可されました。"))[0]
        assert "メールアドレス :a@example.jp" in told.get_content()

        # 4. 代理ログイン: the list's 詳細 → 代理ログイン → the owner's My Page with the banner
        listed = await eventually(lambda: _listed(agency, owner_email))
        assert re.search(rf'<td class="num">{link_id}</td>\s*<td>{re.escape(owner_email)}</td>', listed)
        user = await agency.get(f"/agency_admin/{link_id}")
        r = await agency.post(f"/agency_admin/{link_id}/proxy", data={"csrf_token": csrf_of(user.text)})
        assert r.status_code == 303 and r.headers["location"] == "/mypage/"
        mypage = await agency.get("/mypage/")
        assert mypage.status_code == 200 and "日見 太郎 様" in mypage.text
        assert f"ようこそ代理ログイン ({link_id}) 様" in mypage.text and "販売店・業者様向け管理画面へ戻る" in mypage.text

        # a proxy cannot change the owner's e-mail or allowed agencies (the form's other fields it can)
        proxy_edit = await agency.get("/mypage/profile/edit")
        assert "代理ログイン中は変更できません。" in proxy_edit.text
        forged = await submit(agency, proxy_edit.text, "/mypage/profile/edit",
                              {"email": "thief@example.jp", "nickname": "代理で変更"},
                              [("agency_email", "b@example.jp"), ("action", "commit")])
        assert forged.status_code == 303
        stored = await p.identity.owners.find_by_email(owner_email)
        assert stored.profile.nickname == "代理で変更" and stored.profile.agency_emails == ("a@example.jp",)
        assert await p.identity.owners.find_by_email("thief@example.jp") is None
        history_in_proxy = await agency.get("/mypage/proxy-history")
        owner_history = await owner.get("/mypage/proxy-history")
        session_id = re.search(r"/mypage/proxy-history/([0-9a-f]+)/end", owner_history.text)
        assert session_id, "the owner sees the active proxy session with a way to end it"
        refused = await agency.post(f"/mypage/proxy-history/{session_id.group(1)}/end",
                                    data={"csrf_token": csrf_of(history_in_proxy.text)})
        assert refused.status_code == 403 and "代理ログイン中は" in refused.text
        # and cannot start another proxy login from here
        nested = await agency.post(f"/agency_admin/{link_id}/proxy", data={"csrf_token": csrf_of(user.text)})
        assert nested.status_code == 409

        # the owner sees the proxy login in 代理ログイン履歴
        history = await owner.get("/mypage/proxy-history")
        assert "a電力（a@example.jp）" in history.text and "利用中（" in history.text and "192.0.2.44" in history.text

        # 5. the owner removes the agency's e-mail: the proxy session ends at once
        edit = await owner.get("/mypage/profile/edit")
        confirm = await submit(owner, edit.text, "/mypage/profile/edit", drop=("agency_email",),
                               extra=[("agency_email", ""), ("action", "confirm")])
        done = await submit(owner, confirm.text, "/mypage/profile/edit", extra=[("action", "commit")])
        assert done.status_code == 303
        next_request = await agency.get("/mypage/")
        assert next_request.status_code == 403
        assert "オーナー様により連携が解除されたため、代理ログインは終了しました。" in next_request.text
        assert "日見 太郎" not in next_request.text
        assert (await agency.get("/mypage/")).status_code in (303, 403)  # the cookie is gone or still refused

        async def lost():
            page = await agency.get(f"/agency_admin/{link_id}")
            listed = await agency.get("/agency/users")
            return page.status_code == 404 and owner_email not in listed.text
        await eventually(lost)
        history = await owner.get("/mypage/proxy-history")
        assert "連携解除により終了" in history.text and "利用中（" not in history.text


async def _listed(agency, text: str):
    r = await agency.get("/agency/users")
    return r.text if text in r.text else None
