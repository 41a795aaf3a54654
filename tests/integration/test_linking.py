"""Linking on both runtimes: requests from owners' grants, decisions, revocation, proxy login and its
refusals, the events they leave, and tenant isolation (another agency's ids are a 404)."""

from __future__ import annotations

import asyncio
import random
import string
import uuid
from datetime import timedelta

from linking_support import csrf_of, eventually, flashes, mail_to, maildir_messages, platform, read_topic

from ppa_contracts import Envelope
from ppa_contracts.linking import LinkRequested, ProxyEndReason
from ppa_contracts.owner import AgencyAccessGranted
from ppa_contracts.topics import IDENTITY_AGENCY, IDENTITY_OWNER, LINKING_LINK, LINKING_PROXY_SESSION
from ppa_linking.settings import LinkingSettings


async def user_page(client, link_id: str):
    return await client.get(f"/agency_admin/{link_id}")


async def post(client, path: str, csrf: str | None):
    return await client.post(path, data={"csrf_token": csrf} if csrf is not None else {})


async def approved_link(p, owner=None):
    """An owner who granted agency a, and the link a approved through its page; (owner, link id, a's client)."""
    owner = owner or await p.register_owner()
    await p.set_agencies(owner.owner_id, "a@example.jp")
    link = await p.link_of(owner.owner_id)
    agency = await p.agency("a")
    page = await user_page(agency, link.link_id)
    r = await post(agency, f"/agency_admin/{link.link_id}/approve", csrf_of(page.text))
    assert r.status_code == 303
    return owner, link.link_id, agency


async def start_proxy(agency, link_id: str):
    page = await user_page(agency, link_id)
    return await post(agency, f"/agency_admin/{link_id}/proxy", csrf_of(page.text))


# requests ──────────────────────────────────────────────────────────────────────────────────────


async def test_a_grant_opens_one_request_that_the_agency_sees_and_is_mailed(runtime, settings):
    async with platform(runtime) as p:
        owner = await p.register_owner(products=2)
        await p.set_agencies(owner.owner_id, "a@example.jp")
        link = await p.link_of(owner.owner_id)
        assert link.status.value == "pending" and link.owner.name == "日見 太郎"
        assert [x.system_serial for x in link.products] == ["HC-A10001WN1", "HC-A10002WN1"]
        mail = await mail_to(settings, "a@example.jp", "新規メールアドレス登録用リンク")
        body = mail.get_content()
        for line in ("氏名：日見 太郎", "フリガナ：ニチコン タロウ", "都道府県：東京都", "市区町村：中央区",
                     "町名番地：日本橋兜町", f"メールアドレス :{owner.email}", "システム機種名：ESS-U4X1",
                     "システム製造番号：HC-A10001WN1", "システム製造番号：HC-A10002WN1",
                     f"{settings.public_url}/agency_admin/{link.link_id}"):
            assert line in body, line
        agency = await p.agency("a")
        listed = await eventually(lambda: _listed(agency, owner.email))
        assert f'href="/agency_admin/{link.link_id}"' in listed and "承認待ち" in listed
        page = await user_page(agency, link.link_id)
        assert page.status_code == 200
        for text in ("ユーザー情報", owner.email, "登録製品情報", "Product ID", "ESS-U4X1", "HC-A10002WN1",
                     "室内リモコン 製造番号", "設置場所郵便番号", "見守りサービス", "AI自動制御", "未加入",
                     "連携を許可", "連携を許可しない"):
            assert text in page.text, text
        assert "代理ログイン" not in page.text


async def _listed(agency, text: str, q: str = ""):
    r = await agency.get("/agency/users", params={"q": q} if q else None)
    return r.text if r.status_code == 200 and text in r.text else None


