"""Billing service wiring."""

from __future__ import annotations

from fastapi import APIRouter

from ppa_billing.customers import Customers
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.service import Service


class BillingService(Service):
    """Owns PPA customers, monthly invoices and invoice documents."""

    name = "billing"

    def __init__(self, runtime) -> None:
        super().__init__(runtime)
        self.customers = Customers(self, self.docs)

    async def start(self) -> None:
        await self.customers.setup()

    def routers(self) -> list[APIRouter]:
        from ppa_billing.api import router

        return [router(self.customers)]

    def consumers(self) -> list[ConsumerSpec]:
        return [self.customers.spec()]
