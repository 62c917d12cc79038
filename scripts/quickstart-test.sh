#!/usr/bin/env bash
# Runs the README's "Quick start" block as written, line by line, in a fresh
# clone of this repository in a temporary directory, and checks what each
# line prints. Then checks that `make serve ARGS="..."` passes its flags on.
#
#   scripts/quickstart-test.sh [SOURCE]     SOURCE: a git repository or URL
#                                           (default: this repository's HEAD)
#
# HOME is a temporary directory, so the daemon's default repo (~/.ssb-go) is
# a throw-away one and the real ~/.ssb-go is never touched; the Go caches
# stay the real ones. Every line of the Quick start must have a check below:
# a new README line without one fails the script, so README and script stay
# in step. Needs git, go, make and jq. Run by .ci/run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$root}
for tool in git go make jq; do
  command -v "$tool" >/dev/null || { echo "quickstart-test: $tool not found on PATH" >&2; exit 1; }
done

tmp=$(mktemp -d)
daemons=()
cleanup() {
  for pid in "${daemons[@]}"; do
    kill -TERM -- "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Keep the real Go caches: a temporary HOME would otherwise mean downloading
# and compiling every module again.
export GOPATH=${GOPATH:-$(go env GOPATH)}
export GOCACHE=${GOCACHE:-$(go env GOCACHE)}
export GOMODCACHE=${GOMODCACHE:-$(go env GOMODCACHE)}
export HOME=$tmp/home
mkdir -p "$HOME"
unset SSB_REPO SSB_LISTEN SSB_KEY SSB_CAPS SSB_PEERS SSB_HOPS SSB_LOG_FORMAT SSB_LOG_LEVEL SSB_MAX_CONNS SSB_MAX_STREAMS

clone=$tmp/cask
git clone -q "$src" "$clone"
cd "$clone"

# The Quick start block: the first ```sh fence after "## Quick start".
block=$(awk '
  /^## Quick start/ { in_section = 1; next }
  in_section && /^## / { exit }
  in_section && !in_code && /^```sh/ { in_code = 1; next }
  in_code && /^```/ { exit }
  in_code { print }
' README.md)
[ -n "$block" ] || { echo "FAIL: no \`\`\`sh block under \"## Quick start\" in README.md"; exit 1; }
echo "== Quick start block of README.md:"
echo "$block" | sed 's/^/   | /'

out=$tmp/out
mkdir -p "$out"
fails=0
fail() { echo "FAIL line $n: $line"; echo "     $*"; fails=$((fails + 1)); }
ok() { echo "ok   line $n: $*"; }
stdout() { cat "$out/$n.out"; }
lines_of() { grep -c . "$out/$n.out" || true; }
show() { echo "     stdout: $(head -c 600 "$out/$n.out")"; echo "     stderr: $(tail -c 600 "$out/$n.err")"; }

id="" key="" serve_pid="" port=""
socket=$HOME/.ssb-go/socket

# check runs after line $n ran (its rc in $rc, its output in $out/$n.*).
check() {
  case $line in
  "go build -o bin/sbot ./cmd/sbot"*)
    if [ "$rc" -ne 0 ]; then fail "exit $rc"; show
    elif [ ! -f bin/sbot ] || [ ! -x bin/sbot ]; then fail "bin/sbot is not an executable file"
    elif [ ! -d sbot ] || [ ! -f sbot/sbot.go ]; then fail "the sbot/ package folder was disturbed"
    else ok "bin/sbot built; sbot/ is still the package folder"; fi ;;
  "./bin/sbot serve"*"&"*)
    serve_pid=$bgpid
    daemons+=("$serve_pid")
    local i
    for i in $(seq 1 300); do
      [ -S "$socket" ] && break
      kill -0 "$serve_pid" 2>/dev/null || break
      sleep 0.1
    done
    if [ ! -S "$socket" ]; then fail "no socket at $socket after 30 s"; show
    elif ! kill -0 "$serve_pid" 2>/dev/null; then fail "the daemon exited"; show
    else ok "daemon running (pid $serve_pid), socket $socket"; fi ;;
  "./bin/sbot whoami"*)
    if [ "$rc" -ne 0 ]; then fail "exit $rc"; show
    elif [ "$(lines_of)" -ne 1 ] || ! stdout | jq -e '(keys == ["id"]) and (.id | test("^@[A-Za-z0-9+/]{43}=\\.ed25519$"))' >/dev/null 2>&1; then
      fail 'want one line {"id":"@….ed25519"}'; show
    else id=$(stdout | jq -r .id); ok "whoami: $id"; fi ;;
  "./bin/sbot status"*)
    if [ "$rc" -ne 0 ]; then fail "exit $rc"; show
    elif ! stdout | jq -e --arg id "$id" '.id == $id and (.listen | type == "array")' >/dev/null 2>&1; then
      fail "want {id, listen[], …} with id $id"; show
    else
      port=$(stdout | jq -r '.listen[] | select(startswith("net:127.0.0.1:")) | capture("^net:127\\.0\\.0\\.1:(?<p>[0-9]+)~shs:").p' | head -n 1)
      if [ -z "$port" ] || [ "$port" = 0 ]; then fail "no net:127.0.0.1:PORT~shs:… listen address"; show
      else ok "status: listening on 127.0.0.1:$port"; fi
    fi ;;
  "./bin/sbot publish --type post --text \"hello SSB\""*)
    if [ "$rc" -ne 0 ]; then fail "exit $rc"; show
    elif [ "$(lines_of)" -ne 1 ] || ! stdout | jq -e --arg id "$id" '
        (keys == ["key", "timestamp", "value"]) and (.key | test("^%[A-Za-z0-9+/]{43}=\\.sha256$"))
        and .value.author == $id and .value.sequence == 1 and .value.previous == null
        and .value.content == {"type": "post", "text": "hello SSB"}
        and (.value.signature | endswith(".sig.ed25519"))' >/dev/null 2>&1; then
      fail 'want one {"key","value","timestamp"} record of our post, sequence 1'; show
    else key=$(stdout | jq -r .key); ok "published $key"; fi ;;
  "./bin/sbot log"*)
    if [ "$rc" -ne 0 ]; then fail "exit $rc"; show
    elif [ "$(lines_of)" -ne 1 ] || ! stdout | jq -e --arg k "$key" '(keys == ["key", "timestamp", "value"]) and .key == $k' >/dev/null 2>&1; then
      fail "want one {\"key\",\"value\",\"timestamp\"} line, the post $key"; show
    else ok "log: 1 record, $key"; fi ;;
  "./bin/sbot hist "*)
    if [ "$rc" -ne 0 ]; then fail "exit $rc"; show
    elif [ "$(lines_of)" -ne 1 ] || ! stdout | jq -e --arg k "$key" --arg id "$id" '.key == $k and .value.author == $id and .value.sequence == 1' >/dev/null 2>&1; then
      fail "want our feed: one record, $key by $id"; show
    else ok "hist: our feed, 1 message"; fi ;;
  "kill %1"*)
    local i
    for i in $(seq 1 150); do
      kill -0 "$serve_pid" 2>/dev/null || break
      sleep 0.1
    done
    if [ "$rc" -ne 0 ]; then fail "exit $rc"; show
    elif kill -0 "$serve_pid" 2>/dev/null; then fail "daemon still running 15 s after kill"
    else
      local st=0
      wait "$serve_pid" || st=$?
      if [ "$st" -ne 0 ]; then fail "daemon exited with status $st, want 0 (clean shutdown)"; tail -n 5 "$out/$serve_line.err"
      elif [ -e "$socket" ]; then fail "socket $socket left behind"
      else ok "daemon stopped cleanly (exit 0), socket removed"; fi
    fi ;;
  *)
    fail "no check for this README line: add one to scripts/quickstart-test.sh" ;;
  esac
}

