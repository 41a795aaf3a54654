"""`ppa` — run the platform, its per-service processes, and admin commands."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys

import structlog
import uvicorn
from pydantic import ValidationError

from ppa.admin import identity_service, served_url, settings_of
from ppa.platform import EDGES, SERVICES, build_host
from ppa_runtime import tracing
from ppa_runtime.kafka_security import KafkaSetupError
from ppa_runtime.runtime import MongoUnreachable, Runtime

log = structlog.get_logger("ppa")
# The collector looks at the youngest objects every 50,000 new ones instead of 700: a consumer's batch (thousands of
# records, their values and the documents they change) outlived dozens of the default's collections, each moving it
# a generation up, so it was walked again and again before it was let go (the month list: about a tenth of its CPU).
GC_THRESHOLDS = (50_000, 20, 10)


async def _serve(app, host: str, port: int, announce: str | None = None) -> None:
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)

    async def announce_when_ready() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.05)
        _settle_heap()
        if announce:
            print(announce, flush=True)

    waiter = asyncio.create_task(announce_when_ready())
    try:
        await server.serve()
    finally:
        waiter.cancel()


async def _serve_public(settings, app, host: str, port: int, announce: str) -> None:
    """The public app, and /metrics on a listener of its own when PPA_METRICS_PORT is set (ppa_runtime.metrics_http).

    The metrics listener starts first and stops last: each uvicorn server hands a signal it caught on to the one
    that was listening before it, so Ctrl-C stops both."""
    if settings.metrics_port is None:
        await _serve(app, host, port, announce=announce)
        return
    from ppa_runtime.metrics_http import metrics_app

    config = uvicorn.Config(metrics_app(), host=settings.metrics_host, port=settings.metrics_port, log_config=None,
                            access_log=False, lifespan="off")
    metrics = uvicorn.Server(config)
    metrics_task = asyncio.create_task(metrics.serve())
    while not metrics.started:
        if metrics_task.done():  # e.g. the port is taken: refuse to start rather than run without metrics
            await metrics_task
            raise SystemExit(f"ppa: cannot start: metrics port {settings.metrics_host}:{settings.metrics_port}")
        await asyncio.sleep(0.02)
    try:
        await _serve(app, host, port, announce=f"{announce}  metrics: "
                                               f"http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    finally:
        metrics.should_exit = True
        await metrics_task


def _settle_heap() -> None:
    """Once started: everything built at start-up (modules, routes, templates, read-model caches) stays for the
    process's life, so it is moved out of the collector's generations (a full collection under load need not walk
    it again), and the collector is tuned for batches (GC_THRESHOLDS)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _up(args: argparse.Namespace) -> None:
    from ppa_gateway.app import create_app

    settings = settings_of(args, served_url(args.host, args.port))
    tracing.setup("ppa")
    if not settings.distributed:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = await Runtime.open(settings)
    try:
        _say_where_the_key_is(runtime)
        host = build_host(runtime)
        app = create_app(host, lifespan_owner=True)
        url = f"{served_url(args.host, args.port)}/"
        mailed = settings.public_url.rstrip("/")
        await _serve_public(settings, app, args.host, args.port,
                            announce=f"PPA platform ({runtime.kind}) ready: {url}  agency portal: {url}agency/login  "
                                     f"links in mail: {mailed}/")
    finally:
        await runtime.close()


def _say_where_the_key_is(runtime: Runtime) -> None:
    """Where the signing key lives (never the key): the file to back up, or to delete to sign everyone out."""
    keys = runtime.keys
    if keys.source == "PPA_SECRET_KEY":
        where = "signing key: from PPA_SECRET_KEY"
    else:
        where = f"signing key: {'generated now, ' if keys.generated else ''}kept in {keys.source} (mode 0600)"
    log.info("signing_key", source=keys.source, generated=keys.generated,
             previous_accepted=keys.previous is not None)
    print(where, flush=True)


async def _api(args: argparse.Namespace) -> None:
    from ppa_gateway.app import create_app

    settings = settings_of(args)
    tracing.setup(f"ppa-{args.edge}-api")
    if not settings.distributed:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = await Runtime.open(settings)
    try:
        host = build_host(runtime, EDGES[args.edge], workers=False)
        app = create_app(host, lifespan_owner=True, title=f"PPA {args.edge} API")
        await _serve_public(settings, app, args.host, args.port,
                            announce=f"{args.edge} api listening on {args.host}:{args.port}")
    finally:
        await runtime.close()


