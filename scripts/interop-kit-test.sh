#!/usr/bin/env bash
# Checks that `make test` stops with a clear message, before any Go test
# runs, when the JS interop kit cannot be prepared: no kit, no node, no npm,
# npm ci failing. Run by .ci/run. Needs bash, make and coreutils; it never
# runs npm for real and never touches the repository's interop/js.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A PATH with the tools make test and scripts/interop-kit.sh use, but no
# node and no npm.
nonode=$tmp/bin-nonode
mkdir -p "$nonode"
for tool in bash sh env make dirname basename touch cat mkdir rm ls grep sed tr head tail cmp cp readlink; do
  p=$(command -v "$tool") || { echo "FAIL: $tool not found"; exit 1; }
  ln -s "$p" "$nonode/$tool"
done
node_bin=$(command -v node || true)

# The kit's files without node_modules, so that npm ci would be needed.
kit=$tmp/kit
mkdir -p "$kit"
(cd "$root/interop/js" && tar cf - --exclude=node_modules .) | (cd "$kit" && tar xf -)

# A fake go: make test must never get that far.
fakego=$tmp/fake-go
marker=$tmp/go-was-run
printf '#!/bin/sh\ntouch %s\n' "$marker" > "$fakego"
chmod +x "$fakego"

# Fake npms, on top of the no-node PATH plus a real node.
withnode=$tmp/bin-node
mkdir -p "$withnode"
if [ -n "$node_bin" ]; then ln -s "$node_bin" "$withnode/node"; fi
failnpm=$tmp/bin-failnpm
mkdir -p "$failnpm"
printf '#!/bin/sh\necho "npm ERR! simulated registry failure" >&2\nexit 1\n' > "$failnpm/npm"
chmod +x "$failnpm/npm"

status=0
# check NAME PATH SSB_INTEROP_DIR EXPECTED-MESSAGE
check() {
  local name=$1 path=$2 kitdir=$3 want=$4
  rm -f "$marker"
  local out rc=0
  out=$(cd "$root" && env PATH="$path" SSB_INTEROP_DIR="$kitdir" make --no-print-directory test GO="$fakego" 2>&1) || rc=$?
  if [ $rc -eq 0 ]; then
    echo "FAIL $name: make test exited 0"; status=1
  elif [ -e "$marker" ]; then
    echo "FAIL $name: make test ran go test anyway"; status=1
  elif ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL $name: output lacks \"$want\":"; echo "$out" | sed 's/^/    /'; status=1
  elif ! grep -qF "make test: stopped" <<<"$out"; then
    echo "FAIL $name: output lacks \"make test: stopped\":"; echo "$out" | sed 's/^/    /'; status=1
  else
    echo "ok   $name: make test stopped (exit $rc): $want"
  fi
}

check "no kit" "$nonode" "$tmp/nowhere" "no interop kit at $tmp/nowhere"
check "no node" "$nonode" "$kit" "node not found on PATH"
if [ -n "$node_bin" ]; then
  check "no npm" "$withnode:$nonode" "$kit" "npm not found on PATH"
  check "npm ci fails" "$failnpm:$withnode:$nonode" "$kit" "npm ci failed in $kit"
else
  echo "FAIL: node is not installed, the no-npm and npm-ci-fails cases cannot run"; status=1
fi
[ ! -e "$kit/node_modules" ] || { echo "FAIL: a kit was installed"; status=1; }
exit $status
