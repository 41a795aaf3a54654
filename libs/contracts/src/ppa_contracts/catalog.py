"""Imports every contract module so that all payload classes are registered."""

from ppa_contracts import billing, identity, metering, notify, ops  # noqa: F401
