"""The operators' event dashboard (/ops): login, and the live event stream with its filters and details.

Health and rebuilds are in ops_health_pages, dead letters in ops_dead_letter_pages; this router
includes both. Access rules are in ops_web.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sse_starlette.sse import EventSourceResponse

from ppa_contracts import dlq
from ppa_gateway.ops_dead_letter_pages import router as dead_letter_router
from ppa_gateway.ops_health_pages import router as health_router
from ppa_gateway.ops_mail_pages import router as mail_router
from ppa_gateway.ops_web import CSRF_FAILED, NEEDS_BUS, OperatorJson, OperatorPage, console, jst, page
from ppa_gateway.web import COOKIE, csrf_ok, current_session, identity, render_with_csrf, set_cookie
from ppa_runtime.auth import LoginLocked
from ppa_runtime.bus import Record
from ppa_runtime.ops.events import (
    CONTEXT_HIDDEN,
    EventFilter,
    all_topics,
    history,
    invalid_view,
    record_at,
    view,
)

router = APIRouter(include_in_schema=False)
LOGIN_FAILED = "メールアドレスまたはパスワードが正しくありません。"
LOCKED = "ログインに続けて失敗したため、一時的にログインできません。15分ほど待ってから再度お試しください。"
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "all": None}


async def _login_page(request: Request, error: str | None = None, email: str = "", status: int = 200) -> Response:
    return await render_with_csrf(request, "ops/login.html", {"title": "運用担当者ログイン", "error": error,
                                                              "email": email}, status)


@router.get("/ops/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return await _login_page(request)


@router.post("/ops/login")
async def login(request: Request, email: str = Form(""), password: str = Form(""), csrf_token: str = Form("")) -> Response:
    session = await current_session(request)
    if not csrf_ok(session, csrf_token):
        return await _login_page(request, CSRF_FAILED, email, status=403)
    try:
        operator = await identity(request).operators.login(email, password,
                                                           request.client.host if request.client else "unknown")
    except LoginLocked:
        return await _login_page(request, LOCKED, email, status=429)
    if operator is None:
        return await _login_page(request, LOGIN_FAILED, email, status=401)
    await identity(request).sessions.close(request.cookies.get(COOKIE))
    session_id, _ = await identity(request).sessions.open("operator", operator.operator_id, email=operator.email)
    response = RedirectResponse("/ops/events", status_code=303)
    set_cookie(request, response, session_id)
    return response


@router.post("/ops/logout")
async def logout(request: Request, csrf_token: str = Form("")) -> Response:
    session = await current_session(request)
    if not csrf_ok(session, csrf_token):
        return RedirectResponse("/ops/events", status_code=303)
    await identity(request).sessions.close(request.cookies.get(COOKIE))
    response = RedirectResponse("/ops/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/ops/")
async def ops_home(request: Request, _operator: OperatorPage) -> Response:
    return RedirectResponse("/ops/events", status_code=303)


# ---- event stream ------------------------------------------------------------------------------

def _filter(request: Request) -> EventFilter:
    q = request.query_params
    topic = q.get("topic", "").strip()
    return EventFilter(topic=topic if topic in all_topics() else "", type=q.get("type", "").strip(),
                       subject=q.get("subject", "").strip(), correlation=q.get("correlation", "").strip())


def _shown(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "time_jst": jst(item["time"]), "json": json.dumps(item["envelope"], ensure_ascii=False, indent=2)}


@router.get("/ops/events", response_class=HTMLResponse, dependencies=NEEDS_BUS)
async def events_page(request: Request, session: OperatorPage) -> Response:
    flt = _filter(request)
    window = request.query_params.get("window", "1h")
    window = window if window in WINDOWS else "1h"
    since = datetime.now(UTC)
    found = await history(console(request).bus, flt, WINDOWS[window], limit=100)
    query = {k: v for k, v in (("topic", flt.topic), ("type", flt.type), ("subject", flt.subject),
                               ("correlation", flt.correlation)) if v}
    return page(request, "ops/events.html", session, {
        "title": "イベントストリーム", "active": "events", "flt": flt, "window": window, "windows": WINDOWS,
        "topics": all_topics(), "events": [_shown(e) for e in found.events], "truncated": found.truncated,
        "scanned": found.scanned, "hidden_topics": sorted(CONTEXT_HIDDEN),
        "stream_url": "/ops/events/stream?" + "&".join(f"{k}={v}" for k, v in
                                                       {**query, "since": int(since.timestamp() * 1000)}.items()),
    })


@router.get("/ops/events/stream", dependencies=NEEDS_BUS)
async def events_stream(request: Request, _operator: OperatorJson) -> Response:
    """Server-sent events: every matching record appended from `since` (ms) or from now on."""
    flt = _filter(request)
    bus = console(request).bus
    topics = flt.topics()
    try:
        since = datetime.fromtimestamp(int(request.query_params["since"]) / 1000, UTC)
        (start,) = await bus.offsets_at(topics, [since])
    except (KeyError, ValueError):
        start = "end"
    try:
        limit = max(int(request.query_params.get("limit", "0")), 0)
    except ValueError:
        limit = 0

    async def stream():
        tail = await bus.tail(topics, start)
        sent = 0
        try:
            yield {"event": "ready", "data": "{}"}
            while not await request.is_disconnected():
                records: list[Record] = await tail.fetch(timeout=1.0, max_records=200)
                for record in records:
                    if flt.matches(record):
                        item = _shown(view(record))
                        yield {"event": "ppa-event", "id": item["key"], "data": json.dumps(item, ensure_ascii=False)}
                        sent += 1
                        if limit and sent >= limit:
                            return
                await asyncio.sleep(0)
        finally:
            await tail.close()

    return EventSourceResponse(stream(), ping=15)


@router.get("/ops/events/{topic}/{partition}/{offset}", response_class=HTMLResponse, dependencies=NEEDS_BUS)
async def event_detail(request: Request, session: OperatorPage, topic: str, partition: int, offset: int) -> Response:
    record = await record_at(console(request).bus, topic, partition, offset) if topic in all_topics() else None
    if record is None:
        return page(request, "ops/event_missing.html", session, {"title": "イベントが見つかりません", "active": "events"},
                    404)
    try:
        item = _shown(view(record))
    except ValidationError:  # not an event: shown as read, the way to its dead letter pointed out
        invalid = invalid_view(record)
        return page(request, "ops/event_invalid.html", session, {
            "title": "イベントの形式が正しくありません", "active": "events", "record": invalid,
            "json": json.dumps(invalid["envelope"], ensure_ascii=False, indent=2),
            "dead_letters": f"/ops/dead-letters?topic={dlq(topic)}", "hidden": topic in CONTEXT_HIDDEN})
    return page(request, "ops/event.html", session, {
        "title": "イベント詳細", "active": "events", "event": item,
        "payload": json.dumps(item["envelope"].get("data"), ensure_ascii=False, indent=2),
        "hidden": topic in CONTEXT_HIDDEN,
    })


router.include_router(health_router)
router.include_router(dead_letter_router)
router.include_router(mail_router)
