# dg developer tasks. `make test` is what CI runs (.ci/run).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
DATE     ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
MANIFEST ?= manifests/local.yaml
# Packages whose code runs goroutines concurrently get the race detector.
RACE_PKGS ?= ./pkg/store/... ./pkg/projection/... ./pkg/server/... ./pkg/workflow/...
FUZZTIME ?= 10s

.PHONY: build test test-go fuzz-short lint bench up deps deps-browser clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dg ./cmd/dg

deps:
	@scripts/ensure-deps.sh

# The console's browser tests (pkg/server) also need Chromium.
deps-browser:
	@scripts/ensure-deps.sh --browser

# Runs dg on its embedded default: a managed PostgreSQL in .dg/ and the API on :4100.
up: deps build
	./dg up -f $(MANIFEST)

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

test: deps-browser lint test-go fuzz-short

test-go:
	$(GO) test -count=1 ./...
	@pkgs=$$($(GO) list $(RACE_PKGS) 2>/dev/null); \
	  if [ -n "$$pkgs" ]; then $(GO) test -race -count=1 $$pkgs; fi

# A short run of every fuzz target; longer runs belong to `make reliability`.
fuzz-short:
	@scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf dg dist

# Release tooling (.goreleaser.yaml, docs/install.md). Not part of `make test`;
# CI runs release-check. goreleaser is pinned and built once into bin/ by
# scripts/goreleaser.sh, which both goreleaser targets share.
.PHONY: release-check release-snapshot package-check man completions

# goreleaser check, then a cross-compile of dg for darwin and windows
# (warning only, unless RELEASE_CHECK_STRICT=1).
release-check:
	@scripts/release-check.sh

# Every archive, the .deb/.rpm packages and checksums.txt into dist/, then
# scripts/check-packages.sh inspects them.
release-snapshot:
	@scripts/goreleaser.sh release --snapshot --clean
	@scripts/check-packages.sh

package-check:
	@scripts/check-packages.sh

MAN_DIR ?= bin/man
COMPLETIONS_DIR ?= bin/completions

man:
	$(GO) run ./cmd/dg docs man --dir $(MAN_DIR)

completions:
	$(GO) run ./cmd/dg docs completions --dir $(COMPLETIONS_DIR)

# Reliability and security suite (test/reliability, docs/reliability.md):
# kill -9 under concurrent writers, database and disk faults, projector and
# workflow crashes, a bad input corpus, the auth/tenant matrix, fuzzing of
# every Fuzz target and a soak. `make reliability` runs the full sizes and
# rewrites docs/reliability.md; `make reliability-short` the short variant
# (the same tests `go test ./...` runs by default, plus bounded fuzzing).
.PHONY: reliability reliability-short
reliability: deps
	@scripts/reliability.sh full

reliability-short: deps
	@scripts/reliability.sh short
