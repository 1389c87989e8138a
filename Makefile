# hardtrail: make build | test | lint | bench | run | update-golden
GO       ?= go
BIN      ?= bin/hardtrail
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/hardtrail/hardtrail/internal/buildinfo.Version=$(VERSION) \
            -X github.com/hardtrail/hardtrail/internal/buildinfo.Revision=$(REVISION)
# The whole suite stays well inside 15 minutes on 2 cores.
TEST_TIMEOUT ?= 14m

.PHONY: build test lint bench run update-golden clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hardtrail

test:
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff

# Benchmarks print side-by-side figures from one run; see README "Performance".
bench:
	$(GO) test -run '^$$' -bench . -benchtime 5x -timeout 90m ./...

# Snapshot this machine into the default store (root: /var/lib/hardtrail, else $$XDG_DATA_HOME).
run:
	$(GO) run ./cmd/hardtrail snapshot

update-golden:
	$(GO) test -count=1 ./... -run 'Golden|Render|Sources|Unified|Invalid' -update

clean:
	rm -rf bin
