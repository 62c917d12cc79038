#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a short while each:
#   scripts/fuzz.sh [FUZZTIME]      (default 10s)
#
# The targets are what `go test -list '^Fuzz' ./...` finds; every
# `func Fuzz...` in a _test.go file must be among them (a target hidden by a
# build tag, or a package whose tests do not build, fails the run).
#
# One failure is tolerated: Go 1.26's fuzzing coordinator can end a run that
# found nothing with "--- FAIL: FuzzX (…)" followed by the single line
# "context deadline exceeded", when -fuzztime expires while a worker is
# mid-input (go.dev/issue/75804, fixed in Go 1.27). Only that exact output
# is tolerated: a failing input written, a second failure line (a seed
# corpus entry, a subtest), a panic, or any other message in the failure is
# a failure, even when it mentions a context deadline.
set -uo pipefail
t=${1:-10s}
cd "$(dirname "$0")/.."

# deadline_flake TARGET OUTPUT: true when OUTPUT (of go test -fuzz TARGET)
# fails only with the coordinator's deadline race.
deadline_flake() {
  local f=$1 out=$2 block
  grep -q 'Failing input written' <<<"$out" && return 1
  [ "$(grep -c -- '--- FAIL' <<<"$out")" = 1 ] || return 1
  grep -q '^panic:' <<<"$out" && return 1
  # The lines of the failure: from "--- FAIL: TARGET (" to the line "FAIL".
  block=$(awk -v h="--- FAIL: $f (" 'index($0, h) == 1 { on = 1; next } on && $0 == "FAIL" { exit } on { print }' <<<"$out")
  [ "$block" = "    context deadline exceeded" ]
}

# selftest checks deadline_flake on the outputs it must tell apart.
selftest() {
  local ok=0 flake seedfail written twice hung
  flake=$'fuzz: elapsed: 8s, execs: 43832 (0/sec), new interesting: 20 (total: 68)\n--- FAIL: FuzzA (8.02s)\n    context deadline exceeded\nFAIL\nexit status 1\nFAIL\texample.org/p\t8.031s'
  seedfail=$'--- FAIL: FuzzA (0.01s)\n    --- FAIL: FuzzA/seed#1 (0.00s)\n        a_test.go:12: dial: context deadline exceeded\nFAIL\nexit status 1\nFAIL\texample.org/p\t0.02s'
  written=$'--- FAIL: FuzzA (3.10s)\n    --- FAIL: FuzzA (0.00s)\n        a_test.go:12: context deadline exceeded\n    Failing input written to testdata/fuzz/FuzzA/0123\n    To re-run:\n    go test -run=FuzzA/0123\nFAIL\nexit status 1\nFAIL\texample.org/p\t3.2s'
  twice=$'--- FAIL: FuzzA (8.02s)\n    context deadline exceeded\n    a_test.go:30: cleanup: context deadline exceeded\nFAIL\nexit status 1\nFAIL\texample.org/p\t8.031s'
  hung=$'--- FAIL: FuzzA (9.50s)\n    fuzzing process hung or terminated unexpectedly: exit status 2\n    context deadline exceeded\nFAIL\nexit status 1\nFAIL\texample.org/p\t9.6s'
  deadline_flake FuzzA "$flake" || { echo "fuzz.sh selftest: the deadline race was not recognised"; ok=1; }
  deadline_flake FuzzB "$flake" && { echo "fuzz.sh selftest: another target's failure was tolerated"; ok=1; }
  for out in "$seedfail" "$written" "$twice" "$hung" "build failed"; do
    if deadline_flake FuzzA "$out"; then
      echo "fuzz.sh selftest: a real failure was tolerated:"
      echo "$out"
      ok=1
    fi
  done
  return $ok
}

selftest || exit 1

module=$(go list -m) || exit 1
if ! listed=$(go test -list '^Fuzz' ./... 2>&1); then
  echo "$listed"
  echo "FAIL: go test -list could not list the fuzz targets"
  exit 1
fi
# "DIR TARGET" for every listed target ("." for the module root).
targets=$(awk -v m="$module" '
  /^Fuzz/ { names[++n] = $1; next }
  /^ok[ \t]/ { d = $2; if (d == m) d = "."; else sub("^" m "/", "", d)
               for (i = 1; i <= n; i++) print d, names[i]; n = 0 }' <<<"$listed" | sort)
declared=$(find . -mindepth 1 \( -name node_modules -o -name testdata -o -name '.*' -o -name '_*' \) -prune \
  -o -name '*_test.go' -type f -print |
  xargs grep -H -o '^func Fuzz[A-Za-z0-9_]*' |
  sed -E 's#^\./##; s#^([^:]*/)?[^/:]*:func #\1 #; s#^ #. #; s#/ # #' | sort)
if [ "$targets" != "$declared" ]; then
  echo "FAIL: the fuzz targets go test lists differ from the func Fuzz... declarations:"
  diff <(echo "$declared") <(echo "$targets") | sed 's/^</declared, not listed:/; s/^>/listed, not declared:/' | grep ':'
  exit 1
fi
echo "fuzz: $(wc -l <<<"$targets") targets, $t each"

status=0
while read -r dir f; do
  pkg="./$dir"
  [ "$dir" = "." ] && pkg=.
  echo "fuzz $pkg $f ($t)"
  out=$(go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" 2>&1)
  rc=$?
  echo "$out" | tail -n 4
  if [ $rc -ne 0 ]; then
    if deadline_flake "$f" "$out"; then
      echo "note: $f stopped with the coordinator's deadline race (go.dev/issue/75804) and nothing else; not a failure"
    else
      echo "$out"
      echo "FAIL: fuzz target $f in $pkg"
      status=1
    fi
  fi
done <<<"$targets"
exit $status
