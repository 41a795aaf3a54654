"""Billing service wiring."""

from __future__ import annotations

from fastapi import APIRouter

from ppa_billing.customers import CUSTOMERS, Customers
from ppa_billing.invoices import USAGE_DAYS, Invoices
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.service import Service


class BillingService(Service):
    """Owns PPA customers, monthly invoices and invoice documents."""

    name = "billing"

    def __init__(self, runtime) -> None:
        super().__init__(runtime)
        self.customers = Customers(self, self.docs)
        self.invoices = Invoices(self.docs.collection(USAGE_DAYS), self.docs.collection(CUSTOMERS))

    async def start(self) -> None:
        await self.customers.setup()
        await self.invoices.setup()

    def routers(self) -> list[APIRouter]:
        from ppa_billing import api, invoice_api

        return [api.router(self.customers), invoice_api.router(self.invoices)]

    def consumers(self) -> list[ConsumerSpec]:
        return [self.customers.spec(), self.invoices.spec()]
