"""Metering: device registry, reading ingestion and daily usage."""
