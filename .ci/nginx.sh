#!/usr/bin/env bash
# nginx for tests/e2e/test_compose_edge.py, which runs compose's edge (deploy/compose/edge.conf) with the real
# server: Debian's packages unpacked into DIR, so no service is started and nothing lands in /etc.
#   bash .ci/nginx.sh DIR     prints the path of the nginx binary (export it as PPA_NGINX)
set -euo pipefail
dir="$1"
bin="$dir/root/usr/sbin/nginx"
if [ ! -x "$bin" ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  mkdir -p "$dir"
  (
    cd "$dir"
    apt-get download nginx nginx-common >/dev/null 2>&1 || {
      $sudo apt-get update -q >/dev/null && apt-get download nginx nginx-common >/dev/null
    }
  )
  for deb in "$dir"/*.deb; do
    dpkg-deb -x "$deb" "$dir/root"
  done
fi
"$bin" -v >&2
echo "$bin"
