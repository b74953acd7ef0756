# Veil — build and test entry points. `make test` is what CI runs.
GO ?= go
export CGO_ENABLED ?= 0

.PHONY: test test-short build vet interop-deps bench fuzz-smoke

build:
	CGO_ENABLED=0 $(GO) build ./...

interop/node_modules/.package-lock.json: interop/package.json interop/package-lock.json
	cd interop && npm ci --no-audit --no-fund

# The libsignal peer. Without npm the interop tests skip loudly, except
# under CI=true, where a missing peer is an error.
interop-deps:
	@if command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory interop/node_modules/.package-lock.json; \
	elif [ "$$CI" = "true" ]; then \
	  echo "npm is required in CI (the libsignal interop tests must run)" >&2; exit 1; \
	else \
	  echo "WARNING: npm not found: the libsignal interop tests will be SKIPPED (install Node >= 20.11 with npm)" >&2; \
	fi

# The whole suite, with the race detector (it needs cgo; the product does not).
test: interop-deps
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 25m ./...

test-short:
	$(GO) test -short ./...

# Protocol benchmarks on one core: Veil, libsignal 0.90.0 in Node (through
# the interop peer) and go.mau.fi/libsignal (bench/ module), in one run.
# Results go to docs/BENCHMARKS.md with the machine and date.
bench: interop-deps
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 -count 5 ./protocol ./protocol/internal/ratchet ./interop
	cd bench && $(GO) test -run '^$$' -bench . -benchmem -cpu 1 -count 5 ./...

# Run every fuzz target briefly (FUZZTIME each, default 10s). The seed
# corpora under testdata/fuzz also run as plain tests in `make test`.
FUZZTIME ?= 10s
fuzz-smoke:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done
