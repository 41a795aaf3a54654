"""The portal's import of a customer file: previewed on upload, kept until the agency confirms it, then run in
the background with its progress stored, so the page can show how far a large file has got.

A job's document holds the file's text (a 100,000-row file is about 11 MB, under a MongoDB document's 16 MB) from
the preview until the import ends. Starting is a conditional update from `previewed` to `running`, so a double
click or a second tab cannot run one file twice. A process that stops mid-import leaves the job `running`: what
was written stays written, and importing the same file again completes it (every row already written is
unchanged then), which the progress page says.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import structlog

from ppa_billing.customer_import import CustomerImport
from ppa_billing.domain.customer_import import ERROR, ImportFileError, ImportRow, decode, row_view, summary
from ppa_runtime.docstore import DocStore

JOBS = "customer_import_jobs"
# the file is kept in one document until it is imported: under a MongoDB document's 16 MB with room to spare
MAX_KEPT_BYTES = 15 * 1024 * 1024
TOO_LARGE = ("画面から取り込めるファイルは15MBまでです。ファイルを分けるか、コマンド（ppa customers import）で"
             "取り込んでください。")
log = structlog.get_logger(__name__)


class ImportJobs:
    """Previewed and running customer imports, each visible to its own agency only."""

    def __init__(self, docs: DocStore, importer: CustomerImport) -> None:
        self.jobs = docs.collection(JOBS)
        self.importer = importer
        self._tasks: set[asyncio.Task] = set()

    async def preview(self, agency_id: str, data: bytes, filename: str) -> tuple[str, list[ImportRow]]:
        """Judge every row (ImportFileError for an unreadable file) and keep the file for `start`."""
        if len(data) > MAX_KEPT_BYTES:
            raise ImportFileError(TOO_LARGE)
        rows = await self.importer.preview(agency_id, data)
        job_id = secrets.token_urlsafe(16)
        await self.jobs.insert({"_id": job_id, "agency_id": agency_id, "filename": filename[:200],
                                "text": decode(data), "status": "previewed", "total": len(rows), "done": 0,
                                "counts": summary(rows), "created_at": time.time()})
        return job_id, rows

    async def get(self, agency_id: str, job_id: str) -> dict[str, Any] | None:
        job = await self.jobs.get(job_id)
        if job is None or job["agency_id"] != agency_id:
            return None
        job.pop("text", None)
        return job

    async def start(self, agency_id: str, job_id: str) -> bool:
        """Run the previewed job in the background; False when it is not this agency's previewed job."""
        job = await self.jobs.get(job_id)
        if job is None or job["agency_id"] != agency_id or job["status"] != "previewed":
            return False
        if not await self.jobs.update({"_id": job_id, "agency_id": agency_id, "status": "previewed"},
                                      {"$set": {"status": "running", "started_at": time.time()}}):
            return False
        task = asyncio.create_task(self._run(agency_id, job_id, job["text"].encode()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, agency_id: str, job_id: str, data: bytes) -> None:
        async def progress(done: int, total: int) -> None:
            await self.jobs.update({"_id": job_id}, {"$set": {"done": done, "total": total}})

        try:
            rows = await self.importer.run(agency_id, data, progress)
        except Exception as exc:  # recorded on the job for the page; what was written stays, a re-import completes
            log.exception("customer_import_failed", job_id=job_id)
            await self.jobs.update({"_id": job_id}, {"$set": {"status": "failed", "error": type(exc).__name__},
                                                     "$unset": {"text": ""}})
            return
        errors = [row_view(r) for r in rows if r.status == ERROR]
        await self.jobs.update({"_id": job_id}, {"$set": {
            "status": "done", "counts": summary(rows), "errors": errors[:5000], "finished_at": time.time()},
            "$unset": {"text": ""}})
        log.info("customer_import_done", job_id=job_id, rows=len(rows), errors=len(errors))

    async def wait(self) -> None:
        """Until every running import of this process has ended (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
