"""OpenTelemetry traces: one trace from an HTTP request through the event store and the bus to the mail it causes.

Off unless the standard `OTEL_*` variables ask for an exporter (`OTEL_TRACES_EXPORTER=otlp|console`, or an
`OTEL_EXPORTER_OTLP_ENDPOINT`); `OTEL_SDK_DISABLED=true` wins over both. While off nothing here makes a span: each
helper returns a shared no-op context, and events carry no trace context (docs/observability.md).

The trace context travels in every event as the CloudEvents distributed-tracing extension: the `traceparent` and
`tracestate` attributes (`ce_traceparent`/`ce_tracestate` Kafka headers), set when the event is made, so the spans
of whoever publishes, consumes and handles it join the trace that made it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any
from urllib.parse import urlsplit

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ppa_contracts import envelope as _envelope
from ppa_contracts.envelope import Envelope

_PROPAGATOR = TraceContextTextMapPropagator()  # W3C trace context: the only format the extension knows
_OFF: AbstractContextManager[None] = nullcontext()
_SUPPORTED_EXPORTERS = ("otlp", "console", "none")
_state: dict[str, Tracer] = {}


class TracingSetupError(ValueError):
    """The OTEL_* variables ask for something this build cannot do."""


def enabled() -> bool:
    return "tracer" in _state


def requested(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces to be exported."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER")
    if exporters is not None:
        return any(name.strip().lower() not in ("", "none") for name in exporters.split(","))
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def setup(service_name: str, env: Mapping[str, str] = os.environ) -> bool:
    """Install the SDK's tracer provider, its exporters and the pymongo instrumentation when the environment asks
    for traces; returns whether tracing is on. `service_name` applies unless OTEL_SERVICE_NAME names the service."""
    if enabled() or not requested(env):
        return enabled()
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    exporters = []
    for name in (n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")):
        if name == "otlp":
            protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                        or "http/protobuf")
            if protocol != "http/protobuf":
                raise TracingSetupError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only http/protobuf is supported "
                                        "(the collector's port 4318)")
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name not in ("", "none"):
            raise TracingSetupError(f"OTEL_TRACES_EXPORTER={name}: not one of {', '.join(_SUPPORTED_EXPORTERS)}")
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by Resource.create; the sampler by the provider
    resource = Resource.create({} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name})
    provider = TracerProvider(resource=resource)  # flushes its spans at exit
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_*: batch size and delay
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    PymongoInstrumentor().instrument(tracer_provider=provider)
    _state["tracer"] = provider.get_tracer("ppa_runtime")
    _envelope.trace_context = event_context  # every Envelope.wrap from now on carries the current trace
    return True


def instrument_app(app: Any) -> None:
    """A server span for each HTTP request of `app`, joining the trace of an incoming `traceparent`; its URL is
    the route's template, never the path itself (sign-up and reset links carry their token in the path)."""
    if not enabled():
        return
    from fastapi.routing import iter_route_contexts
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from starlette.routing import Match, Route

    def route_only(span: Span, scope: dict[str, Any]) -> None:
        if not span.is_recording():
            return
        # as the instrumentation names the span: included routers' routes flattened, matched as starlette does
        template = next((getattr(r, "path", None) for r in iter_route_contexts(app.router.routes)
                         if (Route.matches(r, scope) if isinstance(r, Route) else r.matches(scope))[0] == Match.FULL),
                        None) or "(unmatched)"
        present = getattr(span, "attributes", None) or {}
        for key in ("http.target", "url.path"):
            if key in present:
                span.set_attribute(key, template)
        for key in ("http.url", "url.full"):
            if key in present:
                parts = urlsplit(str(present[key]))
                span.set_attribute(key, f"{parts.scheme}://{parts.netloc}{template}")
        if "url.query" in present:
            span.set_attribute("url.query", "")
        span.set_attribute("http.route", template)
        # the request's log lines carry its trace id (the request runs in a task of its own: nothing to unbind)
        structlog.contextvars.bind_contextvars(trace_id=trace_id_of(span))

    FastAPIInstrumentor.instrument_app(app, excluded_urls="/healthz,/readyz,/livez,/metrics,/static",
                                       server_request_hook=route_only, exclude_spans=["receive", "send"])