async def test_a_repeat_grant_changes_nothing_and_a_grant_after_revocation_opens_a_new_request(runtime, settings):
    async with platform(runtime) as p:
        owner = await p.register_owner()
        await p.set_agencies(owner.owner_id, "a@example.jp")
        first = await p.link_of(owner.owner_id)
        # identity says it again (a new event, not a redelivery): still one open request
        again = AgencyAccessGranted(owner_id=owner.owner_id, agency_email="a@example.jp", agency_id=p.agencies["a"])
        await runtime.bus.publish(IDENTITY_OWNER, [Envelope.wrap(again, subject=owner.owner_id,
                                                                 correlation_id=uuid.uuid4().hex)])
        marker = await p.register_owner()  # a later grant on another key, to know the repeat was consumed
        await p.set_agencies(marker.owner_id, "a@example.jp")
        await p.link_of(marker.owner_id)
        await eventually(lambda: _consumed(p, IDENTITY_OWNER))
        assert len((await p.linking.links.load(p.agencies["a"], owner.owner_id)).links) == 1
        await p.set_agencies(owner.owner_id)  # withdraw: the pending request is withdrawn
        await p.link_of(owner.owner_id, status="revoked")
        await p.set_agencies(owner.owner_id, "a@example.jp")
        second = await p.link_of(owner.owner_id, status="pending")
        assert second.link_id != first.link_id
        requested = await read_topic(runtime, LINKING_LINK, lambda evs: sum(
            e.type == LinkRequested.event_type() and e.data["owner_id"] == owner.owner_id for e in evs) >= 2)
        assert {e.subject for e in requested if e.data.get("owner_id") == owner.owner_id
                and e.type == LinkRequested.event_type()} == {first.link_id, second.link_id}
        await eventually(lambda: _count_mails(settings, "a@example.jp", 3))  # two for the owner, one for the marker


async def _consumed(p, topic: str) -> bool:
    lags = await p.host.runtime.bus.lag("linking.owners", [topic])
    return all(g.lag == 0 for g in lags)


async def _count_mails(settings, recipient: str, n: int) -> bool:
    return sum(m["To"] == recipient for m in maildir_messages(settings)) >= n


# decisions ─────────────────────────────────────────────────────────────────────────────────────


async def test_approval_says_the_seeds_words_mails_the_owner_and_cannot_be_repeated(runtime, settings):
    async with platform(runtime) as p:
        owner, link_id, agency = await approved_link(p)
        page = await user_page(agency, link_id)
        done = await agency.get(f"/agency_admin/{link_id}?done=approved")
        assert "オーナー様情報との連携に成功しました！" in flashes(done.text)
        assert "代理ログイン" in page.text and "連携を許可しない" not in page.text
        mail = await mail_to(settings, owner.email, "ログイン連携が許可されました")
        assert "メールアドレス :a@example.jp" in mail.get_content()
        csrf = csrf_of(page.text)
        for action in ("approve", "reject"):  # a second click or a replayed form
            again = await post(agency, f"/agency_admin/{link_id}/{action}", csrf)
            assert again.status_code == 409
            assert "この連携申請はすでに「連携を許可」で更新済みです。もう一度操作することはできません。" in flashes(again.text)
        assert (await p.link_of(owner.owner_id)).status.value == "approved"
        listed = await eventually(lambda: _listed(agency, "連携中"))
        assert owner.email in listed


async def test_rejection_says_so_mails_the_owner_in_the_seeds_words_and_blocks_proxy_login(runtime, settings):
    async with platform(runtime) as p:
        owner = await p.register_owner()
        await p.set_agencies(owner.owner_id, "a@example.jp")
        link = await p.link_of(owner.owner_id)
        agency = await p.agency("a")
        csrf = csrf_of((await user_page(agency, link.link_id)).text)
        r = await post(agency, f"/agency_admin/{link.link_id}/reject", csrf)
        assert r.status_code == 303
        page = await agency.get(r.headers["location"])
        assert "オーナー様情報との連携を拒否しました" in flashes(page.text)
        assert "連携を許可しないで更新済み" in page.text and "代理ログイン" not in page.text
        mail = await mail_to(settings, owner.email, "ログイン連携が拒否されました。")
        body = mail.get_content()
        assert f"{owner.email} 様" in body and "申請した販売店・業者様アカウントより、ログイン連携が拒否されました。" in body
        assert "メールアドレス :a@example.jp" in body
        again = await post(agency, f"/agency_admin/{link.link_id}/approve", csrf)
        assert again.status_code == 409 and "「連携を許可しない」で更新済み" in again.text
        proxy = await post(agency, f"/agency_admin/{link.link_id}/proxy", csrf)
        assert proxy.status_code == 403 and "連携が許可されていないため、代理ログインできません。" in flashes(proxy.text)
        assert "ppa_proxy" not in proxy.headers.get("set-cookie", "")
        await eventually(lambda: _status_is(p, link.link_id, "rejected"))
        assert owner.email not in (await agency.get("/agency/users")).text
        refused = await read_topic(runtime, LINKING_PROXY_SESSION,
                                   lambda evs: any(e.data.get("reason") == "not_approved" for e in evs))
        event = next(e for e in refused if e.data.get("reason") == "not_approved")
        assert event.data["agency_id"] == p.agencies["a"] and event.data["owner_id"] == owner.owner_id


