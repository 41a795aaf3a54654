#!/usr/bin/env bash
# Start/stop mongo-java-server (a MongoDB wire-protocol server in Java, from Maven Central) on loopback: the
# alternative to FerretDB as the MongoDB-protocol server tests and benchmarks run against (docs/mongodb-server.md).
#
#   bash .ci/mongo-java-server.sh start <workdir>   # prints MONGODB_URI=... as last line; <workdir>/mongo.env
#   bash .ci/mongo-java-server.sh stop  <workdir>
#
# Documents are kept in an H2 MVStore file under <workdir> (MJS_BACKEND=h2, default) or in memory
# (MJS_BACKEND=memory). The jars are fetched once with mvn and cached under ~/.cache/ppa-ci.
#
# Environment overrides: PPA_CI_CACHE (default ~/.cache/ppa-ci), MJS_HEAP (default 2g),
# MJS_START_TIMEOUT seconds (default 60), MJS_BACKEND h2|memory.
set -euo pipefail

VERSION=1.46.0
CACHE_ROOT="${PPA_CI_CACHE:-$HOME/.cache/ppa-ci}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HOME_DIR="$CACHE_ROOT/mongo-java-server-$VERSION"
LIBS="$HOME_DIR/libs"
CLASSES="$HOME_DIR/classes"
HEAP="${MJS_HEAP:-2g}"
START_TIMEOUT="${MJS_START_TIMEOUT:-60}"
BACKEND="${MJS_BACKEND:-h2}"
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

die() { echo "mongo-java-server.sh: $*" >&2; exit 1; }
case "$BACKEND" in h2|memory) ;; *) die "MJS_BACKEND must be h2 or memory" ;; esac

fetch() {
    [ -f "$CLASSES/Serve.class" ] && [ "$CLASSES/Serve.class" -nt "$HERE/mongo-java-server/Serve.java" ] && return 0
    command -v mvn >/dev/null 2>&1 || die "mvn not found in PATH"
    command -v javac >/dev/null 2>&1 || die "javac not found in PATH"
    mkdir -p "$HOME_DIR"
    exec 9>"$HOME_DIR/.lock"
    flock 9
    if [ ! -f "$LIBS/.complete" ]; then
        rm -rf "$LIBS.tmp"
        mvn -q -B -f "$HERE/mongo-java-server/pom.xml" "$DEP_PLUGIN:copy-dependencies" -DincludeScope=runtime \
            -DoutputDirectory="$LIBS.tmp" >"$HOME_DIR/mvn.log" 2>&1 \
            || { tail -n 40 "$HOME_DIR/mvn.log" >&2; die "mvn could not resolve mongo-java-server $VERSION"; }
        touch "$LIBS.tmp/.complete"
        rm -rf "$LIBS"
        mv "$LIBS.tmp" "$LIBS"
    fi
    mkdir -p "$CLASSES"
    javac -cp "$LIBS/*" -d "$CLASSES" "$HERE/mongo-java-server/Serve.java"
    exec 9>&-
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    local work="$1"
    mkdir -p "$work"
    work="$(cd "$work" && pwd)"
    fetch
    local port data=()
    port="$(free_port)"
    if [ "$BACKEND" = h2 ]; then
        rm -f "$work/documents.mv.db"
        data=("$work/documents.mv.db")
    fi
    # shellcheck disable=SC2086
    setsid java -Xmx"$HEAP" -XX:+UseG1GC -cp "$CLASSES:$LIBS/*" Serve "$port" "${data[@]}" \
        </dev/null >"$work/mongo.log" 2>&1 &
    echo $! >"$work/mongo.pid"
    local waited=0
    until python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $port)))" 2>/dev/null; do
        kill -0 "$(cat "$work/mongo.pid")" 2>/dev/null || { cat "$work/mongo.log" >&2; die "the server exited"; }
        [ "$waited" -lt $((START_TIMEOUT * 10)) ] || die "not listening after ${START_TIMEOUT}s"
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "export MONGODB_URI='mongodb://127.0.0.1:$port/'" >"$work/mongo.env"
    echo "MONGODB_URI=mongodb://127.0.0.1:$port/"
}

stop() {
    local work="$1" pid
    [ -f "$work/mongo.pid" ] || return 0
    pid="$(cat "$work/mongo.pid")"
    if kill -0 "$pid" 2>/dev/null && grep -q Serve "/proc/$pid/cmdline" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$work/mongo.pid"
}

[ $# -eq 2 ] || die "usage: $0 start|stop <workdir>"
case "$1" in
    start) start "$2" ;;
    stop) stop "$2" ;;
    *) die "usage: $0 start|stop <workdir>" ;;
esac
