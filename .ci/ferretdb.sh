#!/usr/bin/env bash
# Start/stop a real FerretDB (MongoDB wire protocol) server on loopback for CI,
# backed by its SQLite handler (default) or by a private PostgreSQL cluster (no Docker).
#
#   bash .ci/ferretdb.sh start <workdir>   # prints MONGODB_URI=... as last line
#   bash .ci/ferretdb.sh start-tls <workdir>
#   bash .ci/ferretdb.sh stop  <workdir>
#   bash .ci/ferretdb.sh restart <workdir>  # after stop: the same server again,
#                                           # same port, its data kept (outage tests; SQLite, plain)
#
# `start-tls` also listens with TLS (a throw-away CA and server certificate
# made by .ci/tls.sh under <workdir>/tls) and its MONGODB_URI is the TLS one,
# `mongodb://127.0.0.1:<port>/?tls=true&tlsCAFile=<workdir>/tls/ca.pem`, as a
# managed MongoDB is reached (the plain listener stays, for the readiness check).
#
# The binary is built once with the go tool (Go module proxy only) and cached
# under ~/.cache/ppa-ci/ferretdb-<version>/bin; later runs do not rebuild.
# Each `start` uses a fresh, empty data directory under <workdir>.
#
# Environment overrides:
#   FERRETDB_VERSION   (default v1.24.2 - the newest v1.24.x on the proxy)
#   PPA_CI_CACHE       (default ~/.cache/ppa-ci)
#   FERRETDB_START_TIMEOUT seconds (default 60)
#   FERRETDB_LOG_LEVEL     debug|info|warn|error (default error)
#   FERRETDB_ID_INDEX      fixed|upstream (default fixed): see docs/mongodb-server.md. FerretDB 1.24's SQLite
#                          backend creates its `_id` index on `_ferretdb_sjson->"_id"` but looks documents up by
#                          `_ferretdb_sjson->'$._id'`, an expression SQLite's planner cannot match to that index,
#                          so every find, update and delete by `_id` scans and parses the whole collection.
#                          `fixed` builds it with the lookup spelled as the index is (one constant), so `_id`
#                          reads and writes are index point operations as on MongoDB; `upstream` builds it as is.
#   FERRETDB_BACKEND       sqlite|postgresql (default sqlite). postgresql: Debian's PostgreSQL (apt-get installs
#                          it if missing), a private cluster initialised under <workdir>/postgresql, listening on a
#                          free loopback port only (no unix socket); run by the `postgres` user when
#                          started as root (PostgreSQL refuses root). `stop` stops FerretDB, then the cluster.
#   FERRETDB_PG_POOL       FerretDB's PostgreSQL connection pool size (pool_max_conns; default 400, FerretDB's
#                          own is 50; the cluster accepts that many plus 20). FerretDB 1.24 keeps one pooled
#                          connection per statement of an `update` command that matched a document until the
#                          command ends, and needs one more to write: once those reach the pool size, every
#                          command waits for a connection forever (docs/mongodb-server.md). The projections'
#                          bulk replaces hold one statement per device or customer, so the pool must exceed
#                          the largest of them, plus what runs beside it. Connections are opened on demand.
#   FERRETDB_DEBUG_ADDR    FerretDB's debug HTTP listener (pprof, metrics), e.g. 127.0.0.1:8088 (default off)
set -euo pipefail

FERRETDB_VERSION="${FERRETDB_VERSION:-v1.24.2}"
CACHE_ROOT="${PPA_CI_CACHE:-$HOME/.cache/ppa-ci}"
START_TIMEOUT="${FERRETDB_START_TIMEOUT:-60}"
# At "warn" FerretDB dumps every error reply (e.g. each expected duplicate-key
# error) as ~150 log lines; "error" keeps the log to real problems.
LOG_LEVEL="${FERRETDB_LOG_LEVEL:-error}"
ID_INDEX="${FERRETDB_ID_INDEX:-fixed}"
BACKEND="${FERRETDB_BACKEND:-sqlite}"
PG_POOL="${FERRETDB_PG_POOL:-400}"
DEBUG_ADDR="${FERRETDB_DEBUG_ADDR:--}"
case "$BACKEND" in sqlite|postgresql) ;; *) echo "ferretdb.sh: FERRETDB_BACKEND must be sqlite or postgresql" >&2; exit 1 ;; esac
case "$PG_POOL" in ''|*[!0-9]*) echo "ferretdb.sh: FERRETDB_PG_POOL must be a number" >&2; exit 1 ;; esac
case "$ID_INDEX" in fixed|upstream) ;; *) echo "ferretdb.sh: FERRETDB_ID_INDEX must be fixed or upstream" >&2; exit 1 ;; esac
BIN_DIR="$CACHE_ROOT/ferretdb-$FERRETDB_VERSION/bin"
[ "$ID_INDEX" = fixed ] && BIN_DIR="$CACHE_ROOT/ferretdb-$FERRETDB_VERSION/bin-id-index"
BIN="$BIN_DIR/ferretdb"

