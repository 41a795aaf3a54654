"""Billing settings API: the agency's closing day, rounding mode, issuer and registration number."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ppa_billing import contract_docs as doc
from ppa_billing.agency_settings import AgencySettings, public
from ppa_billing.domain.settings import InvalidSettings
from ppa_contracts.text import sentences
from ppa_runtime.auth import CurrentAgency
from ppa_runtime.eventstore import ConcurrencyConflict
from ppa_runtime.http import Problem
from ppa_runtime.openapi import problems


class SettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no bool → int, no unknown fields

    closing_day: Annotated[int | str, doc.Whole] = Field(15, json_schema_extra=doc.exactly(doc.CLOSING_DAY))
    rounding: Literal["half_up", "down", "half_even"] | str = Field("half_up", json_schema_extra=doc.exactly(
        doc.ROUNDING))
    issuer_name: str = Field("", json_schema_extra=doc.exactly(doc.ISSUER_NAME))
    issuer_address: str = Field("", json_schema_extra=doc.exactly(doc.ISSUER_ADDRESS))
    registration_number: str | None = Field(None, json_schema_extra=doc.exactly(doc.REGISTRATION_NUMBER))


class SettingsPublic(BaseModel):
    closing_day: int | Literal["end_of_month"]
    rounding: Literal["half_up", "down", "half_even"]
    issuer_name: str
    issuer_address: str
    registration_number: str | None
    prices_include_tax: bool
    tax_rate_percent: int


def router(settings: AgencySettings) -> APIRouter:
    """Routes bound to the billing service's settings."""
    r = APIRouter(prefix="/api/v1/billing/settings", tags=["billing settings"])

    @r.get("", summary="The agency's billing settings (defaults until saved)", operation_id="getBillingSettings",
           responses={200: {"model": SettingsPublic}})
    async def read(agency: CurrentAgency) -> dict[str, Any]:
        return public(await settings.get(agency.agency_id))

    @r.put("", summary="Replace the agency's billing settings", operation_id="replaceBillingSettings",
           responses={200: {"model": SettingsPublic}, **problems(409)})
    async def replace(body: SettingsUpdate, agency: CurrentAgency) -> dict[str, Any]:
        try:
            return public(await settings.change(agency.agency_id, body.model_dump()))
        except InvalidSettings as exc:
            raise Problem(422, "Unprocessable Content", sentences(exc.errors.values()),
                          [{"field": f, "message": m} for f, m in exc.errors.items()]) from exc
        except ConcurrencyConflict as exc:
            raise Problem(409, "Conflict", "設定が同時に変更されました。もう一度お試しください。") from exc

    return r
