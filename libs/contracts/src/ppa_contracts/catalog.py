"""Imports every contract module so that all payload classes are registered."""

from ppa_contracts import identity, ops  # noqa: F401
