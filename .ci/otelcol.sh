#!/usr/bin/env bash
# Start/stop a real OpenTelemetry Collector on loopback for CI: OTLP/HTTP in, OTLP JSON lines out to a file.
#
#   bash .ci/otelcol.sh start <workdir>   # prints OTEL_EXPORTER_OTLP_ENDPOINT=... as last line
#   bash .ci/otelcol.sh stop  <workdir>
#   bash .ci/otelcol.sh build             # only build (and cache) the binary; prints its path
#
# The collector is .ci/otelcol/main.go: the collector's own Go modules (otelcol, the OTLP receiver, the batch
# processor, the contrib file exporter and the debug exporter) at one release, pinned by .ci/otelcol/go.sum and
# fetched from the Go module proxy only. It is built once and cached under
# ~/.cache/ppa-ci/otelcol-<release>-<hash of the sources>/ppa-otelcol (a first build takes 2-7 minutes on 2 cores;
# later runs start the cached binary at once). <workdir>/otelcol.env exports OTEL_EXPORTER_OTLP_ENDPOINT and
# PPA_TEST_TRACES_FILE (the file the spans land in, one OTLP JSON document per line).
#
# Environment overrides:
#   PPA_CI_CACHE           (default ~/.cache/ppa-ci)
#   OTELCOL_START_TIMEOUT  seconds (default 60)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$HERE/otelcol"
RELEASE="v0.161.0"
CACHE_ROOT="${PPA_CI_CACHE:-$HOME/.cache/ppa-ci}"
START_TIMEOUT="${OTELCOL_START_TIMEOUT:-60}"
HASH="$(cat "$SRC/main.go" "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -c1-12)"
ROOT="$CACHE_ROOT/otelcol-$RELEASE-$HASH"
BIN="$ROOT/ppa-otelcol"

die() { echo "otelcol.sh: $*" >&2; exit 1; }

build() {
    [ -x "$BIN" ] && return 0
    command -v go >/dev/null 2>&1 || die "no go tool on PATH (the collector is built from the Go module proxy)"
    mkdir -p "$ROOT"
    exec 9>"$ROOT/.lock"  # one build at a time; a second caller waits for it and uses its binary
    flock 9
    if [ -x "$BIN" ]; then
        exec 9>&-
        return 0
    fi
    local log="$ROOT/build.log" started=$SECONDS
    : >"$log"
    # -mod=readonly: go.sum pins every module; nothing is resolved anew
    if ! (cd "$SRC" && env GOPATH="$ROOT/go" GOMODCACHE="$ROOT/go/pkg/mod" GOCACHE="$ROOT/go/cache" \
            GOFLAGS="-modcacherw -mod=readonly" GOTOOLCHAIN=local CGO_ENABLED=0 \
            go build -trimpath -buildvcs=false -o "$BIN.tmp" .) >>"$log" 2>&1 \
       || ! "$BIN.tmp" --version >>"$log" 2>&1; then
        tail -n 40 "$log" >&2 || true
        rm -f "$BIN.tmp"
        die "build of the collector failed (log: $log)"
    fi
    mv -f "$BIN.tmp" "$BIN"
    echo "otelcol.sh: collector built in $((SECONDS - started)) s" >&2
    rm -rf "$ROOT/go"  # the module and build caches (~1 GB) are not needed once the binary exists
    exec 9>&-
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

is_ours() {
    local pid="$1"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'ppa-otelcol' || return 1
}

start() {
    local work="$1"
    mkdir -p "$work"
    work="$(cd "$work" && pwd)"
    local pidfile="$work/otelcol.pid" envfile="$work/otelcol.env" log="$work/otelcol.log"
    if [ -f "$pidfile" ] && is_ours "$(cat "$pidfile")" && [ -f "$envfile" ]; then
        sed -n 's/^export //p' "$envfile" | tr -d "'" | head -n 1
        return 0
    fi
    rm -f "$pidfile" "$envfile"
    build
    local port traces="$work/traces.jsonl"
    port="$(free_port)"
    : >"$traces"
    OTELCOL_HTTP_PORT="$port" OTELCOL_TRACES_FILE="$traces" setsid "$BIN" --config "file:$SRC/config.yaml" \
        >"$log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$pidfile"
    # ready once the OTLP/HTTP receiver answers: an empty export is accepted with 200
    local deadline=$((SECONDS + START_TIMEOUT))
    until python3 -c 'import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], b"{}", {"Content-Type": "application/json"}), timeout=2)' \
            "http://127.0.0.1:$port/v1/traces" 2>/dev/null; do
        is_ours "$pid" || { tail -n 20 "$log" >&2; die "the collector exited"; }
        [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$log" >&2; die "not ready after ${START_TIMEOUT}s"; }
        sleep 0.2
    done
    {
        echo "export OTEL_EXPORTER_OTLP_ENDPOINT='http://127.0.0.1:$port'"
        echo "export PPA_TEST_TRACES_FILE='$traces'"
    } >"$envfile"
    echo "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$port"
}

stop() {
    local work="$1" pidfile="$1/otelcol.pid"
    [ -f "$pidfile" ] || return 0
    local pid
    pid="$(cat "$pidfile")"
    if is_ours "$pid"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do is_ours "$pid" || break; sleep 0.1; done
        is_ours "$pid" && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile" "$work/otelcol.env"
}

case "${1:-}" in
    build) build; echo "$BIN" ;;
    start) [ -n "${2:-}" ] || die "usage: $0 start <workdir>"; start "$2" ;;
    stop) [ -n "${2:-}" ] || die "usage: $0 stop <workdir>"; stop "$2" ;;
    *) die "usage: $0 build|start|stop [<workdir>]" ;;
esac
