"""Imports every contract module so that all payload classes are registered."""

from ppa_contracts import billing, identity, metering, notify, ops  # noqa: F401
from ppa_contracts import linking  # noqa: F401
from ppa_contracts import owner  # noqa: F401
