"""The gateway app factory: every service's routers behind one FastAPI app."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ppa_runtime import openapi, tracing
from ppa_runtime.host import Host
from ppa_runtime.http import RequestContextMiddleware, install_problem_handlers
from ppa_runtime.headers import SecurityHeadersMiddleware
from ppa_runtime.limits import BodyLimitMiddleware
from ppa_runtime.metrics import projections_known
from ppa_runtime.metrics_http import exposition
from ppa_runtime.ops.health import projection_name, projections_of
from ppa_runtime.probes import health_router

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def create_app(host: Host, lifespan_owner: bool = False, title: str = "PPA platform") -> FastAPI:
    """Build the app; with `lifespan_owner` the app starts and stops the host itself."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if lifespan_owner:
            await host.start()
        try:
            yield
        finally:
            if lifespan_owner:
                await host.stop()

    app = FastAPI(
        title=title,
        version="1.0.0",
        description="家庭用PPA事業者向けプラットフォーム: agency portal, owners' My Page, device API.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.host = host
    app.state.templates = templates
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, public_url=host.runtime.settings.public_url)
    app.add_middleware(RequestContextMiddleware)  # added last: the outermost, so a 413 has its request id too
    install_problem_handlers(app)
    tracing.instrument_app(app)  # outermost: a request's span covers the middlewares too
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    app.include_router(health_router(host))

    if host.runtime.settings.metrics_port is None and any(s.name == "identity" for s in host.services):
        from ppa_gateway.ops_web import OPERATOR_JSON

        # no metrics listener of its own: operators read /metrics here once signed in, nobody else
        app.add_api_route("/metrics", exposition, methods=["GET"], include_in_schema=False, dependencies=OPERATOR_JSON)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "home.html", {"title": "ホーム"})

    for svc in host.services:
        for router in svc.routers():
            app.include_router(router)
    if any(s.name == "identity" for s in host.services):
        from ppa_gateway.agency_pages import router as agency_pages
        from ppa_gateway.agency_profile_pages import router as agency_profile_pages
        from ppa_gateway.agency_signup_pages import router as agency_signup_pages

        app.include_router(agency_pages)
        from ppa_gateway.ops_pages import router as ops_pages
        from ppa_gateway.ops_web import NotOperator, refuse

        app.add_exception_handler(NotOperator, refuse)
        app.include_router(ops_pages)
        # the operators' pages rebuild projections in this process: their outcome series start at 0 here
        projections_known([projection_name(spec) for _, spec in projections_of(host)])
        app.include_router(agency_signup_pages)
        app.include_router(agency_profile_pages)
        from ppa_gateway.mypage_pages import router as mypage_pages
        from ppa_gateway.mypage_profile_pages import router as mypage_profile_pages

        app.include_router(mypage_pages)
        app.include_router(mypage_profile_pages)
    if {"identity", "billing"} <= {s.name for s in host.services}:
        from ppa_gateway.billing_pages import router as billing_pages
        from ppa_gateway.customer_import_pages import router as customer_import_pages

        from ppa_gateway.selection_pages import router as selection_pages

        # before /agency/customers/{number} and /agency/invoices/{number}/…, which would take "import", "selection"
        app.include_router(customer_import_pages)
        app.include_router(selection_pages)
        app.include_router(billing_pages)
    if {"identity", "billing", "metering"} <= {s.name for s in host.services}:
        from ppa_gateway.usage_pages import router as usage_pages

        app.include_router(usage_pages)
    if {"identity", "metering"} <= {s.name for s in host.services}:
        from ppa_gateway.owner_energy_pages import router as owner_energy_pages

        app.include_router(owner_energy_pages)
    if {"identity", "metering", "billing"} <= {s.name for s in host.services}:
        from ppa_gateway.owner_invoice_pages import router as owner_invoice_pages

        app.include_router(owner_invoice_pages)
    if {"identity", "linking"} <= {s.name for s in host.services}:
        from ppa_gateway import proxy_login
        from ppa_gateway.linking_pages import router as linking_pages

        from ppa_gateway.owner_agency_links import router as owner_agency_links

        proxy_login.install(app)
        app.include_router(linking_pages)
        app.include_router(owner_agency_links)
    if {"identity", "linking", "billing", "metering"} <= {s.name for s in host.services}:
        from ppa_gateway.agency_owner_link_pages import router as agency_owner_link_pages

        app.include_router(agency_owner_link_pages)
    openapi.install(app, host.runtime.settings.public_url)
    return app