async def _worker(args: argparse.Namespace) -> None:
    from fastapi import FastAPI

    from ppa_runtime.metrics_http import exposition
    from ppa_runtime.probes import health_router

    settings = settings_of(args)
    tracing.setup(f"ppa-{args.service}-worker")
    runtime = await Runtime.open(settings)
    host = build_host(runtime, [args.service], workers=True, shard=args.shard)
    try:
        await host.start()
        _settle_heap()
        part = "" if args.shard is None else f", shard {args.shard}"
        print(f"{args.service} worker running ({runtime.kind}{part})", flush=True)
        # the health port is the cluster's, never published: probes and Prometheus share it
        app = FastAPI(openapi_url=None)
        app.include_router(health_router(host))
        app.add_api_route("/metrics", exposition, methods=["GET"], include_in_schema=False)

        if args.health_port:
            await _serve(app, args.health_host, args.health_port)
        else:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            import signal

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
    finally:
        await host.stop()
        await runtime.close()


async def _agency_create(args: argparse.Namespace) -> int:
    from ppa_contracts.identity import AgencyProfile
    from ppa_identity.service import AgencyExists, InvalidAgency

    async with identity_service(args) as identity:
        try:
            agency_id = await identity.create_agency(args.email, args.password, AgencyProfile(company=args.company))
        except InvalidAgency as exc:
            print(f"error: {exc.field}: {exc.message}", file=sys.stderr)
            return 2
        except AgencyExists:
            print(f"error: agency {args.email} is registered already", file=sys.stderr)
            return 1
        print(f"agency created: {args.email} (id {agency_id})")
        return 0


async def _agency_reset_password(args: argparse.Namespace) -> int:
    import secrets
    import string

    from ppa_identity.domain.agency import InvalidAgencyForm

    generated = args.password is None
    password = args.password or "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))
    async with identity_service(args) as identity:
        try:
            agency_id = await identity.agencies.reset_password(args.email, password)
        except InvalidAgencyForm as exc:
            print(f"error: {next(iter(exc.errors.values()))}", file=sys.stderr)
            return 2
        except LookupError:
            print(f"error: no agency is registered as {args.email}", file=sys.stderr)
            return 1
        print(f"password reset: {args.email} (id {agency_id}); every portal session of the agency was signed out "
              "and its API tokens stop working once the services have read the change (seconds)")
        if generated:  # shown once, never stored in clear: hand it over, the agency changes it after logging in
            print(f"temporary password: {password}")
        return 0


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="ppa", description="Residential PPA platform")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole platform in one process")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--data-dir", default=None)

    api = sub.add_parser("api", help="run an HTTP edge, without workers (distributed deployment)")
    api.add_argument("edge", choices=list(EDGES), help="gateway: the pages and every service's commands and JSON "
                                                       "API; metering: device uploads (/api/v1/devices/...)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--data-dir", default=None)

    worker = sub.add_parser("worker", help="run one service's relay and consumers")
    worker.add_argument("service", choices=list(SERVICES))
    worker.add_argument("--health-port", type=int, default=0)
    worker.add_argument("--health-host", default="0.0.0.0")
    worker.add_argument("--data-dir", default=None)
    worker.add_argument("--shard", type=int, default=None, metavar="I",
                        help="run only shard I of the service's groups that run as shards (PPA_CONSUMER_SHARDS); "
                             "the rest of the worker runs with shard 0")

    agency = sub.add_parser("agency", help="agency accounts").add_subparsers(dest="action", required=True)
    create = agency.add_parser("create", help="create an agency account without the e-mail round trip")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--company", required=True)
    create.add_argument("--data-dir", default=None)
    reset = agency.add_parser("reset-password", help="set a new password for an agency that forgot its own "
                                                      "(a temporary one is generated unless given) and sign it out")
    reset.add_argument("--email", required=True)
    reset.add_argument("--password", default=None)
    reset.add_argument("--data-dir", default=None)

    from ppa import customers_cli, simulate

    customers_cli.add_parser(sub)
    simulate.add_parser(sub)
    from ppa import ops_cli

    ops_cli.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `ppa` command."""
    args = parser().parse_args(argv)
    try:
        if args.command == "up":
            asyncio.run(_up(args))
        elif args.command == "api":
            asyncio.run(_api(args))
        elif args.command == "worker":
            asyncio.run(_worker(args))
        elif args.command == "agency":
            run = _agency_create if args.action == "create" else _agency_reset_password
            sys.exit(asyncio.run(run(args)))
        elif args.command in ("simulate", "customers"):
            sys.exit(args.handler(args))
        elif args.command in ("operator", "projections"):
            sys.exit(args.handler(args))
    except KeyboardInterrupt:
        pass
    except ValidationError as e:  # refused settings: what to change, in one line per setting, no traceback
        sys.exit("ppa: configuration refused: " + "; ".join(
            (".".join(map(str, err["loc"])) + ": " if err["loc"] else "") + err["msg"].removeprefix("Value error, ")
            for err in e.errors()))
    except (KafkaSetupError, MongoUnreachable, tracing.TracingSetupError) as e:
        sys.exit(f"ppa: {e}")