async def _status_is(p, link_id: str, status: str) -> bool:
    doc = await p.linking.users.coll.get(link_id)
    return doc is not None and doc["status"] == status


async def test_decisions_and_proxy_login_need_the_forms_token(runtime):
    async with platform(runtime) as p:
        owner = await p.register_owner()
        await p.set_agencies(owner.owner_id, "a@example.jp")
        link = await p.link_of(owner.owner_id)
        agency = await p.agency("a")
        for action in ("approve", "reject", "proxy"):
            for token in (None, "forged-token"):
                r = await post(agency, f"/agency_admin/{link.link_id}/{action}", token)
                assert r.status_code == 403 and "画面の有効期限が切れました。" in r.text
        assert (await p.link_of(owner.owner_id)).status.value == "pending"
        # a pending request has no 代理ログイン button; a forged proxy form is refused all the same
        page = await user_page(agency, link.link_id)
        pending = await post(agency, f"/agency_admin/{link.link_id}/proxy", csrf_of(page.text))
        assert pending.status_code == 403 and "連携が許可されていないため、代理ログインできません。" in pending.text
        assert await p.linking.proxies.coll.count({"link_id": link.link_id}) == 0


async def test_pages_need_an_agency_login(runtime):
    async with platform(runtime) as p:
        owner = await p.register_owner()
        await p.set_agencies(owner.owner_id, "a@example.jp")
        link = await p.link_of(owner.owner_id)
        anonymous = p.browser()
        r = await anonymous.get("/agency/users")
        assert r.status_code == 303 and r.headers["location"] == "/agency/login"
        # the request e-mail's URL leads through login and back to the request
        r = await anonymous.get(f"/agency_admin/{link.link_id}")
        assert r.status_code == 303 and r.headers["location"] == f"/agency/login?next=%2Fagency_admin%2F{link.link_id}"
        r = await anonymous.post(f"/agency_admin/{link.link_id}/approve", data={"csrf_token": "x"})
        assert r.status_code == 303 and (await p.link_of(owner.owner_id)).status.value == "pending"


# proxy login ───────────────────────────────────────────────────────────────────────────────────


async def test_proxy_login_is_audited_with_agency_owner_time_and_address(runtime):
    async with platform(runtime) as p:
        owner = await p.register_owner()
        await p.set_agencies(owner.owner_id, "a@example.jp")
        link = await p.link_of(owner.owner_id)
        agency = await p.agency("a", ip="192.0.2.7")
        page = await user_page(agency, link.link_id)
        await post(agency, f"/agency_admin/{link.link_id}/approve", csrf_of(page.text))
        r = await start_proxy(agency, link.link_id)
        assert r.status_code == 303 and r.headers["location"] == "/mypage/"
        assert "ppa_proxy=" in r.headers["set-cookie"] and "httponly" in r.headers["set-cookie"].lower()
        history = await agency.get("/mypage/proxy-history")
        assert f"ようこそ代理ログイン ({link.link_id}) 様" in history.text
        assert "販売店・業者様向け管理画面へ戻る" in history.text
        back = await agency.post("/mypage/proxy/end", data={"csrf_token": csrf_of(history.text)})
        assert back.status_code == 303 and back.headers["location"] == f"/agency_admin/{link.link_id}"
        assert (await agency.get(back.headers["location"])).status_code == 200  # the portal session is intact
        events = await read_topic(runtime, LINKING_PROXY_SESSION, lambda evs: len(evs) >= 2)
        started, ended = events[0], events[1]
        assert started.type == "jp.ppa.linking.proxy_login_started.v1"
        assert ended.type == "jp.ppa.linking.proxy_login_ended.v1" and ended.data["reason"] == "logout"
        for e in (started, ended):
            assert e.data["agency_id"] == p.agencies["a"] and e.data["owner_id"] == owner.owner_id
            assert e.data["source_ip"] == "192.0.2.7" and e.data["at"]
            assert e.subject == started.data["session_id"]
        # the ended session's cookie is worth nothing now
        agency.cookies.set("ppa_proxy", r.cookies["ppa_proxy"])
        assert (await agency.get("/mypage/proxy-history")).status_code == 403


