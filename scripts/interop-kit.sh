#!/usr/bin/env bash
# Prepares the JS interop harness for the Go tests and prints its path.
#
# The kit is interop/js in this repository ($SSB_INTEROP_DIR overrides it).
# When its node_modules is missing or was not installed from the current
# package-lock.json, this runs `npm ci` there (never through a symlinked
# node_modules). It exits non-zero with a message saying what to do when
# Node.js or npm is missing, too old, or the install fails: `make test` stops
# then instead of running the interop tests against nothing.
#
# All progress and errors go to stderr; only the path goes to stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${SSB_INTEROP_DIR:-$here/interop/js}

fail() {
  echo "interop kit: $*" >&2
  echo "interop kit: the interop tests run real JS SSB peers and need Node.js >= 18 with npm;" >&2
  echo "interop kit: on Debian/Ubuntu: apt-get install nodejs npm. Without Node, 'go test -short ./...' skips them." >&2
  exit 1
}

[ -f "$dir/package.json" ] && [ -f "$dir/peer.js" ] ||
  fail "no interop kit at $dir (package.json and peer.js expected; SSB_INTEROP_DIR overrides the default interop/js)"
dir=$(cd "$dir" && pwd)

command -v node >/dev/null 2>&1 || fail "node not found on PATH"
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) ||
  fail "node on PATH ($(command -v node)) does not run"
[ "$major" -ge 18 ] 2>/dev/null || fail "node $(node --version) is too old"

# node_modules is current when it holds a copy of the lockfile it was
# installed from (written below after npm ci): comparing contents, not
# mtimes, keeps a fresh checkout or a git worktree from reinstalling.
stamp=$dir/node_modules/.cask-package-lock.json
if [ ! -d "$dir/node_modules" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
  if [ -L "$dir/node_modules" ]; then
    # npm ci would empty the directory the link points at (another checkout's kit).
    fail "$dir/node_modules is a symlink to $(readlink "$dir/node_modules") whose install does not match $dir/package-lock.json; refusing to run npm ci through it: remove the link (rm $dir/node_modules) and run make test again"
  fi
  command -v npm >/dev/null 2>&1 || fail "npm not found on PATH (needed to install $dir/node_modules)"
  echo "interop kit: npm ci in $dir" >&2
  if ! (cd "$dir" && npm ci --no-audit --no-fund >&2); then
    fail "npm ci failed in $dir (see npm's output above; it needs the npm registry once)"
  fi
  cp "$dir/package-lock.json" "$stamp"
fi

# A cheap check that the install is usable: the packages the scripts load.
if ! (cd "$dir" && node -e 'for (const m of ["secret-stack", "ssb-db2", "ssb-ebt", "ssb-keys", "ssb-client"]) require.resolve(m)') >&2; then
  fail "node_modules in $dir is incomplete: delete it and run make test again"
fi
echo "$dir"
