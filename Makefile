# geodns: `make run` serves the example zones; `make test` runs every test.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/geodns

.PHONY: all build run test fuzz bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/geodns
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/demo-backend ./examples/backend

# The demo: GeoIP data, two local sites, geodns on the example zones.
run: build
	scripts/run-deps.sh
	scripts/fetch-geoip.sh
	$(BIN) check --zones examples/zones
	scripts/demo.sh

test:
	scripts/test-deps.sh
	scripts/fetch-geoip.sh
	test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	docker-compose -f docker-compose.yml config -q
	promtool check rules deploy/prometheus/alerts.yml
	cd deploy/prometheus && promtool test rules alerts_test.yml
	FUZZTIME=5s scripts/fuzz.sh
	$(GO) test -race -count=1 -timeout 10m ./...

# Every fuzz target for FUZZTIME each (default 10m).
fuzz:
	FUZZTIME=$${FUZZTIME:-10m} scripts/fuzz.sh

# Go benchmarks of the answer path, then geodns against gdnsd, Knot and NSD
# with dnsperf (ROUNDS rounds of DURATION per run; tables in benchmarks/out/).
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./benchmarks/
	scripts/bench-deps.sh
	$(GO) run ./benchmarks/peers -rounds $${ROUNDS:-3} -duration $${DURATION:-5s}

clean:
	rm -rf bin