die() { echo "ferretdb.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|start-tls|stop|restart <workdir>"; }

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
        fix_id_index "$copy" &&
        (cd "$copy" && env "$@" go build -trimpath -buildvcs=false -o "$out" ./cmd/ferretdb) &&
        "$out" --version  # smoke test before the binary is cached
}

# fix_id_index <module-copy>: with FERRETDB_ID_INDEX=fixed, spell the SQLite backend's `_id` lookup
# expression as its `_id` index is spelled, so the planner serves lookups from that index.
fix_id_index() {
    [ "$ID_INDEX" = fixed ] || return 0
    local f="$1/internal/backends/sqlite/metadata/metadata.go"
    grep -q "IDColumn = DefaultColumn + \"->'\$._id'\"" "$f" || { echo "ferretdb.sh: $f has no _id lookup to fix" >&2; return 1; }
    sed -i "s|IDColumn = DefaultColumn + \"->'\$._id'\"|IDColumn = DefaultColumn + \"->\\\\\"_id\\\\\"\"|" "$f" &&
        grep -q 'IDColumn = DefaultColumn + "->\\"_id\\""' "$f"
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

# ---------------------------------------------------------------- postgresql
# The newest installed PostgreSQL's bin directory; Debian's package is installed if there is none.
pg_bindir() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        export DEBIAN_FRONTEND=noninteractive
        { $sudo apt-get install -y -q postgresql >/dev/null 2>&1 ||
          { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q postgresql >/dev/null; }; } ||
            die "could not install PostgreSQL (apt-get install postgresql)"
        d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    fi
    [ -n "$d" ] && [ -x "$d/initdb" ] || die "no initdb under /usr/lib/postgresql/*/bin"
    echo "$d"
}

# as_pg <command...>: PostgreSQL refuses to run as root, so root runs it as the package's `postgres` user.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# pg_start <workdir>: a fresh private cluster under <workdir>/postgresql; prints its port.
pg_start() {
    local work="$1" bin dir port
    bin="$(pg_bindir)"
    dir="$work/postgresql"
    if [ -d "$dir/data" ]; then
        as_pg "$bin/pg_ctl" stop -D "$dir/data" -m immediate >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        getent passwd postgres >/dev/null || die "no postgres user (Debian's postgresql package makes it)"
        chown postgres: "$dir"
        # The postgres user must reach <workdir>: directories of ours on the way that others cannot
        # search (mktemp makes them 0700) get search permission only (o+x: no listing).
        local d="$dir"
        while d="$(dirname "$d")" && [ "$d" != / ]; do
            runuser -u postgres -- test -x "$d" && continue
            [ -O "$d" ] && chmod o+x "$d"
        done
        runuser -u postgres -- test -w "$dir" || die "the postgres user cannot write $dir (a parent directory is closed to it)"
    fi
    port="$(free_port)"
    # trust: a throw-away cluster on loopback only, as FerretDB itself (no unix socket: its path could be too long)
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { tail -n 20 "$dir/initdb.log" >&2; die "initdb failed"; }
    as_pg "$bin/pg_ctl" start -w -t "$START_TIMEOUT" -D "$dir/data" -l "$dir/postgresql.log" \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c max_connections=$((PG_POOL + 20))" \
        >/dev/null || { tail -n 20 "$dir/postgresql.log" >&2; die "PostgreSQL failed to start"; }
    head -n 1 "$dir/data/postmaster.pid" >"$work/postgres.pid"
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres ferretdb || die "createdb failed"
    echo "$port"
}