async def test_proxy_login_cannot_start_another_one(runtime):
    async with platform(runtime) as p:
        _, link_id, agency = await approved_link(p)
        other_owner, other_link, _ = await approved_link(p)
        assert (await start_proxy(agency, link_id)).status_code == 303
        nested = await start_proxy(agency, other_link)
        assert nested.status_code == 409
        assert "代理ログイン中は、別の代理ログインを開始できません。" in nested.text
        assert await p.linking.proxies.coll.count({"link_id": other_link}) == 0
        events = await read_topic(runtime, LINKING_PROXY_SESSION,
                                  lambda evs: any(e.data.get("reason") == "nested" for e in evs))
        assert any(e.data.get("owner_id") == other_owner.owner_id for e in events if e.data.get("reason") == "nested")


async def test_logging_out_of_the_portal_ends_the_proxy_session_opened_in_that_browser(runtime):
    async with platform(runtime) as p:
        _, link_id, agency = await approved_link(p)
        started = await start_proxy(agency, link_id)
        assert started.status_code == 303
        token = started.cookies["ppa_proxy"]
        home = await agency.get("/agency/")
        out = await agency.post("/agency/logout", data={"csrf_token": csrf_of(home.text)})
        assert out.status_code == 303 and 'ppa_proxy=""' in ",".join(out.headers.get_list("set-cookie"))
        doc = (await p.linking.proxies.coll.find({"link_id": link_id}))[0]
        assert doc["end_reason"] == "logout"
        # the proxy cookie kept by hand opens nothing now
        agency.cookies.set("ppa_proxy", token)
        assert (await agency.get("/mypage/proxy-history")).status_code == 403


async def test_an_expired_proxy_session_is_refused_and_its_expiry_recorded(runtime):
    async with platform(runtime) as p:
        owner, link_id, agency = await approved_link(p)
        assert p.linking.linking_settings.proxy_session_seconds == 3600  # the default: one hour
        assert (await start_proxy(agency, link_id)).status_code == 303
        assert (await agency.get("/mypage/proxy-history")).status_code == 200
        real = p.linking.clock
        p.linking.clock = lambda: real() + timedelta(hours=1, seconds=1)
        r = await agency.get("/mypage/proxy-history")
        assert r.status_code == 403 and "代理ログインの有効期限が切れました。" in r.text
        assert 'ppa_proxy=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
        events = await read_topic(runtime, LINKING_PROXY_SESSION, lambda evs: {"expired", "session_ended"} <= {
            e.data.get("reason") for e in evs})
        expired = next(e for e in events if e.data.get("reason") == "expired")
        started = next(e for e in events if e.type.endswith("proxy_login_started.v1"))
        assert expired.data["at"] == started.data["expires_at"] and expired.data["owner_id"] == owner.owner_id


