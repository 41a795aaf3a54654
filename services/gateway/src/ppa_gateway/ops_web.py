"""What every operators' page shares: the operator check, the ops console, Japanese times and durations.

Only sessions of kind "operator" pass. An agency's or owner's session, or any bearer token, gets
403; no session at all is sent to /ops/login.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ppa_gateway.web import current_session, render
from ppa_runtime.ops.audit import Operator
from ppa_runtime.ops.console import OpsConsole
from ppa_runtime.readiness import DependencyState

JST = ZoneInfo("Asia/Tokyo")
CSRF_FAILED = "画面の有効期限が切れました。もう一度操作してください。"
FORBIDDEN = "このページは運用担当者専用です。"
STORE_DOWN = "ログイン情報を保存しているデータベースに接続できないため、運用画面を表示できません。復旧すると自動的に表示できるようになります。"
BUS_DOWN = "Kafka に接続できないため、このページ（イベント・デッドレター）は表示できません。復旧すると自動的に表示できるようになります。"
DONE = {
    "replayed": "再送しました。グループが適用すると反映されます。まだ失敗する場合は新しいデッドレターとして表示されます。",
    "replayed_all": "未処理のデッドレターを再送しました。",
    "discarded": "デッドレターを破棄済みにしました（トピックには残ります）。",
    "rebuild": "再構築を開始しました。",
}


def console(request: Request) -> OpsConsole:
    """The process's ops console (made on first use)."""
    state = request.app.state
    if getattr(state, "ops", None) is None:
        state.ops = OpsConsole(state.host)
    return state.ops


class NotOperator(Exception):
    """The request is not from a signed-in operator."""

    def __init__(self, response: Response) -> None:
        self.response = response


def outages(request: Request) -> list[DependencyState]:
    """The dependencies (Kafka, MongoDB) the last probe found down, each with the time it went down."""
    return [s for s in request.app.state.host.runtime.readiness.states if not s.up]


async def operator_session(request: Request, json_reply: bool = False) -> dict:
    """The operator's session, or NotOperator carrying the reply (403, the login page, or 503 when the store
    that holds the sessions is down: then the page says since when, to anyone)."""
    await _refuse_without(request, "mongodb", STORE_DOWN, json_reply)
    session = await current_session(request)
    if session is not None and session["kind"] == "operator" and "authorization" not in request.headers:
        return session
    if session is None and "authorization" not in request.headers and not json_reply:
        raise NotOperator(RedirectResponse("/ops/login", status_code=303))
    if json_reply:
        raise NotOperator(JSONResponse({"title": "Forbidden", "status": 403, "detail": FORBIDDEN}, status_code=403,
                                       media_type="application/problem+json"))
    raise NotOperator(render(request, "ops/forbidden.html", {"title": "権限がありません", "message": FORBIDDEN}, 403))


async def _refuse_without(request: Request, dependency: str, message: str, json_reply: bool = False) -> None:
    """NotOperator with a 503 naming the outage when `dependency` is known down (probed at most once a second)."""
    await request.app.state.host.runtime.readiness.check()
    down = [s for s in outages(request) if s.name == dependency]
    if not down:
        return
    if json_reply:
        raise NotOperator(JSONResponse({"title": "Service Unavailable", "status": 503,
                                        "detail": f"{dependency} に接続できません。"}, status_code=503,
                                       media_type="application/problem+json"))
    raise NotOperator(render(request, "ops/outage.html", {"title": "障害発生中", "outages": down, "message": message,
                                                          "now": datetime.now(UTC), "jst": jst, "span": span}, 503))


async def _needs_bus(request: Request) -> None:
    await _refuse_without(request, "kafka", BUS_DOWN, json_reply=request.url.path.endswith("/stream"))


# A route that reads the broker (events, dead letters): while it is down, a 503 page saying so instead of a page
# that waits for the Kafka client's timeouts.
NEEDS_BUS = [Depends(_needs_bus)]


async def _page_operator(request: Request) -> dict:
    return await operator_session(request)


async def _json_operator(request: Request) -> dict:
    return await operator_session(request, json_reply=True)


# A route's operator session; anyone else gets NotOperator's reply (see `refuse`), before the route runs.
OperatorPage = Annotated[dict, Depends(_page_operator)]
OperatorJson = Annotated[dict, Depends(_json_operator)]  # the refusal as problem+json (scripts, SSE)
OPERATOR_JSON = [Depends(_json_operator)]  # the same, for a route that needs no session (dependencies=)


async def refuse(request: Request, refused: Exception) -> Response:
    """The app's handler of NotOperator: its reply."""
    assert isinstance(refused, NotOperator)
    return refused.response


def who(session: dict) -> Operator:
    """The operator a session belongs to (for the audit events)."""
    return Operator(session["principal"], session.get("email", ""))


def jst(moment: datetime | str | None) -> str:
    """A time as the pages show it (JST, to the second)."""
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")


def span(delta: timedelta | None) -> str:
    """A duration in Japanese (e.g. 3分12秒)."""
    if delta is None:
        return "—"
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}時間{minutes}分"
    return f"{minutes}分{secs}秒" if minutes else f"{secs}秒"


def page(request: Request, template: str, session: dict, context: dict[str, Any], status: int = 200) -> Response:
    done = DONE.get(request.query_params.get("done", ""))
    messages = [{"kind": "ok", "text": done}] if done else []
    return render(request, template, {"session": session, "csrf": session["csrf"], "messages": messages,
                                      "jst": jst, "span": span, "outages": outages(request),
                                      "now": datetime.now(UTC), **context}, status)
