"""Helpers for the linking tests: a platform with identity, linking and notify, owners made through
identity's own commands, agency browsers (one cookie jar each), and readers of the linking topics."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from ppa.platform import build_host
from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile
from ppa_gateway.app import create_app
from support import eventually

SEED_OWNER = {
    "family_name": "日見", "given_name": "太郎", "family_name_kana": "ニチコン", "given_name_kana": "タロウ",
    "nickname": "ニチコン タロウ", "postal_code": "1030026", "prefecture": "東京都", "city": "中央区",
    "street": "日本橋兜町", "phone": "0336667945", "info_opt_in": "no",
}
SEED_PRODUCT = {"system_model": "ESS-U4X1", "system_serial": "HC-A10001WN1", "remote_serial": "",
                "install_postal_code": "1030026", "watch_service": "no", "weather_alert_control": "no",
                "early_warning_control": "no", "ai_control": "no"}
PASSWORD = "password123"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def flashes(html: str) -> list[str]:
    """The messages a page shows (flash lines and alerts)."""
    return [m.strip() for m in re.findall(r'class="(?:flash [a-z]+|error)" role="(?:status|alert)">([^<]*)<', html)]


@dataclass
class Platform:
    """identity + linking + notify in one process behind the gateway app."""

    host: object
    app: object
    agencies: dict[str, str]
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def identity(self):
        return self.host.service("identity")

    @property
    def linking(self):
        return self.host.service("linking")

    def browser(self, ip: str = "127.0.0.1") -> httpx.AsyncClient:
        """A new client with its own cookies, seen as coming from `ip`."""
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app, client=(ip, 50000)),
                                   base_url="http://t")
        self.clients.append(client)
        return client

    async def agency(self, who: str, ip: str = "127.0.0.1") -> httpx.AsyncClient:
        """A browser logged in to the agency portal as agency `who` (a or b)."""
        client = self.browser(ip)
        token = csrf_of((await client.get("/agency/login")).text)
        r = await client.post("/agency/login", data={"email": f"{who}@example.jp", "password": PASSWORD,
                                                     "csrf_token": token})
        assert r.status_code == 303, r.text
        return client

    async def owner_browser(self, email: str, ip: str = "127.0.0.1") -> httpx.AsyncClient:
        """A browser logged in to My Page as the owner."""
        client = self.browser(ip)
        token = csrf_of((await client.get("/mypage/login")).text)
        r = await client.post("/mypage/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303, r.text
        return client

    async def register_owner(self, email: str | None = None, products: int = 1, **fields: str):
        """An owner registered through identity's own command, with products; returns the Owner."""
        email = email or f"owner-{uuid.uuid4().hex[:8]}@example.jp"
        owners = self.identity.owners
        owner = await owners.register({**SEED_OWNER, **fields, "email": email}, PASSWORD, PASSWORD,
                                      f"198.51.100.{len(self.clients) % 200 + 1}")
        for i in range(products):
            serial = SEED_PRODUCT["system_serial"] if i == 0 else f"HC-A1000{i + 1}WN1"
            await owners.register_product(owner.owner_id, {**SEED_PRODUCT, "system_serial": serial})
        return await owners.load(owner.owner_id)

    async def set_agencies(self, owner_id: str, *emails: str):
        """The owner's allowed agency e-mails become exactly these (お客様情報 edit through identity)."""
        owners = self.identity.owners
        owner = await owners.load(owner_id)
        new = owner.profile.model_copy(update={"agency_emails": tuple(emails)})
        return await owners.change_profile(owner_id, new)

    async def link_of(self, owner_id: str, who: str = "a", status: str | None = None):
        """The current link between the owner and agency `who`, once linking has it (in `status`, if given)."""
        async def check():
            pair = await self.linking.links.load(self.agencies[who], owner_id)
            current = pair.current
            if current is not None and (status is None or current.status.value == status):
                return current
            return None

        return await eventually(check)


@asynccontextmanager
async def platform(runtime, agencies: tuple[str, ...] = ("a", "b")) -> AsyncIterator[Platform]:
    host = build_host(runtime, ["identity", "linking", "notify"])
    app = create_app(host)
    await host.start()
    p = Platform(host, app, {})
    try:
        identity = host.service("identity")
        for who in agencies:
            p.agencies[who] = await identity.create_agency(f"{who}@example.jp", PASSWORD,
                                                           AgencyProfile(company=f"{who}電力"))
        yield p
    finally:
        for client in p.clients:
            await client.aclose()
        await host.stop()


async def read_topic(runtime, topic: str, until, timeout: float = 45) -> list[Envelope]:
    """Every event on a topic (from the start) once `until(events)` holds."""
    sub = await runtime.bus.subscribe(f"test-read-{uuid.uuid4().hex[:8]}", [topic])
    out: list[Envelope] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not until(out):
            if loop.time() > deadline:
                raise AssertionError(f"events on {topic} not seen in time: {[e.type for e in out]}")
            out += [r.envelope for r in await sub.fetch(timeout=0.5)]
    finally:
        await sub.close()
    return out


def maildir_messages(settings) -> list:
    """Every mail notify wrote to the Maildir (no SMTP configured), parsed."""
    import email
    from email import policy

    folder = settings.data_dir / "maildir" / "new"
    if not folder.exists():
        return []
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(folder.iterdir())]


async def mail_to(settings, recipient: str, subject_part: str):
    """The first Maildir mail to `recipient` whose subject contains `subject_part` (waits for it)."""
    async def check():
        for message in maildir_messages(settings):
            if message["To"] == recipient and subject_part in message["Subject"]:
                return message
        return None

    return await eventually(check)


def form_fields(html: str, action: str) -> list[tuple[str, str]]:
    """The (name, value) pairs a browser would send from the form posting to `action` (no buttons)."""
    from html.parser import HTMLParser

    class Fields(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.inside = False
            self.pairs: list[tuple[str, str]] = []
            self.select: str | None = None
            self.textarea: str | None = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "form":
                self.inside = a.get("action") == action
            if not self.inside:
                return
            if tag == "input" and a.get("name") and a.get("type") not in ("submit", "button"):
                if a.get("type") in ("radio", "checkbox") and "checked" not in a:
                    return
                self.pairs.append((a["name"], a.get("value") or ""))
            elif tag == "select":
                self.select = a.get("name")
            elif tag == "option" and self.select and "selected" in a:
                self.pairs.append((self.select, a.get("value") or ""))
            elif tag == "textarea":
                self.textarea = a.get("name")
                self.pairs.append((self.textarea or "", ""))

        def handle_data(self, data):
            if self.textarea:
                name, value = self.pairs[-1]
                self.pairs[-1] = (name, value + data)

        def handle_endtag(self, tag):
            if tag == "form":
                self.inside = False
            elif tag == "select":
                self.select = None
            elif tag == "textarea":
                self.textarea = None

    parser = Fields()
    parser.feed(html)
    return parser.pairs
