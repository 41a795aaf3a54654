"""My Page 「電力データを見る」: a proved home's day (48 half hours), month (days) or year (months), with 前へ / 次へ,
the chart, a table with totals, 売電料金・買電料金 from the owner's 電力料金情報, 見守りサービス, and the CSV of
what is shown. A product that is not one of the session's owner's proved homes is a 404, whoever asks.

Reads: a day is one document, a month one rollup, a year one summary (metering's half-hour projection); only
documents of the proved customer count (a serial later given to another customer shows nothing of it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ppa_billing.exports import ENCODINGS, csv_bytes
from ppa_gateway.billing_pages import kwh, yen, ymd
from ppa_gateway.energy_chart import energy_chart
from ppa_gateway.mypage_pages import mypage_session, page, to_login
from ppa_gateway.owner_energy import (SERIES, VIEWS, BadPeriod, EnergyView, Period, day_view, month_view,
                                      period, range_view, shown, year_view)
from ppa_gateway.owner_homes import proved_home
from ppa_gateway.web import identity
from ppa_identity.domain.fees import HOLIDAY, day_class
from ppa_identity.domain.owner import Home

router = APIRouter(include_in_schema=False)
JST = timezone(timedelta(hours=9))
NOT_FOUND = "指定されたご自宅の電力データは見つかりません。"
CONNECTED_WITHIN = timedelta(hours=24)  # a device that sends one batch a day still counts as connected
BATTERY_CHANNELS = {"3", "4"}  # battery_charge, battery_discharge in metering's channel order


def _ours(doc: dict | None, home: Home) -> dict | None:
    """The document when it is the proved customer's (not an earlier or later holder of the serial)."""
    if doc and doc.get("agency_id") == home.agency_id and doc.get("customer_number") == home.customer_number:
        return doc
    return None


async def _watch(request: Request, home: Home) -> dict:
    """見守りサービス: connected (data arrived within a day) and since when, from metering's device state."""
    state = await request.app.state.host.service("metering").daily.states.get(home.serial_number)
    bounds = (state or {}).get("channels", {})
    if not bounds:
        return {"connected": False, "since": None, "last": None, "battery": False}
    first = _jst(min(b[0] for b in bounds.values()))
    last = _jst(max(b[1] for b in bounds.values()))
    return {"connected": datetime.now(UTC) - last <= CONNECTED_WITHIN, "since": first, "last": last,
            "battery": bool(BATTERY_CHANNELS & set(bounds))}


def _jst(us: int) -> datetime:
    """An instant in µs since the epoch (metering's device state) in JST."""
    return datetime.fromtimestamp(us / 1_000_000, UTC).astimezone(JST)


async def _energy(request: Request, home: Home, p: Period, battery: bool, prices) -> EnergyView:
    intervals = request.app.state.host.service("metering").intervals
    if p.view == "day":
        return day_view(p, _ours(await intervals.day(home.serial_number, p.first), home), prices, battery)
    if p.view == "month":
        found = await intervals.months_of(home.serial_number, [p.key])
        return month_view(p, _ours(found[0] if found else None, home), prices, battery)
    if p.view == "range":
        rollups = [r for r in await intervals.months_of(home.serial_number, p.touched_months()) if _ours(r, home)]
        return range_view(p, rollups, prices, battery)
    months = [m for m in await intervals.year_of(home.serial_number, p.first.year) if _ours(m, home)]
    return year_view(p, months, prices, battery)


async def proved_home_or_page(request: Request, product_id: str):
    """(session, owner, home) or a response: the login page, or a 404 for anything but a proved home."""
    if (session := await mypage_session(request)) is None:
        return to_login()
    owner = await identity(request).owners.load(session["principal"])
    if owner is None:
        return to_login()
    home = await proved_home(request, owner, product_id)
    if home is None:
        return page(request, "mypage/not_found.html", {"title": "電力データを見る", "session": session,
                                                       "message": NOT_FOUND}, 404)
    return session, owner, home


def _default(view: str) -> str:
    today = datetime.now(JST).date()
    week = f"{(today - timedelta(days=6)).isoformat()}~{today.isoformat()}"
    return {"day": today.isoformat(), "month": f"{today:%Y-%m}", "range": week}.get(view, f"{today:%Y}")


@router.get("/mypage/energy/{product_id}", response_class=HTMLResponse)
async def energy(request: Request, product_id: str, view: str = "month", at: str = "") -> Response:
    found = await proved_home_or_page(request, product_id)
    if isinstance(found, Response):
        return found
    session, owner, home = found
    env = request.app.state.templates.env
    for name, fn in (("yen", yen), ("kwh", kwh), ("ymd", ymd)):
        env.filters.setdefault(name, fn)
    watch = await _watch(request, home)
    context = {"title": "電力データを見る", "session": session, "home": home, "watch": watch, "views": VIEWS,
               "view": view if view in VIEWS else "month", "at": at, "series": SERIES,
               "period": None, "previous": None, "next": None}  # `period` would be the billing pages' global
    try:
        p = period(view, at or _default(view))
    except BadPeriod as exc:
        return page(request, "mypage/energy.html", context | {"errors": {"at": str(exc)}, "data": None}, 422)
    data = await _energy(request, home, p, watch["battery"], owner.profile.prices)
    day_type = ("土日祝" if day_class(p.first) == HOLIDAY else "平日") if p.view == "day" else None
    context |= {"data": data, "period": p, "day_type": day_type, "previous": p.shifted(-1), "next": p.shifted(1),
                "prices": owner.profile.prices,
                "chart": energy_chart(data, f"{p.title} {'・'.join(SERIES[k] for k in data.series)}")}
    return page(request, "mypage/energy.html", context)


@router.get("/mypage/energy/{product_id}/csv")
async def energy_csv(request: Request, product_id: str, view: str = "month", at: str = "",
                     encoding: str = "utf-8") -> Response:
    found = await proved_home_or_page(request, product_id)
    if isinstance(found, Response):
        return found
    session, owner, home = found
    try:
        p = period(view, at or _default(view))
    except BadPeriod as exc:
        return page(request, "mypage/not_found.html", {"title": "電力データを見る", "session": session,
                                                       "message": str(exc)}, 422)
    if encoding not in ENCODINGS:
        encoding = "utf-8"
    watch = await _watch(request, home)
    data = await _energy(request, home, p, watch["battery"], owner.profile.prices)
    header = [{"day": "時刻", "month": "日付", "year": "月", "range": "日付"}[p.view], *(f"{SERIES[k]}(kWh)" for k in data.series)]
    rows = [[r.label, *(f"{shown(r.values[k])}" for k in data.series)] for r in data.rows]
    rows.append(["合計", *(f"{shown(data.totals[k])}" for k in data.series)])
    fees = data.fees
    rows.append([])
    rows.append(["売電料金(円)", "" if fees.sell_yen is None else str(fees.sell_yen)])
    for s in fees.segments:
        rows.append([f"買電料金 {s.label} {s.price}円/kWh (円)", str(s.yen), f"{shown(s.kwh)} kWh"])
    rows.append(["買電料金(円)", "" if fees.buy_yen is None else str(fees.buy_yen)])
    if fees.uncovered_kwh:
        rows.append(["買電単価 未設定の時間帯(kWh)", f"{shown(fees.uncovered_kwh)}"])
    filename = f"energy_{home.serial_number}_{p.key.replace('~', '_')}.csv"
    charset = "shift_jis" if encoding == "shift_jis" else "utf-8"
    return Response(csv_bytes(header, rows, encoding), media_type=f"text/csv; charset={charset}",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})