async def test_the_worker_records_an_expiry_when_it_happens_though_nobody_uses_the_session(runtime, monkeypatch):
    monkeypatch.setenv("PPA_PROXY_SWEEP_SECONDS", "0.2")
    async with platform(runtime) as p:
        assert p.linking.linking_settings.proxy_sweep_seconds == 0.2
        owner, link_id, agency = await approved_link(p)
        assert (await start_proxy(agency, link_id)).status_code == 303
        doc = (await p.linking.proxies.coll.find({"link_id": link_id}))[0]
        # a live session outlives several sweeps
        for _ in range(3):
            await asyncio.sleep(0.3)
            assert (await p.linking.proxies.coll.get(doc["_id"]))["end_reason"] is None
        real = p.linking.clock
        p.linking.clock = lambda: real() + timedelta(hours=1, seconds=1)
        # no request, no history page: the sweep alone records the expiry, dated when it happened
        events = await read_topic(runtime, LINKING_PROXY_SESSION,
                                  lambda evs: any(e.data.get("reason") == "expired" for e in evs))
        expired = [e for e in events if e.data.get("reason") == "expired"]
        assert len(expired) == 1 and expired[0].subject == doc["_id"]
        assert expired[0].data["at"] == events[0].data["expires_at"] and expired[0].data["owner_id"] == owner.owner_id
        assert not any(e.type.endswith("proxy_login_refused.v1") for e in events)
        stored = await eventually(lambda: _ended(p, doc["_id"]))
        assert stored["end_reason"] == "expired" and stored["ended_at"] == doc["expires_at"]
        # the cookie is refused as expired, and the expiry is not recorded a second time
        r = await agency.get("/mypage/proxy-history")
        assert r.status_code == 403 and "代理ログインの有効期限が切れました。" in r.text
        await asyncio.sleep(0.5)
        again = await read_topic(runtime, LINKING_PROXY_SESSION,
                                 lambda evs: any(e.data.get("reason") == "session_ended" for e in evs))
        assert [e.data.get("reason") for e in again].count("expired") == 1


async def _ended(p, session_id: str):
    doc = await p.linking.proxies.coll.get(session_id)
    return doc if doc and doc["end_reason"] else None


async def test_concurrent_sweeps_end_a_session_once_and_mend_a_document_left_behind(runtime, monkeypatch):
    monkeypatch.setenv("PPA_PROXY_SWEEP_SECONDS", "3600")  # only this test's sweeps
    async with platform(runtime) as p:
        _, link_id, agency = await approved_link(p)
        assert (await start_proxy(agency, link_id)).status_code == 303
        _, other_link, other = await approved_link(p)
        assert (await start_proxy(other, other_link)).status_code == 303
        proxies = p.linking.proxies
        first = (await proxies.coll.find({"link_id": link_id}))[0]["_id"]
        second = (await proxies.coll.find({"link_id": other_link}))[0]["_id"]
        assert await proxies.expire_due() == 0  # nothing has expired yet
        # the second session's end is stored, but its document was not updated (a crash in between)
        assert await proxies.end(second, ProxyEndReason.LOGOUT)
        await proxies.coll.update({"_id": second}, {"$set": {"end_reason": None, "ended_at": None}})
        real = p.linking.clock
        p.linking.clock = lambda: real() + timedelta(hours=2)
        counts = await asyncio.gather(*(proxies.expire_due() for _ in range(4)))
        assert sum(counts) == 1
        assert (await proxies.coll.get(first))["end_reason"] == "expired"
        assert (await proxies.coll.get(second))["end_reason"] == "logout"  # its stored end stands
        events = await read_topic(runtime, LINKING_PROXY_SESSION,
                                  lambda evs: sum(e.type.endswith("proxy_login_ended.v1") for e in evs) >= 2)
        ends = [(e.subject, e.data["reason"]) for e in events if e.type.endswith("proxy_login_ended.v1")]
        assert sorted(ends) == sorted([(first, "expired"), (second, "logout")])
        assert await proxies.expire_due() == 0


