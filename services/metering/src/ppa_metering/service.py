"""metering service wiring."""

from __future__ import annotations

from ppa_runtime.service import Service


class MeteringService(Service):
    """The metering service (its behaviour arrives with its own issue)."""

    name = "metering"