echo "== running it in $clone with HOME=$HOME"
n=0
bgpid=""
serve_line=""
while IFS= read -r line; do
  n=$((n + 1))
  cmd=${line%%#*}                       # the README's comments are not run
  cmd=$(sed 's/[[:space:]]*$//' <<<"$cmd")
  [ -n "$cmd" ] || { n=$((n - 1)); continue; }
  line=$cmd
  if [[ $cmd == *"&" ]]; then
    # A background line: run it as a job of this shell, so that a later
    # "kill %1" in the README refers to it.
    eval "${cmd%&} >\"\$out/\$n.out\" 2>\"\$out/\$n.err\" &"
    bgpid=$!
    serve_line=$n
    rc=0
  else
    rc=0
    eval "$cmd" >"$out/$n.out" 2>"$out/$n.err" </dev/null || rc=$?
  fi
  check
done <<<"$block"

# make serve ARGS=...: the flags reach the daemon (a repo ./demo, a loopback
# port), in its own process group so that it can be stopped as a whole.
echo "== make serve ARGS=\"--repo ./demo --listen 127.0.0.1:0\""
n=serve
line='make serve ARGS="--repo ./demo --listen 127.0.0.1:0"'
setsid make --no-print-directory serve ARGS="--repo ./demo --listen 127.0.0.1:0" >"$out/make-serve.out" 2>"$out/make-serve.err" </dev/null &
mpid=$!
daemons+=("-$mpid")
for i in $(seq 1 1200); do
  [ -S demo/socket ] && break
  kill -0 "$mpid" 2>/dev/null || break
  sleep 0.1
done
if [ ! -S demo/socket ]; then
  fail "no socket at ./demo/socket after 120 s"; tail -n 20 "$out/make-serve.err"
else
  demo_id=$(./bin/sbot whoami --repo ./demo | jq -r .id)
  demo_listen=$(./bin/sbot status --repo ./demo | jq -r '.listen | join(" ")')
  if [ -z "$demo_id" ] || [ "$demo_id" = "$id" ]; then fail "the demo repo has the id \"$demo_id\" (quick start: $id): --repo was not passed"
  elif [[ $demo_listen != *"net:127.0.0.1:"* ]]; then fail "listen addresses \"$demo_listen\": --listen was not passed"
  else ok "make serve took ARGS: repo ./demo ($demo_id), $demo_listen"; fi
fi
kill -TERM -- "-$mpid" 2>/dev/null || true
for i in $(seq 1 150); do
  kill -0 "$mpid" 2>/dev/null || break
  sleep 0.1
done
wait "$mpid" 2>/dev/null || true
daemons=()

if [ "$fails" -ne 0 ]; then
  echo "quickstart-test: $fails check(s) failed"
  exit 1
fi
echo "quickstart-test: the README's Quick start works as written"
