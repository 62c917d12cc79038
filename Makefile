# Cask: the two entry points a newcomer needs are `make serve` and `make test`.
GO ?= go

.PHONY: serve test interop-kit fuzz bench vet

# serve runs the daemon; pass flags with ARGS, e.g.
#   make serve ARGS="--repo ./demo --listen 127.0.0.1:8009"
ARGS ?=
serve:
	$(GO) run ./cmd/sbot serve $(ARGS)

# test runs every test, interop tests against the real JS peers included.
# scripts/interop-kit.sh prepares the JS harness in interop/js (npm ci when
# node_modules is missing or older than the lockfile) and prints its path;
# when it cannot (no node, no npm, npm ci failed) make test stops here.
# The room's PostgreSQL storage tests use the server CASK_TEST_POSTGRES
# names; when it is unset, make test starts a throwaway one with
# scripts/pg-test-server.sh (PostgreSQL installed: initdb on PATH or in
# /usr/lib/postgresql/*/bin) and stops it at the end.
test:
	@kit="$$(./scripts/interop-kit.sh)" || { \
	  echo "make test: stopped: the JS interop kit could not be prepared (see above)." >&2; \
	  exit 1; }; \
	if [ -z "$$CASK_TEST_POSTGRES" ]; then \
	  CASK_PG_DIR="$$(mktemp -u "$${TMPDIR:-/tmp}/cask-pg.XXXXXX")"; export CASK_PG_DIR; \
	  trap './scripts/pg-test-server.sh stop' EXIT; \
	  CASK_TEST_POSTGRES="$$(./scripts/pg-test-server.sh start)" || { \
	    echo "make test: stopped: no PostgreSQL for the room's storage tests (install the postgresql package, or set CASK_TEST_POSTGRES to a server URL)." >&2; \
	    exit 1; }; \
	  export CASK_TEST_POSTGRES; \
	fi; \
	echo "SSB_INTEROP_DIR=$$kit CASK_TEST_POSTGRES=$$CASK_TEST_POSTGRES $(GO) test -race -count=1 -timeout 45m ./..."; \
	SSB_INTEROP_DIR="$$kit" $(GO) test -race -count=1 -timeout 45m ./...

# interop-kit only prepares the JS harness (npm ci in interop/js).
interop-kit:
	./scripts/interop-kit.sh

# fuzz runs every fuzz target for FUZZTIME each.
FUZZTIME ?= 10s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

vet:
	$(GO) vet ./...
