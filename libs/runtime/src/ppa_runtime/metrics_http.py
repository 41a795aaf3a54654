"""Where /metrics is answered: a listener of its own (PPA_METRICS_PORT), never the public port for anyone.

The exposition names routes, consumer groups, topics and counts of e-mails and logins: nothing secret, but a map of
the installation and its traffic that an internet client has no business reading. A process that faces the internet
therefore serves it on a second port that only Prometheus reaches (loopback by default, PPA_METRICS_HOST in a pod).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


def exposition() -> Response:
    """This process's metrics in Prometheus' text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def metrics_app() -> FastAPI:
    """The app of the metrics listener: GET /metrics and nothing else."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.add_api_route("/metrics", exposition, methods=["GET"], include_in_schema=False)
    return app
