"""/ops/dead-letters: letters per topic with error and attempts; replay one or all, discard with a reason."""

from __future__ import annotations

import json

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ppa_gateway.ops_web import CSRF_FAILED, NEEDS_BUS, OperatorPage, console, page, who
from ppa_gateway.web import csrf_ok
from ppa_runtime.ops.deadletters import (
    InvalidReason,
    LetterClosed,
    LetterNotFound,
    NotReplayable,
    UnknownGroup,
    dead_letter_topics,
)

router = APIRouter(include_in_schema=False, dependencies=NEEDS_BUS)


async def _letters_page(request: Request, session: dict, error: str | None = None, error_key: str = "",
                        reason: str = "", status: int = 200) -> Response:
    topic = request.query_params.get("topic", "")
    topic = topic if topic in dead_letter_topics() else ""
    letters = await console(request).dead_letters.list([topic] if topic else None)
    by_topic: dict[str, list] = {}
    for letter in letters:
        by_topic.setdefault(letter.topic, []).append(
            {"letter": letter, "json": json.dumps(letter.envelope, ensure_ascii=False, indent=2)})
    return page(request, "ops/dead_letters.html", session, {
        "title": "デッドレター", "active": "dead", "topic": topic, "topics": dead_letter_topics(),
        "by_topic": by_topic, "pending": sum(1 for x in letters if x.status == "pending"),
        "error": error, "error_key": error_key, "reason": reason,
    }, status)


@router.get("/ops/dead-letters", response_class=HTMLResponse)
async def dead_letters(request: Request, session: OperatorPage) -> Response:
    return await _letters_page(request, session)


async def _refusal(request: Request, session: dict, exc: Exception, key: str = "", reason: str = "") -> Response:
    messages = {
        LetterNotFound: ("指定されたデッドレターが見つかりません。", 404),
        LetterClosed: ("このデッドレターは再送または破棄済みです。", 409),
        UnknownGroup: ("このデッドレターのコンシューマーグループはこのプラットフォームにありません。", 409),
        NotReplayable: ("このデッドレターの元のイベントは形式が正しくないため再送できません。理由を入力して破棄してください。", 409),
    }
    text, status = messages.get(type(exc), (str(exc), 400))
    return await _letters_page(request, session, text, key, reason, status)


@router.post("/ops/dead-letters/replay")
async def replay(request: Request, session: OperatorPage, key: str = Form(""), csrf_token: str = Form("")) -> Response:
    if not csrf_ok(session, csrf_token):
        return await _letters_page(request, session, CSRF_FAILED, key, status=403)
    try:
        await console(request).dead_letters.replay(key, who(session))
    except (LetterNotFound, LetterClosed, UnknownGroup, NotReplayable) as exc:
        return await _refusal(request, session, exc, key)
    return RedirectResponse("/ops/dead-letters?done=replayed", status_code=303)


@router.post("/ops/dead-letters/replay-all")
async def replay_all(request: Request, session: OperatorPage, topic: str = Form(""),
                     csrf_token: str = Form("")) -> Response:
    if not csrf_ok(session, csrf_token):
        return await _letters_page(request, session, CSRF_FAILED, status=403)
    await console(request).dead_letters.replay_all(who(session), topic if topic in dead_letter_topics() else None)
    return RedirectResponse("/ops/dead-letters?done=replayed_all", status_code=303)


@router.post("/ops/dead-letters/discard")
async def discard(request: Request, session: OperatorPage, key: str = Form(""), reason: str = Form(""),
                  csrf_token: str = Form("")) -> Response:
    if not csrf_ok(session, csrf_token):
        return await _letters_page(request, session, CSRF_FAILED, key, reason, status=403)
    try:
        await console(request).dead_letters.discard(key, reason, who(session))
    except InvalidReason as exc:
        return await _letters_page(request, session, str(exc), key, reason, status=400)
    except (LetterNotFound, LetterClosed) as exc:
        return await _refusal(request, session, exc, key, reason)
    return RedirectResponse("/ops/dead-letters?done=discarded", status_code=303)
