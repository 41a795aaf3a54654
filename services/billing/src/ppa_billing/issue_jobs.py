"""請求書発行 of many invoices at once (the list's checkboxes): confirmed once, then issued one by one in the
background with the progress stored.

Each invoice is issued by `Issuing.issue`, exactly as the 請求書発行 button does: its own `InvoiceIssued` event
with its mail request, appended at version 0 of the invoice's stream. So a job that stops part-way (a crash, a
restart) is resumed by running it again from the start: an invoice issued already is refused by its stream
(`この請求は既に発行されています`) and counted as done, and its mail, recorded with the first issue only, is never
requested twice. A running job records a heartbeat after each invoice; the progress page resumes a job whose
heartbeat stopped (`STALE_SECONDS`), claiming it by a conditional update so that one process resumes it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from decimal import Decimal
from typing import Any

import structlog

from ppa_billing.invoices import InvoiceNotFound
from ppa_billing.issuing import InvoiceStateError, Issuing
from ppa_runtime.docstore import DocStore

JOBS = "invoice_issue_jobs"
STALE_SECONDS = 15.0
ALREADY_ISSUED = "この請求は既に発行されています。"
log = structlog.get_logger(__name__)


class IssueJobs:
    """Bulk issues of one agency's invoices, each visible to its own agency only."""

    def __init__(self, docs: DocStore, issuing: Issuing) -> None:
        self.jobs = docs.collection(JOBS)
        self.issuing = issuing
        self._tasks: dict[str, asyncio.Task] = {}

    async def prepare(self, agency_id: str, invoices: list[dict[str, Any]]) -> dict[str, Any]:
        """A job for the drafts among `invoices` (the caller's own list rows), to confirm: the count, the total
        and who is mailed. Issued and voided ones are named as left out."""
        drafts = [i for i in invoices if i.get("status") == "draft"]
        job = {"_id": secrets.token_urlsafe(16), "agency_id": agency_id, "status": "confirming",
               "numbers": [i["invoice_number"] for i in drafts], "total": len(drafts), "done": 0,
               "amount": str(sum((Decimal(i["total"]) for i in drafts), Decimal(0))),
               "left_out": len(invoices) - len(drafts), "issued": 0, "already": 0, "failed": [],
               "created_at": time.time()}
        await self.jobs.insert(job)
        return job

    async def get(self, agency_id: str, job_id: str) -> dict[str, Any] | None:
        job = await self.jobs.get(job_id)
        return job if job is not None and job["agency_id"] == agency_id else None

    async def start(self, agency_id: str, job_id: str) -> bool:
        """Start a confirmed job once (a second click finds it running); False when it is not this agency's."""
        if await self.get(agency_id, job_id) is None:
            return False
        if await self.jobs.update({"_id": job_id, "agency_id": agency_id, "status": "confirming"},
                                  {"$set": {"status": "running", "beat": time.time()}}):
            self._launch(agency_id, job_id)
        return True

    async def resume_if_stalled(self, agency_id: str, job_id: str) -> bool:
        """Resume a running job whose heartbeat stopped (its process ended); True when this call resumed it."""
        job = await self.get(agency_id, job_id)
        if job is None or job["status"] != "running" or job_id in self._tasks:
            return False
        if time.time() - job.get("beat", 0) < STALE_SECONDS:
            return False
        if not await self.jobs.update({"_id": job_id, "status": "running", "beat": job.get("beat")},
                                      {"$set": {"beat": time.time()}}):
            return False  # another process resumed it first
        log.info("invoice_issue_job_resumed", job_id=job_id, done=job["done"], total=job["total"])
        self._launch(agency_id, job_id)
        return True

    def _launch(self, agency_id: str, job_id: str) -> None:
        task = asyncio.create_task(self._run(agency_id, job_id))
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    async def _run(self, agency_id: str, job_id: str) -> None:
        job = await self.get(agency_id, job_id)
        issued, already, failed = 0, 0, []
        for done, number in enumerate(job["numbers"], start=1):
            try:
                await self.issuing.issue(agency_id, number)
                issued += 1
            except InvoiceStateError as exc:
                if str(exc) == ALREADY_ISSUED:  # issued before a restart (or by someone else): its mail went then
                    already += 1
                else:
                    failed.append({"invoice_number": number, "reason": str(exc)})
            except InvoiceNotFound:
                failed.append({"invoice_number": number, "reason": "この請求は見つかりません。"})
            await self.jobs.update({"_id": job_id}, {"$set": {"done": done, "beat": time.time()}})
        await self.jobs.update({"_id": job_id}, {"$set": {
            "status": "done", "issued": issued, "already": already, "failed": failed, "finished_at": time.time()}})
        log.info("invoice_issue_job_done", job_id=job_id, issued=issued, already=already, failed=len(failed))

    async def wait(self) -> None:
        """Until every job running in this process has ended (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
