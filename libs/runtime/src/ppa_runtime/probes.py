"""The probe endpoints every process serves: /livez (restart me?) and /readyz = /healthz (send me traffic?).

Liveness says nothing about Kafka or MongoDB: restarting a process because the broker is down cures nothing and
makes the outage longer. It fails only when one of the process's background tasks (a relay, a consumer) ended on
an error, which nothing but a restart brings back. Readiness is 200 once every service has started and every
dependency answers; otherwise 503 problem+json naming what is missing, with Retry-After.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ppa_runtime.http import problem_response
from ppa_runtime.readiness import RETRY_AFTER_SECONDS


def health_router(host) -> APIRouter:
    """GET /livez, /readyz and /healthz (the same as /readyz) for a host's process."""
    r = APIRouter(include_in_schema=False)

    @r.get("/livez")
    async def livez() -> JSONResponse:
        crashed = host.crashed_tasks()
        if crashed:
            return JSONResponse({"status": "failed", "crashed": crashed}, status_code=503)
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> JSONResponse:
        states = await host.runtime.readiness.check()
        dependencies: dict[str, Any] = {
            s.name: {"up": s.up, "since": s.since.isoformat(), **({"error": s.error} if s.error else {})}
            for s in states}
        extra = {"runtime": host.runtime.kind, "services": [s.name for s in host.services],
                 "dependencies": dependencies}
        down = [s.name for s in states if not s.up]
        if down:
            detail = "、".join(down) + " に接続できません。"
        elif host.crashed_tasks():
            detail = "バックグラウンド処理が停止しました: " + "、".join(host.crashed_tasks())
        elif not host.ready():
            detail = "起動中です。"
        else:
            return JSONResponse({"status": "ok", **extra})
        return problem_response(503, "Service Unavailable", detail, request,
                                headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, extensions={"down": down, **extra})

    r.add_api_route("/readyz", readyz, methods=["GET"])
    r.add_api_route("/healthz", readyz, methods=["GET"])
    return r

