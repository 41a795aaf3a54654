"""`ppa customers import FILE --agency EMAIL [--dry-run]`: the portal's bulk customer import from a shell.

`--dry-run` prints every row's result (新規 / 変更 / 変更なし / エラー with the field and the reason) and writes
nothing; without it the new and changed rows are imported with a progress bar, and the rows that are errors are
printed. Exit status: 0 every row fine, 1 some rows are errors (the others are imported), 2 nothing could be done
(the file cannot be read, no such agency, refused settings).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tqdm import tqdm

from ppa.admin import settings_of


def add_parser(sub: argparse._SubParsersAction) -> None:
    customers = sub.add_parser("customers", help="PPA customers of an agency").add_subparsers(dest="action",
                                                                                             required=True)
    imp = customers.add_parser("import", help="import customers from a CSV of the customer list's columns "
                                              "(UTF-8 with or without BOM, or Shift_JIS)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--agency", required=True, metavar="EMAIL", help="the agency's login e-mail address")
    imp.add_argument("--dry-run", action="store_true", help="print what each row would do; write nothing")
    imp.add_argument("--data-dir", default=None)
    imp.set_defaults(handler=lambda args: asyncio.run(_import(args)))


def _line(view: dict) -> str:
    reasons = " / ".join(view["errors"])
    return f"{view['line']}行目\t{view['customer_number']}\t{view['status_label']}" + (f"\t{reasons}" if reasons else "")


async def _import(args: argparse.Namespace) -> int:
    from ppa_billing.domain.customer_import import ERROR, ImportFileError, STATUS_LABELS, row_view, summary
    from ppa_billing.service import BillingService
    from ppa_identity.service import IdentityService
    from ppa_runtime.runtime import Runtime

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    runtime = await Runtime.open(settings_of(args))
    try:
        identity = IdentityService(runtime)
        await identity.start()
        agency = await identity.agencies.load(args.agency)
        if agency is None:
            print(f"error: no agency is registered as {args.agency}", file=sys.stderr)
            return 2
        billing = BillingService(runtime)
        await billing.start()
        try:
            if args.dry_run:
                rows = await billing.customer_import.preview(agency.agency_id, data)
            else:
                with tqdm(total=None, unit="行", desc="取り込み", file=sys.stderr) as bar:
                    def advance(done: int, total: int) -> None:
                        bar.total = total
                        bar.update(done - bar.n)

                    rows = await billing.customer_import.run(agency.agency_id, data, advance)
        except ImportFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    finally:
        await runtime.close()
    for row in rows:
        if args.dry_run or row.status == ERROR:
            print(_line(row_view(row)))
    counts = summary(rows)
    verb = "取り込み予定（--dry-run: 書き込みなし）" if args.dry_run else "取り込み結果"
    print(f"{verb}: " + "、".join(f"{STATUS_LABELS[k]} {v:,}件" for k, v in counts.items()))
    return 1 if counts[ERROR] else 0
