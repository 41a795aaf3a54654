"""Issuing invoices: freeze a draft into revision 1 with a stored PDF mailed to the customer; a usage change
after issue makes revision 2, 3… (a new document each, never a silent edit); voiding is an event too. A voided
invoice may be issued again: the current draft becomes the next revision (第N版), with its own PDF and a
【訂正】 mail, and the void ends.

One stream per invoice (`invoice:<agency>:<number>`) is the truth; `issued_invoices` and
`invoice_revisions` are its projections (applied inline and by the consumer, idempotent by version),
`invoice_documents` holds the PDFs (insert-only, written before the event that names them).
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import structlog

from ppa_billing.agency_settings import AgencySettings
from ppa_billing.domain.settings import missing_for_issue
from ppa_billing.domain.billing_month import BillingPeriod, InvalidBillingMonth, parse_invoice_number, period_of
from ppa_billing.domain.invoice import DailyUsage, RoundingMode
from ppa_billing.formatting import yen
from ppa_billing.invoices import ISSUED, InvoiceNotFound, Invoices, figures_of
from ppa_billing.documents import InvoiceDocument
from ppa_contracts import Envelope, Payload
from ppa_contracts.billing import REISSUED_AFTER_VOID as REISSUED
from ppa_contracts.billing import InvoiceFigures, InvoiceIssued, InvoiceIssuer, InvoiceRevised, InvoiceVoided
from ppa_contracts.notify import EmailAttachment, EmailRequested, EmailTemplate
from ppa_contracts.topics import BILLING_INVOICE
from ppa_runtime.consumer import ConsumerSpec, apply_versioned
from ppa_runtime.docstore import DocStore, DuplicateKey
from ppa_runtime.eventstore import ConcurrencyConflict

log = structlog.get_logger(__name__)
JST = timezone(timedelta(hours=9), "JST")
REVISIONS = "invoice_revisions"
DOCUMENTS = "invoice_documents"
ATTEMPTS = 5


class InvoiceStateError(Exception):
    """The invoice is not in a state that allows the action (issued twice, voided twice, …)."""


def stream_of(agency_id: str, number: str) -> str:
    return f"invoice:{agency_id}:{number}"


def today_jst() -> date:
    return datetime.now(JST).date()


def _fold(history: list[Envelope]) -> tuple[InvoiceIssued | InvoiceRevised | None, InvoiceVoided | None]:
    """The latest revision event and the void event, if any."""
    latest: InvoiceIssued | InvoiceRevised | None = None
    voided: InvoiceVoided | None = None
    for env in history:
        event = env.payload()
        if isinstance(event, (InvoiceIssued, InvoiceRevised)):
            latest = event
            voided = None  # only a re-issue follows a void
        elif isinstance(event, InvoiceVoided):
            voided = event
    return latest, voided


def _frozen_customer(f: InvoiceFigures) -> dict[str, Any]:
    """The prices and contract a revision keeps: only daily usage may change an issued invoice."""
    data = f.model_dump(mode="json")
    return {k: data[k] for k in ("name", "base_fee", "sell_unit_price", "usage_unit_price", "contract_start",
                                 "contract_end")}


class Issuing:
    """Issue, revise and void invoices; serve their PDFs."""

    def __init__(self, service, docs: DocStore, invoices: Invoices, settings: AgencySettings) -> None:
        self.service = service
        self.invoices = invoices
        self.settings = settings
        self.issued = docs.collection(ISSUED)
        self.revisions = docs.collection(REVISIONS)
        self.documents = docs.collection(DOCUMENTS)

    async def setup(self) -> None:
        await self.issued.ensure_index("agency_id", "month", "customer_number")
        await self.issued.ensure_index("agency_id", "customer_number", "period_start")
        await self.revisions.ensure_index("agency_id", "invoice_number")
        await self.documents.ensure_index("agency_id", "invoice_number")

    async def _issuer(self, agency_id: str) -> InvoiceIssuer:
        s = await self.settings.get(agency_id)
        return InvoiceIssuer(name=s.issuer_name, address=s.issuer_address, registration_number=s.registration_number)

    async def _store_pdf(self, agency_id: str, number: str, revision: int, doc: InvoiceDocument) -> tuple[str, bytes]:
        from ppa_billing.pdf import render_invoice_pdf  # loaded when the first invoice is rendered

        pdf = await asyncio.to_thread(render_invoice_pdf, doc)
        document_id = uuid.uuid4().hex
        # Stored before the event that names it: a crash in between leaves an unused document, never a hole.
        await self.documents.insert({"_id": document_id, "agency_id": agency_id, "invoice_number": number,
                                     "revision": revision, "voided": doc.voided_on is not None,
                                     "created_at": datetime.now(UTC).isoformat(), "size": len(pdf),
                                     "pdf": base64.b64encode(pdf).decode()})
        return document_id, pdf

    async def _mail(self, agency_id: str, number: str, revision: int, recipient: str | None, f: InvoiceFigures,
                    issuer: InvoiceIssuer, pdf: bytes, voided: bool = False) -> list[Payload]:
        """The mail request recorded with the revision or the void (none when there is no address to mail)."""
        if not recipient:
            return []
        parsed_month, _ = parse_invoice_number(number)
        suffix, template = ("void", EmailTemplate.INVOICE_VOIDED) if voided else (f"r{revision}",
                                                                                  EmailTemplate.INVOICE_ISSUED)
        return [EmailRequested(
            message_id=f"invoice-{agency_id}-{number}-{suffix}", template=template, recipient=recipient,
            context={"customer_name": f.name, "invoice_number": number, "month": str(parsed_month),
                     "total": yen(f.total), "revision": revision, "issuer_name": issuer.name},
            attachments=[EmailAttachment.of(f"invoice_{number}_{suffix}.pdf", "application/pdf", pdf)])]

    async def check(self, agency_id: str, number: str, today: date | None = None) -> dict[str, Any]:
        """What issuing the invoice now would do, or why it cannot: the revision it makes (1, or the next one
        after a void), who is mailed, and the problems (blank issuer fields in 事業者設定, a month not closed,
        an invoice already issued, a deleted customer). Changes nothing."""
        try:
            month, customer_number = parse_invoice_number(number)
        except InvalidBillingMonth as exc:
            raise InvoiceNotFound(number) from exc
        history = await self.service.events.read(stream_of(agency_id, number))
        latest, voided = _fold(history)
        customer = await self.invoices.customers.get(f"{agency_id}:{customer_number}")
        if customer is None and latest is None:
            raise InvoiceNotFound(number)
        settings = await self.settings.get(agency_id)
        period = period_of(month, settings.closing_day)
        problems: list[str] = []
        if latest is not None and voided is None:
            problems.append("この請求は既に発行されています。")
        elif customer is None:
            problems.append("顧客が削除されているため、この請求は再発行できません。")
        missing = missing_for_issue(settings)
        if missing:
            problems.append(f"請求書を発行する前に、事業者設定で{'・'.join(missing)}を登録してください。")
        if period.end >= (today or today_jst()):
            problems.append(f"利用月 {month} の請求は、締め日（{period.end:%Y/%m/%d}）の翌日から発行できます。")
        return {"month": month, "customer_number": customer_number, "customer": customer, "period": period,
                "settings": settings, "history": history, "latest": latest,
                "revision": 1 if latest is None else latest.revision + 1, "reissue": latest is not None,
                "emailed_to": (customer or {}).get("email") or None, "missing_settings": missing,
                "problems": problems}

    async def issue(self, agency_id: str, number: str, today: date | None = None) -> dict[str, Any]:
        """Freeze the draft into revision 1 (or, after a void, into the next revision), store its PDF and mail it;
        refuses a second issue, blank issuer fields and a month not closed yet."""
        plan = await self.check(agency_id, number, today)
        if plan["problems"]:
            raise InvoiceStateError(plan["problems"][0])
        customer, period, settings = plan["customer"], plan["period"], plan["settings"]
        customer_number, month, revision = plan["customer_number"], plan["month"], plan["revision"]
        days = await self.invoices.versioned_rows(agency_id, customer_number, period.start, period.end)
        figures = figures_of(customer, period, [row for row, _ in days.values()], settings.rounding,
                             settings.tax_rate_percent)
        issuer = await self._issuer(agency_id)
        issued_on = today or today_jst()
        document_id, pdf = await self._store_pdf(agency_id, number, revision, InvoiceDocument(
            number, customer_number, str(month), revision, issued_on, issuer, figures))
        email = plan["emailed_to"]
        versions = {d.isoformat(): v for d, (_, v) in days.items()}
        common = dict(agency_id=agency_id, invoice_number=number, customer_number=customer_number, month=str(month),
                      revision=revision, document_id=document_id, figures=figures, issuer=issuer, emailed_to=email,
                      usage_versions=versions)
        event = (InvoiceIssued(**common) if not plan["reissue"] else
                 InvoiceRevised(**common, previous_total=plan["latest"].figures.total, reason=REISSUED))
        mail = await self._mail(agency_id, number, revision, email, figures, issuer, pdf)
        expected = len(plan["history"])
        try:
            await self.service.record(stream_of(agency_id, number), expected, event, *mail, subject=number)
        except ConcurrencyConflict as exc:
            raise InvoiceStateError("この請求は既に発行されています。") from exc
        await self.apply(event, expected + 1, datetime.now(UTC))
        log.info("invoice_issued", invoice_number=number, revision=revision, document_id=document_id,
                 reissue=plan["reissue"])
        # A usage change that raced the issue is caught here (the consumer catches any later one).
        await self.reconcile(agency_id, number)
        return await self.invoices.one(agency_id, number)

    async def reconcile(self, agency_id: str, number: str) -> bool:
        """Make a new revision when the days of an issued invoice changed; True when one was made."""
        for _ in range(ATTEMPTS):
            try:
                return await self._reconcile_once(agency_id, number)
            except ConcurrencyConflict:
                continue  # someone else appended: read again and decide again
        raise ConcurrencyConflict(stream_of(agency_id, number), -1)

    async def _reconcile_once(self, agency_id: str, number: str) -> bool:
        stream = stream_of(agency_id, number)
        history = await self.service.events.read(stream)
        latest, voided = _fold(history)
        if latest is None or voided is not None:
            return False
        frozen = latest.figures
        period = BillingPeriod(frozen.period_start, frozen.period_end)
        # Only days newer than the issued ones count: a projection being rebuilt (older or missing days)
        # never revises an invoice, and redelivered or out-of-order events change nothing.
        versions = dict(latest.usage_versions)
        rows = {d.date: DailyUsage(d.date, d.generation_kwh, d.sold_kwh, d.usage_kwh) for d in frozen.daily}
        newer = {day: (row, version) for day, (row, version) in (await self.invoices.versioned_rows(
            agency_id, latest.customer_number, period.start, period.end)).items()
            if version > versions.get(day.isoformat(), 0)}
        if not newer:
            return False
        for day, (row, version) in newer.items():
            rows[day] = row
            versions[day.isoformat()] = version
        figures = figures_of(_frozen_customer(frozen), period, list(rows.values()), RoundingMode(frozen.rounding),
                             frozen.tax_rate_percent)
        if figures == frozen:
            return False
        revision = latest.revision + 1
        issuer = await self._issuer(agency_id) if (await self.settings.get(agency_id)).issuer_name else latest.issuer
        document_id, pdf = await self._store_pdf(agency_id, number, revision, InvoiceDocument(
            number, latest.customer_number, latest.month, revision, today_jst(), issuer, figures))
        customer = await self.invoices.customers.get(f"{agency_id}:{latest.customer_number}")
        email = (customer or {}).get("email") or latest.emailed_to
        event = InvoiceRevised(agency_id=agency_id, invoice_number=number, customer_number=latest.customer_number,
                               month=latest.month, revision=revision, document_id=document_id, figures=figures,
                               issuer=issuer, previous_total=frozen.total, emailed_to=email,
                               usage_versions=versions)
        mail = await self._mail(agency_id, number, revision, email, figures, issuer, pdf)
        await self.service.record(stream, len(history), event, *mail, subject=number)
        await self.apply(event, len(history) + 1, datetime.now(UTC))
        log.info("invoice_revised", invoice_number=number, revision=revision, document_id=document_id)
        return True

    async def on_days_changed(self, agency_id: str, days: dict[str, set[str]]) -> None:
        """After some days of an agency's customers changed (customer number → ISO dates): revise every issued
        invoice whose period holds one. One query for the lot: most customers have no issued invoice there."""
        isos = {number: sorted(changed) for number, changed in days.items() if changed}
        if not isos:
            return
        covering = await self.issued.find({"agency_id": agency_id, "customer_number": {"$in": sorted(isos)},
                                           "period_start": {"$lte": max(i[-1] for i in isos.values())},
                                           "period_end": {"$gte": min(i[0] for i in isos.values())}})
        for doc in sorted(covering, key=lambda d: d["invoice_number"]):
            if any(doc["period_start"] <= d <= doc["period_end"] for d in isos.get(doc["customer_number"], ())):
                await self.reconcile(agency_id, doc["invoice_number"])

    async def void(self, agency_id: str, number: str, reason: str = "") -> dict[str, Any]:
        """Void an issued invoice (its last revision, stamped 取消, becomes the current document)."""
        stream = stream_of(agency_id, number)
        history = await self.service.events.read(stream)
        latest, voided = _fold(history)
        if latest is None:
            await self.invoices.one(agency_id, number)  # 404 when there is no such invoice at all
            raise InvoiceStateError("発行されていない請求は取り消せません。")
        if voided is not None:
            raise InvoiceStateError("この請求は既に取り消されています。")
        document_id, pdf = await self._store_pdf(agency_id, number, latest.revision, InvoiceDocument(
            number, latest.customer_number, latest.month, latest.revision, today_jst(), latest.issuer,
            latest.figures, voided_on=today_jst()))
        event = InvoiceVoided(agency_id=agency_id, invoice_number=number, customer_number=latest.customer_number,
                              month=latest.month, revision=latest.revision, document_id=document_id,
                              reason=reason.strip()[:200])
        # whoever was mailed the invoice is told, with the 取消 PDF (the reason stays internal)
        mail = await self._mail(agency_id, number, latest.revision, latest.emailed_to, latest.figures, latest.issuer,
                                pdf, voided=True)
        try:
            await self.service.record(stream, len(history), event, *mail, subject=number)
        except ConcurrencyConflict as exc:
            raise InvoiceStateError(
                "この請求は他の操作で更新されました。画面を更新してから、もう一度操作してください。") from exc
        await self.apply(event, len(history) + 1, datetime.now(UTC))
        log.info("invoice_voided", invoice_number=number, revision=latest.revision)
        return await self.invoices.one(agency_id, number)

    async def history(self, agency_id: str, number: str) -> list[dict[str, Any]]:
        """Every revision of an issued invoice, oldest first."""
        docs = await self.revisions.find({"agency_id": agency_id, "invoice_number": number}, sort=[("revision", 1)])
        return [{k: d.get(k) for k in ("revision", "kind", "document_id", "at", "total", "previous_total")}
                for d in docs]

    async def pdf_bytes(self, agency_id: str, document_id: str) -> bytes:
        doc = await self.documents.get(document_id)
        if doc is None or doc["agency_id"] != agency_id:
            raise InvoiceNotFound(document_id)
        return base64.b64decode(doc["pdf"])

    async def pdf(self, agency_id: str, number: str, revision: int | None = None) -> tuple[bytes, str]:
        """The PDF of a revision (the current document when None: the 取消 copy once voided)."""
        issued = await self.issued.get(f"{agency_id}:{number}")
        if issued is None:
            raise InvoiceNotFound(number)
        if revision is None:
            document_id = issued.get("void_document_id") or issued["document_id"]
            suffix = "_voided" if issued.get("void_document_id") else f"_r{issued['revision']}"
        else:
            rev = await self.revisions.get(f"{agency_id}:{number}:r{revision}")
            if rev is None:
                raise InvoiceNotFound(number)
            document_id, suffix = rev["document_id"], f"_r{revision}"
        return await self.pdf_bytes(agency_id, document_id), f"invoice_{number}{suffix}.pdf"

    async def apply(self, event: Payload, version: int, at: datetime) -> None:
        """Apply one invoice event to the projections (inline and from the consumer alike)."""
        doc_id = f"{event.agency_id}:{event.invoice_number}"
        if isinstance(event, (InvoiceIssued, InvoiceRevised)):
            figures = event.figures.model_dump(mode="json")
            kind = ("issued" if isinstance(event, InvoiceIssued) else
                    "reissued" if event.reason == REISSUED else "revised")
            try:
                await self.revisions.insert({
                    "_id": f"{doc_id}:r{event.revision}", "agency_id": event.agency_id,
                    "invoice_number": event.invoice_number, "revision": event.revision, "kind": kind,
                    "document_id": event.document_id, "at": at.isoformat(), "total": figures["total"],
                    "previous_total": str(event.previous_total) if isinstance(event, InvoiceRevised) else None})
            except DuplicateKey:
                pass
            fields = {"agency_id": event.agency_id, "invoice_number": event.invoice_number,
                      "customer_number": event.customer_number, "month": event.month, "status": "issued",
                      "revision": event.revision, "document_id": event.document_id, "figures": figures,
                      "period_start": figures["period_start"], "period_end": figures["period_end"],
                      "emailed_to": event.emailed_to, f"{'issued' if kind == 'reissued' else kind}_at": at.isoformat()}
            update: dict[str, Any] = {"$set": fields}
            if kind == "reissued":  # the void is over: the new revision is the current document
                update["$unset"] = {"voided_at": "", "void_document_id": "", "void_reason": ""}
            await apply_versioned(self.issued, doc_id, version, update)
        elif isinstance(event, InvoiceVoided):
            await apply_versioned(self.issued, doc_id, version, {"$set": {
                "status": "voided", "voided_at": at.isoformat(), "void_document_id": event.document_id,
                "void_reason": event.reason}})

    async def _on_event(self, event: Payload, env: Envelope) -> None:
        await self.apply(event, env.aggregateversion or 0, env.time)

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="billing.invoices", name=ISSUED, topics=[BILLING_INVOICE], collections=[ISSUED, REVISIONS],
            setup=self.setup, dedupe=False,
            handlers={cls.event_type(): self._on_event for cls in (InvoiceIssued, InvoiceRevised, InvoiceVoided)})
