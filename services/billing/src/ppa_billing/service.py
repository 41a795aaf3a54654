"""Billing service wiring."""

from __future__ import annotations

from fastapi import APIRouter

from ppa_billing.agency_settings import AgencySettings
from ppa_billing.customer_import import CustomerImport
from ppa_billing.customers import CUSTOMERS, Customers
from ppa_billing.import_jobs import ImportJobs
from ppa_billing.issue_jobs import IssueJobs
from ppa_billing.invoice_list import BUCKETS, LINES, MONTHS_OF, SEARCH, SUMS, InvoiceList
from ppa_billing.invoices import ISSUED, Invoices
from ppa_billing.issuing import Issuing
from ppa_billing.portal import BillingPortal
from ppa_runtime.auth import AgencyPasswords
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.service import Service

RETIRED_USAGE_DAYS = "usage_days"
RETIRED_LINE_NAMES = "invoice_line_names"


class BillingService(Service):
    """Owns PPA customers, billing settings, monthly invoices and invoice documents."""

    name = "billing"

    def __init__(self, runtime) -> None:
        super().__init__(runtime)
        self.customers = Customers(self, self.docs)
        self.customer_import = CustomerImport(self.customers)
        self.import_jobs = ImportJobs(self.docs, self.customer_import)
        self.settings_store = AgencySettings(self, self.docs)
        self.invoices = Invoices(self.docs.collection(CUSTOMERS),
                                 self.docs.collection(ISSUED), self.settings_store, self.docs.collection(LINES),
                                 self.docs.collection(SUMS), self.docs.collection(SEARCH),
                                 self.docs.collection(BUCKETS), self.docs.collection(MONTHS_OF))
        self.invoice_list = InvoiceList(self.docs, self.customers, self.settings_store)
        self.issuing = Issuing(self, self.docs, self.invoices, self.settings_store)
        self.issue_jobs = IssueJobs(self.docs, self.issuing)
        self.invoice_list.on_days_changed = self.issuing.on_days_changed
        self.agency_credentials = AgencyPasswords(self.name, self.docs)  # tokens of current passwords only
        self.portal = BillingPortal(self.customers, self.settings_store, self.invoices, self.issuing,
                                    self.customer_import)

    async def start(self) -> None:
        await self.customers.setup()
        await self.invoice_list.setup()
        await self.issuing.setup()
        # Left by earlier versions and read by nothing now: the second copy of the daily usage (the former
        # billing.daily-usage group's, one document per customer and day) and the lines' index it needed, and
        # one search entry per line (the search buckets replaced them).
        await self.docs.collection(RETIRED_USAGE_DAYS).drop()
        await self.docs.collection(RETIRED_LINE_NAMES).drop()
        await self.docs.collection(LINES).drop_index("agency_id", "customer_number")

    def routers(self) -> list[APIRouter]:
        from ppa_billing import api, invoice_api, settings_api

        return [api.router(self.customers, self.customer_import), settings_api.router(self.settings_store),
                invoice_api.router(self.invoices, self.issuing)]

    def consumers(self) -> list[ConsumerSpec]:
        return [self.customers.spec(), self.settings_store.spec(), self.issuing.spec(),
                self.invoice_list.spec(), self.agency_credentials.spec()]
