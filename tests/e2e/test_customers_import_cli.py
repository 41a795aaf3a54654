"""`ppa customers import FILE --agency EMAIL` as an operator runs it: a dry run that writes nothing, then the
import with a progress bar, the bad rows printed with their reasons; both runtimes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import settings_env

from ppa_billing.service import BillingService
from ppa_identity.service import IdentityService
from ppa_runtime.runtime import Runtime

PPA = str(Path(sys.executable).parent / "ppa")
HEADER = "顧客番号,製造番号,氏名,氏名(カナ),契約開始日,契約終了日,基本料金(円),売電単価(円),利用単価(円),メールアドレス"


def ppa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PPA, *args], env=env, capture_output=True, text=True, timeout=180)


async def _listed(settings, email: str) -> list[str]:
    runtime = await Runtime.open(settings)
    try:
        identity, billing = IdentityService(runtime), BillingService(runtime)
        await identity.start()
        await billing.start()
        agency = await identity.agencies.load(email)
        docs, _ = await billing.customers.search(agency.agency_id, per_page=0)
        return [d["customer_number"] for d in docs]
    finally:
        await runtime.close()


async def test_dry_run_previews_then_import_writes_the_good_rows(settings, tmp_path):
    env = settings_env(settings)
    created = ppa(env, "agency", "create", "--email", "bulk@example.jp", "--password", "password123",
                  "--company", "太陽電力")
    assert created.returncode == 0, created.stderr
    rows = [f"11{n:08d},CLI{n:05d},顧客{n:04d},,2024/01/16,,980,16.00,27.00," for n in range(1, 41)]
    rows[9] = "1100000010,CLI00010,,,2024/01/16,,980,16.00,27.00,"  # no name
    path = tmp_path / "customers.csv"
    path.write_bytes(("\r\n".join([HEADER, *rows]) + "\r\n").encode("cp932"))  # as Excel saves it in Japan

    dry = ppa(env, "customers", "import", str(path), "--agency", "bulk@example.jp", "--dry-run")
    assert dry.returncode == 1, dry.stderr
    assert "11行目\t1100000010\tエラー\t氏名: 氏名を入力してください。" in dry.stdout
    assert "2行目\t1100000001\t新規" in dry.stdout
    assert "新規 39件、変更 0件、変更なし 0件、エラー 1件" in dry.stdout
    assert await _listed(settings, "bulk@example.jp") == []

    done = ppa(env, "customers", "import", str(path), "--agency", "bulk@example.jp")
    assert done.returncode == 1 and "取り込み結果: 新規 39件" in done.stdout
    assert "2行目\t1100000001" not in done.stdout  # only the rows that need attention
    assert "取り込み" in done.stderr and "40/40" in done.stderr  # the progress bar
    listed = await _listed(settings, "bulk@example.jp")
    assert len(listed) == 39 and "1100000010" not in listed

    again = ppa(env, "customers", "import", str(path), "--agency", "bulk@example.jp")
    assert "新規 0件、変更 0件、変更なし 39件、エラー 1件" in again.stdout

    unknown = ppa(env, "customers", "import", str(path), "--agency", "nobody@example.jp")
    assert unknown.returncode == 2 and "no agency is registered as nobody@example.jp" in unknown.stderr
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x80\x81\xff")
    refused = ppa(env, "customers", "import", str(garbage), "--agency", "bulk@example.jp")
    assert refused.returncode == 2 and "文字コード" in refused.stderr
