#!/usr/bin/env bash
# Start/stop a real FerretDB (MongoDB wire protocol) server on loopback for CI,
# backed by its SQLite handler (no PostgreSQL, no Docker).
#
#   bash .ci/ferretdb.sh start <workdir>   # prints MONGODB_URI=... as last line
#   bash .ci/ferretdb.sh stop  <workdir>
#   bash .ci/ferretdb.sh restart <workdir>  # after stop: the same server again,
#                                           # same port, its data kept (outage tests)
#
# The binary is built once with the go tool (Go module proxy only) and cached
# under ~/.cache/ppa-ci/ferretdb-<version>/bin; later runs do not rebuild.
# Each `start` uses a fresh, empty data directory under <workdir>; `stop` keeps it for `restart`.
#
# Environment overrides:
#   FERRETDB_VERSION   (default v1.24.2 - the newest v1.24.x on the proxy)
#   PPA_CI_CACHE       (default ~/.cache/ppa-ci)
#   FERRETDB_START_TIMEOUT seconds (default 60)
#   FERRETDB_LOG_LEVEL     debug|info|warn|error (default error)
set -euo pipefail

FERRETDB_VERSION="${FERRETDB_VERSION:-v1.24.2}"
CACHE_ROOT="${PPA_CI_CACHE:-$HOME/.cache/ppa-ci}"
START_TIMEOUT="${FERRETDB_START_TIMEOUT:-60}"
# At "warn" FerretDB dumps every error reply (e.g. each expected duplicate-key
# error) as ~150 log lines; "error" keeps the log to real problems.
LOG_LEVEL="${FERRETDB_LOG_LEVEL:-error}"
BIN_DIR="$CACHE_ROOT/ferretdb-$FERRETDB_VERSION/bin"
BIN="$BIN_DIR/ferretdb"

die() { echo "ferretdb.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop|restart <workdir>"; }

# ---------------------------------------------------------------- build
# build_from <module-src-dir> <output-binary> <env assignments...>
build_from() {
    local src="$1" out="$2"
    shift 2
    local copy="$CACHE_ROOT/ferretdb-$FERRETDB_VERSION/src"
    # Explicit && chain: this runs inside an `if`, where set -e is off.
    rm -rf "$copy" &&
        cp -R "$src" "$copy" &&
        chmod -R u+w "$copy" &&
        echo "$FERRETDB_VERSION" >"$copy/build/version/version.txt" &&
        echo "ppa-ci" >"$copy/build/version/package.txt" &&
        (cd "$copy" && env "$@" go build -trimpath -buildvcs=false -o "$out" ./cmd/ferretdb) &&
        "$out" --version  # smoke test before the binary is cached
}

build() {
    [ -x "$BIN" ] && return 0
    command -v go >/dev/null 2>&1 || die "go not found in PATH"
    local root="$CACHE_ROOT/ferretdb-$FERRETDB_VERSION"
    mkdir -p "$BIN_DIR"
    # Serialise concurrent first runs (the lock is released on exit too).
    exec 9>"$root/.lock"
    flock 9
    if [ -x "$BIN" ]; then
        exec 9>&-
        return 0
    fi
    local tmpbin="$BIN_DIR.tmp.$$" log="$root/build.log"
    rm -rf "$tmpbin"
    mkdir -p "$tmpbin"
    : >"$log"
    # `go install pkg@version` cannot be used: it always asks the proxy for the
    # module's version list (to check deprecation), and that request is
    # refused (403) on this network. So: download the exact module version,
    # then build ./cmd/ferretdb inside it as the main module (its own go.sum
    # pins every dependency). modernc.org/sqlite is pure Go: no CGO needed.
    # The module zip lacks the generated build/version/version.txt, without
    # which the binary panics at start-up, so we build from a copy of the
    # source with that file written in.
    local goenv=(
        GOPATH="$root/go"
        GOMODCACHE="$root/go/pkg/mod"
        GOCACHE="$root/go/cache"
        GOFLAGS=-modcacherw
        GOTOOLCHAIN=local
        CGO_ENABLED=0
    )
    local src
    if ! src="$(cd "$root" && env "${goenv[@]}" go mod download -json \
                "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" 2>>"$log" \
                | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" \
       || [ ! -d "$src/cmd/ferretdb" ] \
       || ! build_from "$src" "$tmpbin/ferretdb" "${goenv[@]}" >>"$log" 2>&1; then
        tail -n 40 "$log" >&2 || true
        rm -rf "$tmpbin"
        die "build of FerretDB $FERRETDB_VERSION failed (log: $log)"
    fi
    mv -f "$tmpbin/ferretdb" "$BIN"
    # The Go module/build caches (~1 GB) and the source copy are not needed
    # once the binary exists.
    rm -rf "$tmpbin" "$root/go" "$root/src"
    exec 9>&-
}

