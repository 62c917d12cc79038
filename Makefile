# Cask: the two entry points a newcomer needs are `make serve` and `make test`.
GO ?= go

.PHONY: serve test interop-kit fuzz bench vet

serve:
	$(GO) run ./cmd/sbot serve

# test runs every test, interop tests against the real JS peers included.
# scripts/interop-kit.sh prepares the JS kit (npm ci) and prints its path.
test:
	SSB_INTEROP_DIR="$$(./scripts/interop-kit.sh)" $(GO) test -race -count=1 -timeout 45m ./...

# fuzz runs every fuzz target for FUZZTIME each.
FUZZTIME ?= 10s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

vet:
	$(GO) vet ./...