async def test_a_password_change_of_the_agency_ends_its_proxy_sessions(runtime):
    async with platform(runtime) as p:
        owner, link_id, agency = await approved_link(p)
        started = await start_proxy(agency, link_id)
        assert started.status_code == 303
        token = started.cookies["ppa_proxy"]
        assert (await agency.get("/mypage/proxy-history")).status_code == 200
        proxies = p.linking.proxies
        session_id = (await proxies.coll.find({"link_id": link_id}))[0]["_id"]
        # the operator resets the agency's password (an agency's own change records the same event)
        await p.identity.agencies.reset_password("a@example.jp", "changed2024")
        stored = await eventually(lambda: _ended(p, session_id))
        assert stored["end_reason"] == "logout"
        events = await read_topic(runtime, LINKING_PROXY_SESSION,
                                  lambda evs: any(e.type.endswith("proxy_login_ended.v1") for e in evs))
        [ended] = [e for e in events if e.type.endswith("proxy_login_ended.v1")]
        assert ended.subject == session_id and ended.data["owner_id"] == owner.owner_id
        again = p.browser()
        again.cookies.set("ppa_proxy", token)
        assert (await again.get("/mypage/proxy-history")).status_code == 403
        # a session the agency starts after the change is not ended by it, even if the change is seen late
        fresh = p.browser()
        page = await fresh.get("/agency/login")
        r = await fresh.post("/agency/login", data={"email": "a@example.jp", "password": "changed2024",
                                                    "csrf_token": csrf_of(page.text)})
        assert r.status_code == 303
        assert (await start_proxy(fresh, link_id)).status_code == 303
        later = [d for d in await proxies.coll.find({"link_id": link_id}) if d["_id"] != session_id]
        def changes(evs):
            return [e for e in evs if e.type.endswith("agency_password_changed.v1")]

        [change] = changes(await read_topic(runtime, IDENTITY_AGENCY, changes))
        assert await proxies.end_for_agency(p.agencies["a"], change.time, ProxyEndReason.LOGOUT) == 0
        assert (await proxies.coll.get(later[0]["_id"]))["end_reason"] is None


async def test_the_proxy_session_length_is_a_setting(runtime):
    async with platform(runtime) as p:
        p.linking.linking_settings = LinkingSettings(proxy_session_seconds=600)
        _, link_id, agency = await approved_link(p)
        await start_proxy(agency, link_id)
        doc = (await p.linking.proxies.coll.find({"link_id": link_id}))[0]
        from datetime import datetime

        length = datetime.fromisoformat(doc["expires_at"]) - datetime.fromisoformat(doc["started_at"])
        assert length == timedelta(minutes=10)


async def test_revocation_ends_the_proxy_session_at_once_and_the_agency_loses_the_user(runtime, settings):
    async with platform(runtime) as p:
        owner, link_id, agency = await approved_link(p)
        assert (await start_proxy(agency, link_id)).status_code == 303
        csrf = csrf_of((await user_page(agency, link_id)).text)
        await p.set_agencies(owner.owner_id)  # the owner removes the agency's e-mail
        r = await agency.get("/mypage/proxy-history")  # the very next request of the proxy session
        assert r.status_code == 403 and "オーナー様により連携が解除されたため、代理ログインは終了しました。" in r.text
        await p.link_of(owner.owner_id, status="revoked")
        gone = await user_page(agency, link_id)
        assert gone.status_code == 404 and owner.email not in gone.text
        for action in ("approve", "reject", "proxy"):
            refused = await post(agency, f"/agency_admin/{link_id}/{action}", csrf)
            assert refused.status_code == 404 and owner.email not in refused.text
        await eventually(lambda: _status_is(p, link_id, "revoked"))
        assert owner.email not in (await agency.get("/agency/users")).text
        events = await read_topic(runtime, LINKING_PROXY_SESSION,
                                  lambda evs: any(e.data.get("reason") == "revoked" for e in evs))
        assert [e.data["reason"] for e in events if e.type.endswith("proxy_login_ended.v1")] == ["revoked"]
        revoked = await read_topic(runtime, LINKING_LINK, lambda evs: any(e.type.endswith("link_revoked.v1")
                                                                          for e in evs))
        assert next(e for e in revoked if e.type.endswith("link_revoked.v1")).data["reason"] == "owner_withdrew"


# tenant isolation ──────────────────────────────────────────────────────────────────────────────