# ---------------------------------------------------------------- helpers
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Is $1 a live process whose command line is our ferretdb binary?
is_ours() {
    local pid="$1"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'ferretdb' || return 1
}

# Wait until the server answers an OP_MSG {ping: 1} with ok: 1.
wait_ready() {
    local port="$1" pid="$2" timeout="$3"
    python3 - "$port" "$pid" "$timeout" <<'PY'
import os, socket, struct, sys, time

port, pid, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])

def bson_doc(elems: bytes) -> bytes:
    return struct.pack("<i", len(elems) + 5) + elems + b"\x00"

def ping_msg(req_id: int) -> bytes:
    db = b"admin\x00"
    doc = bson_doc(b"\x10ping\x00" + struct.pack("<i", 1)
                   + b"\x02$db\x00" + struct.pack("<i", len(db)) + db)
    body = struct.pack("<I", 0) + b"\x00" + doc  # flagBits, section kind 0
    return struct.pack("<iiii", 16 + len(body), req_id, 0, 2013) + body

def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf

def ok(reply: bytes) -> bool:
    i = reply.find(b"\x01ok\x00")
    if i >= 0:
        return struct.unpack("<d", reply[i + 4:i + 12])[0] == 1.0
    i = reply.find(b"\x10ok\x00")
    if i >= 0:
        return struct.unpack("<i", reply[i + 4:i + 8])[0] == 1
    return False

deadline = time.monotonic() + timeout
last = "no attempt"
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        print(f"ferretdb process {pid} exited", file=sys.stderr)
        sys.exit(2)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(ping_msg(1))
            (length,) = struct.unpack("<i", recv_exact(s, 4))
            reply = recv_exact(s, length - 4)
            if ok(reply):
                sys.exit(0)
            last = f"unexpected reply {reply[:80]!r}"
    except OSError as e:
        last = repr(e)
    time.sleep(0.2)
print(f"ferretdb not ready after {timeout}s: {last}", file=sys.stderr)
sys.exit(1)
PY
}

# ---------------------------------------------------------------- commands
start() {
    local work="$1"
    mkdir -p "$work"
    work="$(cd "$work" && pwd)"
    local pidfile="$work/ferretdb.pid" envfile="$work/ferretdb.env" log="$work/ferretdb.log"

    if [ -f "$pidfile" ] && is_ours "$(cat "$pidfile")" && [ -f "$envfile" ]; then
        # Already running: idempotent.
        sed -n 's/^export //p' "$envfile" | tail -n 1
        return 0
    fi
    rm -f "$pidfile" "$envfile"

    build

    local port data state
    port="$(free_port)"
    data="$work/ferretdb-data"
    state="$work/ferretdb-state"
    rm -rf "$data" "$state"
    rm -f "$log"
    mkdir -p "$data" "$state"

    launch "$work" "$port"
}

# Serve <workdir>'s data on <port> and wait for it.
launch() {
    local work="$1" port="$2"
    local pidfile="$work/ferretdb.pid" envfile="$work/ferretdb.env" log="$work/ferretdb.log"
    setsid "$BIN" \
        --handler=sqlite \
        --sqlite-url="file:$work/ferretdb-data/" \
        --listen-addr="127.0.0.1:$port" \
        --state-dir="$work/ferretdb-state" \
        --debug-addr=- \
        --telemetry=disable \
        --log-level="$LOG_LEVEL" \
        </dev/null >>"$log" 2>&1 &
    local pid=$!
    echo "$pid" >"$pidfile"

    if ! wait_ready "$port" "$pid" "$START_TIMEOUT"; then
        echo "---- tail of $log ----" >&2
        tail -n 50 "$log" >&2 || true
        stop "$work" >/dev/null 2>&1 || true
        die "FerretDB failed to start"
    fi

    local uri="mongodb://127.0.0.1:$port/"
    echo "$port" >"$work/ferretdb.port"
    echo "export MONGODB_URI=$uri" >"$envfile"
    echo "MONGODB_URI=$uri"
}

# The server that `stop` ended, again: same port, same data (what a database restart after an outage is).
restart() {
    local work="$1"
    [ -f "$work/ferretdb.port" ] || die "$work: no server was started there"
    work="$(cd "$work" && pwd)"
    if [ -f "$work/ferretdb.pid" ] && is_ours "$(cat "$work/ferretdb.pid")"; then
        sed -n 's/^export //p' "$work/ferretdb.env" | tail -n 1
        return 0
    fi
    build
    launch "$work" "$(cat "$work/ferretdb.port")"
}

stop() {
    local work="$1"
    [ -d "$work" ] || return 0
    local pidfile="$work/ferretdb.pid" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if is_ours "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        local _
        for _ in $(seq 1 100); do  # up to 10 s
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    rm -f "$pidfile" "$work/ferretdb.env"
}

[ $# -eq 2 ] || usage
case "$1" in
    start) start "$2" ;;
    stop) stop "$2" ;;
    restart) restart "$2" ;;
    *) usage ;;
esac
