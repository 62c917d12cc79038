#!/usr/bin/env bash
# Prints the path of a ready-to-use copy of the JS interop kit (node_modules
# installed). Uses $SSB_INTEROP_DIR (default ../shared/interop); when that
# folder is not writable it is copied to a temporary directory first.
# All progress goes to stderr; only the path goes to stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src=${SSB_INTEROP_DIR:-$here/../shared/interop}
if [ ! -f "$src/package.json" ]; then
  echo "interop kit not found at $src (set SSB_INTEROP_DIR)" >&2
  exit 1
fi
src=$(cd "$src" && pwd)
dir=$src
if ! ( : > "$src/.cask-write-test" && rm -f "$src/.cask-write-test" ) 2>/dev/null; then
  dir=${TMPDIR:-/tmp}/cask-interop-kit
  if [ ! -f "$dir/.copied-from" ] || [ "$(cat "$dir/.copied-from")" != "$src" ] || \
     ! cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -r "$src/." "$dir/"
    chmod -R u+w "$dir"
    echo "$src" > "$dir/.copied-from"
  fi
fi
if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
  echo "interop kit: npm ci in $dir" >&2
  (cd "$dir" && npm ci --no-audit --no-fund >&2)
  touch "$dir/node_modules"
fi
echo "$dir"
