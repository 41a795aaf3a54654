"""Prometheus metrics shared by every process."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_LATENCY = Histogram(
    "ppa_http_request_duration_seconds", "HTTP request latency", ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PUBLISHED = Counter("ppa_events_published_total", "Events published by the outbox relay", ["service", "topic"])
EVENTS_CONSUMED = Counter("ppa_events_consumed_total", "Events applied by consumers", ["group", "topic"])
EVENTS_DUPLICATE = Counter("ppa_events_duplicate_total", "Redelivered events skipped", ["group", "topic"])
HANDLER_ERRORS = Counter("ppa_handler_errors_total", "Handler failures (each attempt)", ["group", "event_type"])
DEAD_LETTERS = Counter("ppa_dead_letters_total", "Events sent to a dead-letter topic", ["group", "topic"])
CONSUMER_LAG = Gauge("ppa_consumer_lag", "Records a consumer group has not yet committed, per partition",
                     ["group", "topic", "partition"])
EMAILS = Counter("ppa_emails_total", "E-mails handled by notify, by outcome (sent, failed)", ["template", "outcome"])
READINGS = Counter("ppa_readings_total", "Meter readings received, by outcome (accepted, duplicate, rejected)",
                   ["outcome"])
PROJECTION_REBUILDS = Counter("ppa_projection_rebuilds_total", "Projection rebuilds by outcome", ["projection", "outcome"])
CONSUMER_BATCHES = Counter("ppa_consumer_batches_total", "Fetched batches a consumer group applied at once",
                           ["group"])
MONGODB_COMMANDS = Counter("ppa_mongodb_commands_total", "Commands sent to MongoDB (round trips), by command name",
                           ["command"])


# A labelled counter has no series until its labels are first used, and a series that is born at 1 shows no
# `increase()`: an alert on the first dead letter or failed mail of a process would never fire. Every series a
# rule in deploy/observability/rules.yml watches is therefore created at 0 as soon as its labels are known.

def consumer_started(group: str, topics: list[str], event_types: list[str]) -> None:
    """A consumer group's series at 0: consumed, duplicates and dead letters per topic, errors per event type."""
    CONSUMER_BATCHES.labels(group)
    for topic in topics:
        EVENTS_CONSUMED.labels(group, topic)
        EVENTS_DUPLICATE.labels(group, topic)
        DEAD_LETTERS.labels(group, topic)
    for event_type in event_types:
        HANDLER_ERRORS.labels(group, event_type)


def mailer_started(templates: list[str]) -> None:
    for template in templates:
        for outcome in ("sent", "failed"):
            EMAILS.labels(template, outcome)


def readings_api_started() -> None:
    for outcome in ("accepted", "duplicate", "rejected"):
        READINGS.labels(outcome)


def projections_known(projections: list[str]) -> None:
    for projection in projections:
        for outcome in ("done", "failed"):
            PROJECTION_REBUILDS.labels(projection, outcome)