def event_context() -> dict[str, str]:
    """The current trace context as event attributes (`traceparent`, and `tracestate` when there is one)."""
    if not enabled():
        return {}
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def _parent(traceparent: str | None, tracestate: str | None) -> otel_context.Context | None:
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier)


def span(name: str, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> AbstractContextManager[Any]:
    """A span around a block, child of the current one (nothing while tracing is off)."""
    if not enabled():
        return _OFF
    return _state["tracer"].start_as_current_span(name, kind=kind, attributes=attributes)


def consuming(group: str, topic: str, env: Envelope) -> AbstractContextManager[Any]:
    """The span of a consumer group's work on one event: a child of the context the event carries. The log lines
    written meanwhile carry its `trace_id`."""
    if not enabled():
        return _OFF
    return _logged(_state["tracer"].start_as_current_span(
        f"consume {topic}", context=_parent(env.traceparent, env.tracestate), kind=SpanKind.CONSUMER,
        attributes={"messaging.operation.type": "process", "messaging.consumer.group.name": group,
                    "messaging.destination.name": topic, "messaging.message.id": env.id,
                    "cloudevents.event_type": env.type, "cloudevents.event_subject": env.subject}))


@contextmanager
def _logged(span_context: AbstractContextManager[Span]) -> Iterator[Span]:
    with span_context as current, structlog.contextvars.bound_contextvars(trace_id=trace_id_of(current)):
        yield current


def trace_id_of(current: Span) -> str:
    """A span's trace id as W3C writes it (32 hex digits), as log lines and trace backends show it."""
    return format(current.get_span_context().trace_id, "032x")


@contextmanager
def _many(name: str, kind: SpanKind, parents: Iterable[tuple[str, str | None]],
          attributes: dict[str, Any]) -> Iterator[None]:
    """One span per distinct parent context, each open as long as the block (none becomes current)."""
    tracer = _state["tracer"]
    seen: set[str] = set()
    with ExitStack() as stack:
        for traceparent, tracestate in parents:
            if traceparent in seen:
                continue
            seen.add(traceparent)
            one: Span = tracer.start_span(name, context=_parent(traceparent, tracestate), kind=kind,
                                          attributes=attributes)
            stack.enter_context(trace.use_span(one, end_on_exit=True, record_exception=True,
                                               set_status_on_exception=True))
        yield


def publishing(system: str, topic: str, events: list[Envelope]) -> AbstractContextManager[Any]:
    """The spans of publishing events: one for each trace among them, a child of the context its events carry."""
    if not enabled():
        return _OFF
    attributes = {"messaging.system": system, "messaging.operation.type": "send",
                  "messaging.destination.name": topic, "messaging.batch.message_count": len(events)}
    return _many(f"publish {topic}", SpanKind.PRODUCER,
                 ((e.traceparent, e.tracestate) for e in events if e.traceparent), attributes)


def consuming_batch(group: str, contexts: Iterable[tuple[str | None, str | None]]) -> AbstractContextManager[Any]:
    """The spans of a consumer group's batch: one per trace among its records ((traceparent, tracestate) each)."""
    if not enabled():
        return _OFF
    parents = [(tp, ts) for tp, ts in contexts if tp]
    attributes = {"messaging.operation.type": "process", "messaging.consumer.group.name": group,
                  "messaging.batch.message_count": len(parents)}
    return _many(f"consume batch {group}", SpanKind.CONSUMER, parents, attributes)


def shutdown() -> None:
    """Export what is still buffered (also done at exit)."""
    provider = trace.get_tracer_provider()
    if enabled() and hasattr(provider, "shutdown"):
        provider.shutdown()
