# hardtrail: make build | test | lint | bench | run | update-golden
GO       ?= go
BIN      ?= bin/hardtrail
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/hardtrail/hardtrail/internal/buildinfo.Version=$(VERSION) \
            -X github.com/hardtrail/hardtrail/internal/buildinfo.Revision=$(REVISION)
# The whole suite stays well inside 15 minutes on 2 cores.
TEST_TIMEOUT ?= 14m
# What `make test` runs: all packages, or e.g. PKG=./rules/... TESTFLAGS='-run Sshd'.
PKG       ?= ./...
TESTFLAGS ?=
STATICCHECK_VERSION ?= v0.8.2

.PHONY: build test test-deps lint bench run update-golden clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hardtrail

# Installs the missing test tools first (Debian, root), or stops with the command to run. A
# test skips only what HARDTRAIL_TEST_SKIP names; the last line counts what ran and was skipped.
test: test-deps
	$(GO) run ./internal/testrun -count=1 -timeout $(TEST_TIMEOUT) $(TESTFLAGS) $(PKG)

# The tools the tests need: internal/testutil/testdeps.txt, the list CI installs from too.
test-deps:
	@./.ci/test-deps

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Benchmarks print side-by-side figures from one run; see README "Performance".
bench:
	$(GO) test -run '^$$' -bench . -benchtime 5x -timeout 90m ./...

# Snapshot this machine into the default store (root: /var/lib/hardtrail, else $$XDG_DATA_HOME).
run:
	$(GO) run ./cmd/hardtrail snapshot

# Every package's tests take -update (internal/testutil); only the goldens whose content
# changed are rewritten, so the tree stays clean when nothing did.
update-golden: test-deps
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKG) -update

clean:
	rm -rf bin
