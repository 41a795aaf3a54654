"""Security headers on every response of the portal and the API.

The pages load scripts, styles and images from this origin only (static/*.js: no inline script or event handler
attribute, so a name that slipped into markup cannot run), cannot be framed (clickjacking), send no Referer (sign-up
and reset links carry their token in the path), and are never sniffed into another type. HSTS is sent only when the
public URL is https: on plain http it would be ignored, and on a local install it must not pin localhost to https.
The interactive API docs (/docs, Swagger UI from its CDN with an inline start-up script) get a policy of their own.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
HSTS = "max-age=31536000; includeSubDomains"


def security_headers(path: str, https: bool) -> list[tuple[bytes, bytes]]:
    """The headers a response to `path` carries."""
    csp = DOCS_CSP if path == "/docs" or path.startswith("/docs/") else CSP
    headers = [(b"content-security-policy", csp.encode()), (b"x-frame-options", b"DENY"),
               (b"referrer-policy", b"no-referrer"), (b"x-content-type-options", b"nosniff")]
    if https:
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers


class SecurityHeadersMiddleware:
    """Adds `security_headers` to every HTTP response (a header the route set itself is kept)."""

    def __init__(self, app: ASGIApp, public_url: str) -> None:
        self.app = app
        self.https = public_url.lower().startswith("https://")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope["path"], self.https)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)
