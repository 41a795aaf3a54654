"""The platform a benchmark measures: `ppa` processes with their own data directory and topic/database
namespace, on a free loopback port; their CPU time and peak memory read from /proc (Linux)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

from ppa_runtime.settings import Settings

PPA = str(Path(sys.executable).parent / "ppa")

# `up`: the whole platform in one process (`ppa up`, the embedded default). `split`: as deployed, the
# gateway API and each service's worker in their own process (so the API and the daily projection can
# use a core each); the embedded runtime shares the SQLite files between them through WAL. `shards`: the groups
# that can run as shards (billing's month list) run as that many, each in a billing worker of its own (split).
TOPOLOGIES = {
    "up": [["up"]],
    "split": [["api", "gateway"], ["worker", "identity"], ["worker", "billing"], ["worker", "metering"]],
}


class Platform:
    """The processes of one topology; `start` may be called again after `stop` (same state)."""

    def __init__(self, runtime: str, synchronous: str, topology: str = "up", prefix: str = "ppa-bench-",
                 shards: int = 1) -> None:
        if shards > 1 and topology != "split":
            raise SystemExit("shards run in workers of their own: use the split topology")
        self.synchronous = synchronous
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.env = {**os.environ, "PPA_DATA_DIR": str(self.dir / "data"), "PPA_NAMESPACE": f"b{uuid.uuid4().hex[:8]}_",
                    "LOG_LEVEL": "WARNING"}
        if runtime == "embedded":
            self.env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
            self.env.pop("MONGODB_URI", None)
        elif not (os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("MONGODB_URI")):
            raise SystemExit("--runtime distributed needs KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI")
        else:  # the processes of one run share a key of its own (Kafka + MongoDB refuse to start without one)
            self.env.setdefault("PPA_SECRET_KEY", secrets.token_urlsafe(48))
        self.env["PPA_CONSUMER_SHARDS"] = f"billing.invoice-list={shards}"
        self.settings = Settings(data_dir=self.env["PPA_DATA_DIR"], namespace=self.env["PPA_NAMESPACE"],
                                 kafka_bootstrap_servers=self.env.get("KAFKA_BOOTSTRAP_SERVERS"),
                                 mongodb_uri=self.env.get("MONGODB_URI"), secret_key=self.env.get("PPA_SECRET_KEY"),
                                 consumer_shards=self.env["PPA_CONSUMER_SHARDS"])
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the API's /metrics on a loopback listener of its own (the public port shows it to operators only)
        self.metrics_port = _free_port()
        commands = [c for c in TOPOLOGIES[topology] if c != ["worker", "billing"] or shards == 1] + [
            ["worker", "billing", "--shard", str(i)] for i in range(shards if shards > 1 else 0)]
        self.commands = [[PPA, *c, *(["--port", str(self.port)] if c[0] in ("up", "api") else
                                      ["--health-host", "127.0.0.1", "--health-port", str(_free_port())])]
                         for c in commands]
        self.procs: list[subprocess.Popen] = []
        self.others: dict[str, int] = {}  # servers the platform uses (FerretDB, Kafka): name → pid, for their CPU
        self._peak_rss: dict[str, float] = {}

    def create_agency(self, email: str, password: str) -> None:
        created = subprocess.run([PPA, "agency", "create", "--email", email, "--password", password,
                                  "--company", "ベンチ電力"], env=self.env, capture_output=True, text=True, check=False)
        if created.returncode != 0:
            raise SystemExit(f"ppa agency create failed: {created.stderr}")

    async def start(self, synchronous: str | None = None) -> None:
        """Start the processes (SQLite `synchronous` as given, else the platform's) and wait for /healthz."""
        self.env["PPA_SQLITE_SYNCHRONOUS"] = synchronous or self.synchronous
        log = (self.dir / "server.log").open("ab")
        self.procs = [subprocess.Popen(c, env=self._env_of(c), stdout=log, stderr=subprocess.STDOUT)
                      for c in self.commands]
        async with httpx.AsyncClient(base_url=self.url) as client:
            for _ in range(1200):
                try:
                    # every process answers: a worker's health port may open after the API's
                    urls = ["/healthz", *self.metrics_urls().values()]
                    if all(r.status_code == 200 for r in await asyncio.gather(*map(client.get, urls))):
                        # e.g. for a sampling profiler: uvx py-spy record -p PID -o profile.txt -f raw
                        pids = ", ".join(f"{' '.join(c[1:3])} {p.pid}" for c, p in zip(self.commands, self.procs))
                        print(f"running: {pids}", file=sys.stderr, flush=True)
                        return
                except httpx.TransportError:
                    pass
                if any(p.poll() is not None for p in self.procs):
                    raise SystemExit(f"the platform exited: {(self.dir / 'server.log').read_text()[-2000:]}")
                await asyncio.sleep(0.1)
        raise SystemExit("the platform did not become ready")

    def _env_of(self, command: list[str]) -> dict[str, str]:
        if command[1] in ("up", "api"):
            return {**self.env, "PPA_METRICS_PORT": str(self.metrics_port)}
        return self.env

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of every running process so far."""
        return sum(self.cpu_each().values())

    def cpu_each(self) -> dict[str, float]:
        """User + system CPU seconds of each running process so far, by command."""
        return {self._name(c): _cpu(p.pid) for c, p in zip(self.commands, self.procs)}

    def cpu_others(self) -> dict[str, float]:
        """CPU seconds of the servers named in `others` so far, with their children's: PostgreSQL's backends
        (one process per connection) count while they run, not only once they exit."""
        return {name: _cpu_tree(pid) for name, pid in self.others.items()}

    def metrics_urls(self) -> dict[str, str]:
        """Each process's Prometheus endpoint, by command: the API's port, a worker's health port."""
        out = {}
        for c in self.commands:
            port = c[c.index("--health-port") + 1] if "--health-port" in c else str(self.metrics_port)
            out[self._name(c)] = f"http://127.0.0.1:{port}/metrics"
        return out

    async def samples(self, name: str) -> dict[str, dict[tuple, float]]:
        """The samples of one metric in each process, by command, then by label values."""
        from prometheus_client.parser import text_string_to_metric_families

        out: dict[str, dict[tuple, float]] = {}
        async with httpx.AsyncClient() as client:
            for process, url in self.metrics_urls().items():
                text = (await client.get(url)).text
                found = out.setdefault(process, {})
                for family in text_string_to_metric_families(text):
                    for s in family.samples:
                        if s.name == name:
                            found[tuple(sorted(s.labels.items()))] = s.value
        return out

    @staticmethod
    def _name(command: list[str]) -> str:
        return " ".join(p for p in (command[1:5] if "--shard" in command else command[1:3]) if p != "--port")

    def sample_rss(self) -> None:
        """Note each running process's peak resident memory (VmHWM) so far."""
        for c, p in zip(self.commands, self.procs):
            if p.poll() is not None:
                continue
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    name = self._name(c)
                    self._peak_rss[name] = max(self._peak_rss.get(name, 0.0), round(int(line.split()[1]) / 1024, 1))

    def peak_rss_mb(self) -> dict[str, float]:
        """Each process's peak resident memory over every start, by command."""
        self.sample_rss()
        return dict(self._peak_rss)

    def disk_mb(self) -> float | None:
        data = self.dir / "data"
        return round(sum(f.stat().st_size for f in data.glob("*")) / 2**20, 1) if data.exists() else None

    def stop(self) -> None:
        self.sample_rss()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far, its waited-for children's included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _cpu_tree(pid: int) -> float:
    """CPU seconds of a process and of its live descendants (each with its own waited-for children's)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += _cpu(p)
        except OSError:
            continue
        todo.extend(parents.get(p, []))
    return total
