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
test:
	@kit="$$(./scripts/interop-kit.sh)" || { \
	  echo "make test: stopped: the JS interop kit could not be prepared (see above)." >&2; \
	  exit 1; }; \
	echo "SSB_INTEROP_DIR=$$kit $(GO) test -race -count=1 -timeout 45m ./..."; \
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
