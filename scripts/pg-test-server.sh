#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests of the room's PostgreSQL storage.
#
#   scripts/pg-test-server.sh start   # prints the URL to put in CASK_TEST_POSTGRES
#   scripts/pg-test-server.sh stop    # stops it and deletes its files
#   scripts/pg-test-server.sh url     # prints the URL of the running one
#
# The server keeps its data in a temporary directory, listens on a unix
# socket in that directory only (no TCP), trusts local connections, and
# runs without fsync (test data only). PostgreSQL refuses to run as root:
# under root it runs as the system user `postgres` (created if missing).
# initdb is looked up on PATH, then in /usr/lib/postgresql/*/bin (Debian's
# `postgresql` package). CASK_PG_DIR sets the directory
# (default ${TMPDIR:-/tmp}/cask-pg-UID); start is idempotent.
set -euo pipefail

dir=${CASK_PG_DIR:-${TMPDIR:-/tmp}/cask-pg-$(id -u)}
case "$dir" in /*) ;; *) dir=$PWD/$dir ;; esac
data=$dir/data
url="postgres:///postgres?host=$dir&user=postgres&sslmode=disable"

bindir() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then
    echo "$d"
    return
  fi
  echo "pg-test-server: initdb not found (on PATH or in /usr/lib/postgresql/*/bin):" >&2
  echo "  install PostgreSQL, e.g. apt-get install postgresql" >&2
  return 1
}

# as runs a command as the server's owner: postgres under root, else us
# (from /, which postgres can enter whatever our working directory).
as() {
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      (cd / && runuser -u postgres -- "$@")
    else
      (cd / && su postgres -s /bin/sh -c "$(printf '%q ' "$@")")
    fi
  else
    "$@"
  fi
}

running() {
  [ -f "$data/postmaster.pid" ] && as "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

cmd=${1:-}
case "$cmd" in
start)
  bin=$(bindir)
  if running; then
    echo "$url"
    exit 0
  fi
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  chmod 700 "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
  as "$bin/initdb" -D "$data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    echo "pg-test-server: initdb failed" >&2
    exit 1
  }
  # Local (unix socket) connections only, trusted.
  printf 'local all all trust\n' >"$data/pg_hba.conf"
  as "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses='' -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || {
    cat "$dir/server.log" >&2
    echo "pg-test-server: the server did not start" >&2
    exit 1
  }
  echo "pg-test-server: PostgreSQL running in $dir (stop with: $0 stop)" >&2
  echo "$url"
  ;;
stop)
  if [ -d "$data" ]; then
    bin=$(bindir)
    as "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
url)
  bin=$(bindir)
  running || { echo "pg-test-server: not running (start it with: $0 start)" >&2; exit 1; }
  echo "$url"
  ;;
*)
  echo "usage: $0 start|stop|url" >&2
  exit 2
  ;;
esac
