"""Composition root: which services exist and how a process hosts them."""

from __future__ import annotations

from ppa_billing.service import BillingService
from ppa_identity.service import IdentityService
from ppa_linking.service import LinkingService
from ppa_metering.service import MeteringService
from ppa_notify.service import NotifyService
from ppa_runtime.host import Host
from ppa_runtime.runtime import Runtime
from ppa_runtime.service import Service

SERVICES: dict[str, type[Service]] = {
    cls.name: cls
    for cls in (IdentityService, LinkingService, MeteringService, BillingService, NotifyService)
}

# The HTTP edges a deployment runs (`ppa api EDGE`), each with the services whose command side it hosts.
# The gateway serves the pages, which call every service's objects in-process, so it is the command edge of
# every service (their JSON API under /api/v1 too). Device uploads are the one path with a volume of its own:
# the metering edge answers them from metering's own stores (device registry, readings) and scales apart.
EDGES: dict[str, list[str]] = {
    "gateway": list(SERVICES),
    "metering": ["metering"],
}


def build_host(runtime: Runtime, names: list[str] | None = None, workers: bool = True,
               shard: int | None = None) -> Host:
    """A host for the named services (all of them by default); `shard`: see Host."""
    chosen = names or list(SERVICES)
    return Host(runtime, [SERVICES[n](runtime) for n in chosen], workers=workers, shard=shard)
