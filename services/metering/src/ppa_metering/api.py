"""Metering's JSON API: the device ingestion endpoint and an agency's daily usage."""

from __future__ import annotations

from datetime import date, timedelta

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ppa_metering.daily_projection import DailyProjection
from ppa_metering.devices import DeviceRegistry
from ppa_metering.domain.readings import BatchTooLarge
from ppa_metering.ingest import Ingestion
from ppa_runtime import metrics
from ppa_runtime.auth import CurrentAgency
from ppa_runtime.http import Problem


class Rejected(BaseModel):
    index: int
    reason: str


class BatchAccepted(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejected]


class DayPublic(BaseModel):
    date: str
    generation_kwh: str
    sold_kwh: str
    usage_kwh: str
    estimated: bool


def router(devices: DeviceRegistry, ingestion: Ingestion, daily: DailyProjection) -> APIRouter:
    """Routes bound to the metering service."""
    r = APIRouter(prefix="/api/v1")
    metrics.readings_api_started()

    @r.post("/devices/{serial_number}/readings", status_code=202, response_model=BatchAccepted, tags=["devices"],
            summary="Push a batch of cumulative register readings (Authorization: Bearer <auth code>)",
            responses={503: {"description": "Kafka or MongoDB unreachable: nothing was stored; send the same batch "
                                            "again after Retry-After seconds (repeats count as duplicates)"}})
    async def push(serial_number: str, request: Request, authorization: str = Header("")) -> JSONResponse:
        # a broker or database known to be down: 503 at once (a fleet retrying must not queue up behind timeouts)
        ingestion.readiness.refuse_if_down()
        scheme, _, code = authorization.partition(" ")
        device = (await ingestion.stored(devices.authenticate(serial_number, code.strip()))
                  if scheme.lower() == "bearer" and code else None)
        if device is None:
            raise Problem(401, "Unauthorized", "製造番号または認証コードが正しくありません。")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise Problem(422, "Unprocessable Content", "リクエスト本文が正しいJSONではありません。") from exc
        if not isinstance(body, dict) or not isinstance(body.get("readings"), list):
            raise Problem(422, "Unprocessable Content", '本文は {"readings": [...]} の形式で送信してください。',
                          [{"field": "readings", "message": "a list of readings is required"}])
        try:
            result = await ingestion.ingest(serial_number, body["readings"])
        except BatchTooLarge as exc:
            raise Problem(422, "Unprocessable Content", str(exc), [{"field": "readings", "message": str(exc)}]) from exc
        for outcome, n in (("accepted", result.accepted), ("duplicate", result.duplicates),
                           ("rejected", len(result.rejected))):
            if n:
                metrics.READINGS.labels(outcome).inc(n)
        return JSONResponse(status_code=202, content={
            "accepted": result.accepted, "duplicates": result.duplicates,
            "rejected": [{"index": x.index, "reason": x.reason} for x in result.rejected]})

    @r.get("/customers/{customer_number}/daily-usage", response_model=list[DayPublic], tags=["customers"],
           summary="Daily generation, sold and usage kWh of a customer")
    async def usage(customer_number: str, agency: CurrentAgency,
                    from_: date | None = Query(None, alias="from"), to: date | None = None) -> list[DayPublic]:
        if await devices.coll.get(f"{agency.agency_id}:{customer_number}") is None:
            raise Problem(404, "Not Found", "指定された顧客は見つかりません。")
        end = to or date.today()
        start = from_ or end - timedelta(days=31)
        if start > end:
            raise Problem(422, "Unprocessable Content", "from は to 以前の日付を指定してください。")
        return [DayPublic(date=d["date"], generation_kwh=str(d["generation_kwh"]), sold_kwh=str(d["sold_kwh"]),
                          usage_kwh=str(d["usage_kwh"]), estimated=d["estimated"])
                for d in await daily.presented_days(agency.agency_id, customer_number, start, end)]

    return r