async def test_another_agencys_ids_are_not_found_on_every_page_and_action(runtime):
    async with platform(runtime) as p:
        owner = await p.register_owner()
        await p.set_agencies(owner.owner_id, "a@example.jp")
        pending = await p.link_of(owner.owner_id)
        linked_owner, approved_id, a = await approved_link(p)
        b = await p.agency("b")
        csrf = csrf_of((await b.get("/agency/users")).text)
        for link_id in (pending.link_id, approved_id, "999999", "x1"):
            page = await user_page(b, link_id)
            assert page.status_code == 404 and "指定されたユーザーは見つかりません。" in page.text
            for action in ("approve", "reject", "proxy"):
                r = await post(b, f"/agency_admin/{link_id}/{action}", csrf)
                assert r.status_code == 404, (link_id, action)
                assert owner.email not in r.text and linked_owner.email not in r.text
        for q in ("", owner.email, pending.link_id, approved_id):
            listed = await b.get("/agency/users", params={"q": q})
            assert "全 0 件" in listed.text and f"<td>{owner.email}</td>" not in listed.text
        assert (await p.link_of(owner.owner_id)).status.value == "pending"
        assert await p.linking.proxies.coll.count({"agency_id": p.agencies["b"]}) == 0
        # agency a still sees both
        await eventually(lambda: _listed(a, owner.email))
        await eventually(lambda: _listed(a, linked_owner.email))


async def test_the_owner_ends_a_proxy_session_and_another_owner_cannot(runtime):
    async with platform(runtime) as p:
        owner, link_id, agency = await approved_link(p)
        await start_proxy(agency, link_id)
        session_id = (await p.linking.proxies.coll.find({"link_id": link_id}))[0]["_id"]
        other = await p.owner_browser((await p.register_owner()).email)
        history = await other.get("/mypage/proxy-history")
        assert "代理ログインの記録はありません。" in history.text and session_id not in history.text
        r = await other.post(f"/mypage/proxy-history/{session_id}/end", data={"csrf_token": csrf_of(history.text)})
        assert r.status_code == 404 and "指定された代理ログインは見つかりません。" in r.text
        assert (await agency.get("/mypage/proxy-history")).status_code == 200  # still alive

        own = await p.owner_browser(owner.email)
        history = await own.get("/mypage/proxy-history")
        assert f"/mypage/proxy-history/{session_id}/end" in history.text
        forged = await own.post(f"/mypage/proxy-history/{session_id}/end", data={"csrf_token": "forged"})
        assert forged.status_code == 403 and (await agency.get("/mypage/proxy-history")).status_code == 200
        r = await own.post(f"/mypage/proxy-history/{session_id}/end", data={"csrf_token": csrf_of(history.text)})
        assert r.status_code == 303
        after = await own.get(r.headers["location"])
        assert "代理ログインを終了しました。" in flashes(after.text) and "お客様が終了" in after.text
        stale = agency.cookies["ppa_proxy"]
        refused = await agency.get("/mypage/")
        assert refused.status_code == 403 and "オーナー様が代理ログインを終了しました。" in refused.text
        agency.cookies.set("ppa_proxy", stale)  # an ended session's cookie does not block a new proxy login
        again = await start_proxy(agency, link_id)
        assert again.status_code == 303
        agency.cookies.delete("ppa_proxy")
        agency.cookies.set("ppa_proxy", again.cookies["ppa_proxy"])
        assert (await agency.get("/mypage/")).status_code == 200
        events = await read_topic(runtime, LINKING_PROXY_SESSION,
                                  lambda evs: any(e.data.get("reason") == "ended_by_owner" for e in evs))
        ended = next(e for e in events if e.data.get("reason") == "ended_by_owner")
        assert ended.data["owner_id"] == owner.owner_id and ended.data["session_id"] == session_id


# the user list ─────────────────────────────────────────────────────────────────────────────────


