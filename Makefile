# hardtrail: make build | test | lint | bench | bench-all | run | update-golden | package | image
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

.PHONY: build test test-deps lint bench bench-all run update-golden dist-bin package image clean

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

# Benchmarks print side-by-side figures from one run; see README "Performance". bench prints
# the performance goals' rows, each under the command that reproduces it, and fails when a
# guarded goal (the diff's ratios, the agent's memory, the scrape's latency) is missed; bench-all runs every benchmark.
BENCH_ROWS = \
	"diff of a stored 100,000-line artifact vs GNU diff -u|-bench DiffStored -benchtime 20x ./cmd/hardtrail" \
	"agent memory after 10 cycles (shipped packs; 10,000 rules; madvdontneed=0; version floor) and /metrics with 10,000 series vs node_exporter|-bench Footprint -benchtime 1x ./cmd/hardtrail" \
	"/metrics with 10,000 series in process: a published state, a new one, identity and gzip|-bench Scrape -benchtime 50x -count 3 ./agent/daemon" \
	"check vs snapshot of the linux profile|-bench BenchmarkCheck$$ -benchtime 20x ./cmd/hardtrail" \
	"check of 500 packages, 200 files and a port vs goss validate|-bench CheckVsGoss -benchtime 5x ./cmd/hardtrail" \
	"fleet capture vs an OpenSSH ssh loop, parallel-ssh and Ansible|-bench Fleet -benchtime 1x -timeout 60m ./cmd/hardtrail" \
	"log, incident list and incident show over 1,000 targets x 100 snapshots, SQLite vs PostgreSQL|-bench StoreQueries -benchtime 5x ./cmd/hardtrail"
bench:
	@uptime; st=0; for row in $(BENCH_ROWS); do \
		what=$${row%%|*}; args=$${row#*|}; \
		echo; echo "== $$what"; echo "\$$ $(GO) test -run '^\$$' $$args"; \
		out=$$($(GO) test -run '^$$' -timeout 60m $$args 2>&1) || st=1; \
		echo "$$out" | grep -E '^(Benchmark|--- FAIL|    .*(goal|above)|FAIL|ok)'; \
	done; echo; echo "== from a hardening revert to the page"; \
	echo "\$$ $(GO) test -count=1 -run TestAgentCaptureOnChangePages -v ./cmd/hardtrail"; \
	out=$$($(GO) test -count=1 -run TestAgentCaptureOnChangePages -v ./cmd/hardtrail 2>&1) || st=1; \
	echo "$$out" | grep -E '^(---|    |ok|FAIL)'; \
	echo; echo "== three agents sharing a PostgreSQL store and 300 targets, one SIGKILLed"; \
	echo "\$$ $(GO) test -count=1 -run TestLeasedAgentsTakeOver -v ./cmd/hardtrail"; \
	out=$$($(GO) test -count=1 -run TestLeasedAgentsTakeOver -v ./cmd/hardtrail 2>&1) || st=1; \
	echo "$$out" | grep -E '^(--- |    lease_test|ok|FAIL)'; \
	uptime; exit $$st

bench-all:
	$(GO) test -run '^$$' -bench . -benchtime 5x -timeout 90m ./...

# Snapshot this machine into the default store (root: /var/lib/hardtrail, else $$XDG_DATA_HOME).
run:
	$(GO) run ./cmd/hardtrail snapshot

# Every package's tests take -update (internal/testutil); only the goldens whose content
# changed are rewritten, so the tree stays clean when nothing did.
update-golden: test-deps
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKG) -update

# Packages and image; the version comes from git (deploy/packaging/version.sh).
PKG_VERSION ?= $(shell deploy/packaging/version.sh)
ARCHES   ?= amd64 arm64
DIST     ?= dist
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH
PKG_LDFLAGS := -s -w -X github.com/hardtrail/hardtrail/internal/buildinfo.Version=$(PKG_VERSION) \
               -X github.com/hardtrail/hardtrail/internal/buildinfo.Revision=$(REVISION)

# Static linux binaries for every architecture, and the shell completions.
dist-bin:
	@for a in $(ARCHES); do \
		echo "build $(DIST)/linux_$$a/hardtrail"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags '$(PKG_LDFLAGS)' \
			-o $(DIST)/linux_$$a/hardtrail ./cmd/hardtrail || exit 1; \
	done
	@mkdir -p $(DIST)/completions
	@b=$(DIST)/linux_$$($(GO) env GOARCH)/hardtrail; \
	if [ ! -x $$b ]; then b=$(DIST)/hardtrail-host; $(GO) build -o $$b ./cmd/hardtrail || exit 1; fi; \
	$$b completion bash > $(DIST)/completions/hardtrail.bash && \
	$$b completion zsh > $(DIST)/completions/_hardtrail && \
	$$b completion fish > $(DIST)/completions/hardtrail.fish

# dist/hardtrail_VERSION_ARCH.deb and dist/hardtrail-VERSION.ARCH.rpm (see deploy/packaging).
package: dist-bin
	@for a in $(ARCHES); do \
		case $$a in amd64) r=x86_64;; arm64) r=aarch64;; *) r=$$a;; esac; \
		HT_VERSION=$(PKG_VERSION) HT_ARCH=$$a HT_DIST=$(DIST) $(GO) tool nfpm package \
			-f deploy/packaging/nfpm.yaml -p deb -t $(DIST)/hardtrail_$(PKG_VERSION)_$$a.deb || exit 1; \
		HT_VERSION=$(PKG_VERSION) HT_ARCH=$$a HT_DIST=$(DIST) $(GO) tool nfpm package \
			-f deploy/packaging/nfpm.yaml -p rpm -t $(DIST)/hardtrail-$(PKG_VERSION).$$r.rpm || exit 1; \
	done

# dist/oci: an OCI image layout (an index over ARCHES), built without a container daemon.
image: dist-bin
	$(GO) run ./deploy/image -o $(DIST)/oci -version $(PKG_VERSION) -revision $(REVISION) \
		$(foreach a,$(ARCHES),-bin $(a)=$(DIST)/linux_$(a)/hardtrail)

clean:
	rm -rf bin $(DIST)
