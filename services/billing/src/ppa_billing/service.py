"""billing service wiring."""

from __future__ import annotations

from ppa_runtime.service import Service


class BillingService(Service):
    """The billing service (its behaviour arrives with its own issue)."""

    name = "billing"