pg_stop() {
    local work="$1" dir="$1/postgresql"
    [ -d "$dir/data" ] || return 0
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$bin" ] && as_pg "$bin/pg_ctl" stop -D "$dir/data" -m fast -t 30 >/dev/null 2>&1 || true
    rm -f "$work/postgres.pid"
}

# ---------------------------------------------------------------- commands
# start <workdir> plain|tls
start() {
    local work="$1" mode="$2"
    mkdir -p "$work"
    work="$(cd "$work" && pwd)"
    local pidfile="$work/ferretdb.pid" envfile="$work/ferretdb.env" log="$work/ferretdb.log"

    if [ -f "$pidfile" ] && is_ours "$(cat "$pidfile")" && [ -f "$envfile" ]; then
        # Already running: idempotent.
        sed -n 's/^export //p' "$envfile" | tr -d "'" | tail -n 1
        return 0
    fi
    rm -f "$pidfile" "$envfile"

    build

    local port data state
    port="$(free_port)"
    data="$work/ferretdb-data"
    state="$work/ferretdb-state"
    rm -rf "$data" "$state"
    mkdir -p "$data" "$state"

    local tls=() tport=""
    if [ "$mode" = tls ]; then
        bash "$(dirname "${BASH_SOURCE[0]}")/tls.sh" "$work/tls" || die "could not make the CI certificates"
        tport="$(free_port)"
        tls=(--listen-tls="127.0.0.1:$tport" --listen-tls-cert-file="$work/tls/server.crt"
             --listen-tls-key-file="$work/tls/server.key")
    fi

    local handler=(--handler=sqlite --sqlite-url="file:$data/")
    if [ "$BACKEND" = postgresql ]; then
        local pgport
        pgport="$(pg_start "$work")" || die "PostgreSQL failed to start"
        handler=(--handler=postgresql
                 --postgresql-url="postgres://postgres@127.0.0.1:$pgport/ferretdb?pool_max_conns=$PG_POOL")
    fi

    setsid "$BIN" \
        "${handler[@]}" \
        --listen-addr="127.0.0.1:$port" \
        --state-dir="$state" \
        --debug-addr="$DEBUG_ADDR" \
        --telemetry=disable \
        --log-level="$LOG_LEVEL" \
        "${tls[@]}" \
        </dev/null >"$log" 2>&1 &
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
    [ "$mode" = tls ] && uri="mongodb://127.0.0.1:$tport/?tls=true&tlsCAFile=$work/tls/ca.pem"
    echo "export MONGODB_URI='$uri'" >"$envfile"  # quoted: the TLS one has an &
    echo "MONGODB_URI=$uri"
}

stop() {
    local work="$1"
    [ -d "$work" ] || return 0
    stop_ferretdb "$work"
    pg_stop "$work"
}

stop_ferretdb() {
    local work="$1"
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

# The server that `stop` ended, again: same port, same data (what a database restart after an outage is).
restart() {
    local work="$1"
    [ -f "$work/ferretdb.port" ] || die "$work: no server was started there"
    work="$(cd "$work" && pwd)"
    local pidfile="$work/ferretdb.pid" envfile="$work/ferretdb.env" log="$work/ferretdb.log"
    if [ -f "$pidfile" ] && is_ours "$(cat "$pidfile")"; then
        sed -n 's/^export //p' "$envfile" | tail -n 1
        return 0
    fi
    [ "$BACKEND" = sqlite ] || die "restart serves the SQLite backend only"
    build
    local port
    port="$(cat "$work/ferretdb.port")"
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
        tail -n 50 "$log" >&2 || true
        die "FerretDB failed to start again"
    fi
    echo "export MONGODB_URI='mongodb://127.0.0.1:$port/'" >"$envfile"
    echo "MONGODB_URI=mongodb://127.0.0.1:$port/"
}

[ $# -eq 2 ] || usage
case "$1" in
    start) start "$2" plain ;;
    start-tls) start "$2" tls ;;
    stop) stop "$2" ;;
    restart) restart "$2" ;;
    *) usage ;;
esac
