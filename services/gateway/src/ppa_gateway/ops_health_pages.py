"""/ops/health: per topic the rate, per consumer group the lag and stall, per projection its checkpoint
and a rebuild with progress."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ppa_gateway.ops_web import OperatorJson, OperatorPage, console, page, who
from ppa_gateway.web import csrf_ok
from ppa_runtime.ops.health import RATE_MINUTES
from ppa_runtime.ops.rebuilds import RebuildRunning, UnknownProjection

router = APIRouter(include_in_schema=False)


def _bars(per_minute: list[int], width: int = 180, height: int = 32) -> dict[str, Any]:
    top = max(per_minute) or 1
    step = width / len(per_minute)
    bars = [{"x": round(i * step, 1), "w": max(round(step - 0.6, 1), 0.6), "h": round(n * (height - 2) / top, 1),
             "n": n, "minute": RATE_MINUTES - i} for i, n in enumerate(per_minute)]
    return {"bars": bars, "width": width, "height": height, "top": max(per_minute)}


@router.get("/ops/health", response_class=HTMLResponse)
async def health_page(request: Request, session: OperatorPage) -> Response:
    ops = console(request)
    now = datetime.now(UTC)
    dependencies = await ops.host.runtime.readiness.check()
    # every figure below asks the broker: with it down they would wait for its timeouts, and say nothing new
    bus_down = any(d.name == "kafka" and not d.up for d in dependencies)
    rates = [] if bus_down else await ops.health.rates(now)
    groups = [] if bus_down else await ops.health.groups(now)
    projections = [] if bus_down else await ops.health.projections()
    return page(request, "ops/health.html", session, {
        "title": "ヘルス", "active": "health", "now": now, "rates": [(r, _bars(r.per_minute)) for r in rates],
        "dependencies": dependencies, "bus_down": bus_down,
        "groups": groups, "projections": projections, "jobs": ops.rebuilds.jobs,
        "stall_seconds": int(ops.health.stall_after.total_seconds()),
        "error": request.query_params.get("error"),
    })


@router.post("/ops/projections/{name}/rebuild")
async def rebuild(request: Request, session: OperatorPage, name: str, csrf_token: str = Form("")) -> Response:
    if not csrf_ok(session, csrf_token):
        return RedirectResponse("/ops/health?error=csrf#projections", status_code=303)
    try:
        console(request).rebuilds.start(name, who(session))
    except UnknownProjection:
        return RedirectResponse("/ops/health?error=unknown#projections", status_code=303)
    except RebuildRunning:
        return RedirectResponse("/ops/health?error=running#projections", status_code=303)
    return RedirectResponse("/ops/health?done=rebuild#projections", status_code=303)


@router.get("/ops/projections/{name}/rebuild")
async def rebuild_progress(request: Request, _operator: OperatorJson, name: str) -> Response:
    job = console(request).rebuilds.jobs.get(name)
    if job is None:
        return JSONResponse({"title": "Not Found", "status": 404, "detail": "再構築の記録がありません。"}, 404,
                            media_type="application/problem+json")
    return JSONResponse({"projection": job.projection, "phase": job.phase, "percent": job.percent, "read": job.read,
                         "total": job.total, "applied": job.applied, "error": job.error,
                         "started_at": job.started_at.isoformat(),
                         "finished_at": job.finished_at.isoformat() if job.finished_at else None})
