"""Everything the event dashboard works with, built once per process over its host."""

from __future__ import annotations

from datetime import timedelta

from ppa_runtime.ops.audit import Audit
from ppa_runtime.ops.deadletters import DeadLetters
from ppa_runtime.ops.health import Health
from ppa_runtime.ops.rebuilds import Rebuilds


class OpsConsole:
    """Dead letters, health figures and rebuild jobs over one host's services and bus."""

    def __init__(self, host) -> None:
        self.host = host
        self.bus = host.runtime.bus
        self.audit = Audit(host.runtime)
        self.dead_letters = DeadLetters(host, self.audit)
        self.health = Health(host, timedelta(seconds=host.runtime.settings.ops_stall_seconds))
        self.rebuilds = Rebuilds(host, self.audit)
