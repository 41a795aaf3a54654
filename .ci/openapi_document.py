"""Print the OpenAPI document `ppa up` serves at /openapi.json, without starting a server (for the lint in CI).

The app is built on an embedded runtime in a throw-away data dir; the document does not depend on the runtime.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from ppa.platform import build_host
from ppa_gateway.app import create_app
from ppa_runtime.runtime import Runtime
from ppa_runtime.settings import Settings


async def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data_dir=Path(data), kafka_bootstrap_servers=None, mongodb_uri=None)
        runtime = await Runtime.open(settings)
        try:
            json.dump(create_app(build_host(runtime)).openapi(), sys.stdout, ensure_ascii=False, indent=1)
        finally:
            await runtime.close()


asyncio.run(main())
