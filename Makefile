# Veil — build and test entry points. `make test` is what CI runs.
GO ?= go
export CGO_ENABLED ?= 0

.PHONY: test test-short build vet interop-deps bench fuzz-smoke

build:
	CGO_ENABLED=0 $(GO) build ./...

interop/node_modules/.package-lock.json: interop/package.json interop/package-lock.json
	cd interop && npm ci --no-audit --no-fund

interop-deps: interop/node_modules/.package-lock.json

# The whole suite, with the race detector (it needs cgo; the product does not).
test: interop-deps
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 25m ./...

test-short:
	$(GO) test -short ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./protocol/...