async def test_the_user_list_searches_by_email_or_user_id_and_pages(runtime):
    async with platform(runtime) as p:
        p.linking.linking_settings = LinkingSettings(users_page_size=2)
        tag = "".join(random.choices(string.ascii_lowercase, k=8))
        owners = [await p.register_owner(email=f"{name}-{tag}@example.jp") for name in ("alpha", "beta", "gamma")]
        links = []
        for owner in owners:
            await p.set_agencies(owner.owner_id, "a@example.jp")
            links.append(await p.link_of(owner.owner_id))
        agency = await p.agency("a")
        await eventually(lambda: _listed(agency, "全 3 件"))
        first = await agency.get("/agency/users")
        assert "1 / 2" in first.text and owners[2].email in first.text and owners[0].email not in first.text
        second = await agency.get("/agency/users", params={"page": "2"})
        assert owners[0].email in second.text and owners[2].email not in second.text
        by_email = await agency.get("/agency/users", params={"q": owners[1].email.split("@")[0].upper()})
        assert owners[1].email in by_email.text and owners[0].email not in by_email.text and "全 1 件" in by_email.text
        by_id = await agency.get("/agency/users", params={"q": links[0].link_id})
        assert owners[0].email in by_id.text and "全 1 件" in by_id.text
        none = await agency.get("/agency/users", params={"q": "nobody.here"})
        assert "該当するユーザーはいません。" in none.text


async def _agency_state(owner_client, email: str) -> str:
    """The state My Page shows for one allowed agency (its row's data-status), "" when not listed."""
    html = (await owner_client.get("/mypage/profile")).text
    rows = html.split('<div class="agency-email" data-status="')[1:]
    found = [row for row in rows if email in row.split("</div>")[0]]
    return found[0].split('"', 1)[0] if found else ""


async def test_my_page_shows_each_agencys_state_and_asks_again_after_a_rejection(runtime, settings):
    async with platform(runtime) as p:
        owner = await p.register_owner()
        await p.set_agencies(owner.owner_id, "a@example.jp", "b@example.jp")
        first = await p.link_of(owner.owner_id)
        await p.link_of(owner.owner_id, "b")
        me = await p.owner_browser(owner.email)
        assert await eventually(lambda: _agency_state(me, "a@example.jp")) == "pending"
        assert "申請中" in (await me.get("/mypage/profile")).text
        a, b = await p.agency("a"), await p.agency("b")
        r = await post(a, f"/agency_admin/{first.link_id}/reject", csrf_of((await user_page(a, first.link_id)).text))
        assert r.status_code == 303
        second_b = await p.link_of(owner.owner_id, "b")
        r = await post(b, f"/agency_admin/{second_b.link_id}/approve", csrf_of((await user_page(b, second_b.link_id)).text))
        assert r.status_code == 303
        profile = (await me.get("/mypage/profile")).text
        assert await _agency_state(me, "a@example.jp") == "rejected" and await _agency_state(me, "b@example.jp") == "approved"
        assert "拒否" in profile and "連携中" in profile and profile.count("もう一度申請する") == 1
        csrf = csrf_of(profile)
        # asking an approved agency again is refused; a rejected one gets a new request and mail
        refused = await me.post("/mypage/agencies/ask-again", data={"agency_email": "b@example.jp", "csrf_token": csrf})
        assert refused.headers["location"] == "/mypage/profile?done=ask_refused"
        asked = await me.post("/mypage/agencies/ask-again", data={"agency_email": "a@example.jp", "csrf_token": csrf})
        assert asked.headers["location"] == "/mypage/profile?done=asked"
        assert "もう一度連携を申請しました" in (await me.get(asked.headers["location"])).text
        renewed = await p.link_of(owner.owner_id, "a", status="pending")
        assert renewed.link_id != first.link_id
        assert await eventually(lambda: _count_mails(settings, "a@example.jp", 2))
        assert await _agency_state(me, "a@example.jp") == "pending"
        # rejected again at once: asking again so soon is throttled (no third request, no mail)
        r = await post(a, f"/agency_admin/{renewed.link_id}/reject", csrf_of((await user_page(a, renewed.link_id)).text))
        assert r.status_code == 303
        throttled = await me.post("/mypage/agencies/ask-again", data={"agency_email": "a@example.jp",
                                                                      "csrf_token": csrf})
        assert throttled.headers["location"] == "/mypage/profile?done=ask_throttled"
        assert "15分ほど待ってから" in (await me.get(throttled.headers["location"])).text
        assert (await p.linking.links.load(p.agencies["a"], owner.owner_id)).current.link_id == renewed.link_id
        forged = await me.post("/mypage/agencies/ask-again", data={"agency_email": "a@example.jp"})
        assert forged.headers["location"] == "/mypage/profile?done=ask_refused"
