"""notify service wiring."""

from __future__ import annotations

from ppa_runtime.service import Service


class NotifyService(Service):
    """The notify service (its behaviour arrives with its own issue)."""

    name = "notify"
