"""Metering's JSON API: the device ingestion endpoint and an agency's daily usage."""

from __future__ import annotations

from datetime import date, timedelta

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from ppa_metering.daily_projection import DailyProjection
from ppa_metering.devices import DeviceRegistry
from ppa_metering.domain.readings import CHANNELS, MAX_BATCH, BatchTooLarge
from ppa_metering.ingest import Ingestion
from ppa_runtime import metrics
from ppa_runtime.auth import CurrentAgency
from ppa_runtime.http import Problem
from ppa_runtime.openapi import problems

# the device's 認証コード as an HTTP bearer credential (no error of its own: a missing one is the same 401)
device_code = HTTPBearer(auto_error=False, scheme_name="DeviceAuthCode",
                         description="The 認証コード of the device's PPA customer: `Authorization: Bearer <auth_code>`")
SERIAL = {"pattern": "^[0-9A-Za-z-]{1,32}$", "examples": ["SN-0001"]}
ISO_DATE = {"format": "date", "examples": ["2024-01-16"]}
CUSTOMER_NUMBER = {"pattern": "^11[0-9]{8}$", "examples": ["1120240001"]}
# The batch as sent: its readings are checked one by one and a bad one is listed in the 202's `rejected`, so the
# items' schema says what a reading is, not what the whole batch is refused for.
READINGS_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["readings"],
    "properties": {"readings": {"type": "array", "maxItems": MAX_BATCH, "items": {
        "type": "object", "required": ["at", "channel", "kwh"],
        "properties": {
            "at": {"type": "string", "format": "date-time", "description": "with a timezone offset or Z"},
            "channel": {"type": "string", "enum": list(CHANNELS)},
            "kwh": {"type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,6})?$",
                    "description": "the cumulative register at `at`, a decimal string"},
            "register_max": {"type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,6})?$",
                             "description": "where the register wraps to 0, if it does"}}}}},
    "example": {"readings": [{"at": "2024-01-16T00:30:00+09:00", "channel": "pv_generation", "kwh": "1234.567"}]},
}}}}


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


def _day(text: str | None, field: str) -> date | None:
    """An ISO date YYYY-MM-DD (pydantic's lax date would take `0` as 1970-01-01, a Unix time)."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise Problem(422, "Unprocessable Content", f"{field} は YYYY-MM-DD の日付で指定してください。",
                  [{"field": field, "message": "an ISO date YYYY-MM-DD is required"}])


def router(devices: DeviceRegistry, ingestion: Ingestion, daily: DailyProjection) -> APIRouter:
    """Routes bound to the metering service."""
    r = APIRouter(prefix="/api/v1")
    metrics.readings_api_started()

    @r.post("/devices/{serial_number}/readings", status_code=202, response_model=BatchAccepted, tags=["devices"],
            operation_id="pushReadings",
            summary="Push a batch of cumulative register readings (Authorization: Bearer <auth code>)",
            description="Accepted readings are stored; a repeat of (serial, channel, at) is a duplicate; a reading "
                        "that breaks a rule is listed in `rejected` with its index and reason. Up to "
                        f"{MAX_BATCH:,} readings a batch.",
            openapi_extra={"requestBody": READINGS_BODY},
            responses={**problems(401, 413, 422), **problems(
                503, s503="Kafka or MongoDB unreachable: nothing was stored; send the same batch again after "
                          "Retry-After seconds (repeats count as duplicates)")})
    async def push(request: Request, serial_number: str = Path(json_schema_extra=SERIAL),
                   credentials: HTTPAuthorizationCredentials | None = Depends(device_code)) -> JSONResponse:
        # a broker or database known to be down: 503 at once (a fleet retrying must not queue up behind timeouts)
        ingestion.readiness.refuse_if_down()
        code = credentials.credentials.strip() if credentials else ""
        device = await ingestion.stored(devices.authenticate(serial_number, code)) if code else None
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
           operation_id="getDailyUsage", summary="Daily generation, sold and usage kWh of a customer",
           description="Days from `from` to `to` (JST dates; default: the 31 days before `to`, which defaults to "
                       "today).", responses=problems(404, 422))
    async def usage(agency: CurrentAgency, customer_number: str = Path(json_schema_extra=CUSTOMER_NUMBER),
                    from_: str | None = Query(None, alias="from", json_schema_extra=ISO_DATE),
                    to: str | None = Query(None, json_schema_extra=ISO_DATE)) -> list[DayPublic]:
        first, last = _day(from_, "from"), _day(to, "to")
        if await devices.coll.get(f"{agency.agency_id}:{customer_number}") is None:
            raise Problem(404, "Not Found", "指定された顧客は見つかりません。")
        end = last or date.today()
        start = first or end - timedelta(days=31)
        if start > end:
            raise Problem(422, "Unprocessable Content", "from は to 以前の日付を指定してください。")
        return [DayPublic(date=d["date"], generation_kwh=str(d["generation_kwh"]), sold_kwh=str(d["sold_kwh"]),
                          usage_kwh=str(d["usage_kwh"]), estimated=d["estimated"])
                for d in await daily.presented_days(agency.agency_id, customer_number, start, end)]

    return r
