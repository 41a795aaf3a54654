"""What an invoice document (its PDF) shows besides the figures: without the PDF library, which only rendering
loads (it takes most of a process's start-up otherwise)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ppa_contracts.billing import InvoiceFigures, InvoiceIssuer


@dataclass(frozen=True)
class InvoiceDocument:
    """What one PDF shows besides the figures."""

    invoice_number: str
    customer_number: str
    month: str
    revision: int
    issued_on: date
    issuer: InvoiceIssuer
    figures: InvoiceFigures
    voided_on: date | None = None
