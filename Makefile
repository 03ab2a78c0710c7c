# geodns: `make run` serves the example zones; `make test` runs every test.
GO      ?= go
# The version: the release tag (v0.1.0, or v0.1.0-3-gabc1234 after it), or
# 0.1.0-dev+COMMIT before the first tag. The commit is stamped too, for
# builds without VCS stamping (GOFLAGS=-buildvcs=false).
COMMIT  := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
VERSION ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo 0.1.0-dev+$(COMMIT))
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN     := bin/geodns

.PHONY: all build run test fuzz bench bench23 clean deb dist test-deb

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
	# The server builds and vets on the other Unix systems an operator may run it on (raw sockets, O_TMPFILE and netns tests are Linux's).
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	GOOS=freebsd GOARCH=amd64 $(GO) vet ./...
	docker-compose -f docker-compose.yml config -q
	promtool check rules deploy/prometheus/alerts.yml
	cd deploy/prometheus && promtool test rules alerts_test.yml
	FUZZTIME=5s scripts/fuzz.sh
	$(GO) test -race -count=1 -timeout 10m ./...

# Every fuzz target for FUZZTIME each (default 10m).
fuzz:
	FUZZTIME=$${FUZZTIME:-10m} scripts/fuzz.sh

# Go benchmarks of the answer path, then geodns against gdnsd, Knot and NSD
# with dnsperf: issue 23's suite (bench23), then the DNSSEC cells (ROUNDS
# rounds of DURATION per run; tables in benchmarks/out/). As root.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./benchmarks/
	$(MAKE) bench23
	# DNSSEC (issue 21): signed over unsigned with DO, and online denial against Knot's online signer.
	$(GO) run ./benchmarks/peers -rounds $${ROUNDS:-3} -duration $${DURATION:-5s} \
		-servers geodns,geodns-signed,knot-signed -cells static-do,ecs-do,nxflood-do

# Issue 23's table, one command: every UDP cell also with DNS cookies and
# with RRL on (geodns, Knot mod-rrl, NSD), TCP at 10k qps over loopback and
# over a veth link between network namespaces, 1 and 2 server cores, the
# synthetic GeoIP2 file and the real DB-IP City data (200,000 ECS /24s),
# Knot with mod-geoip; peak RSS after every cell. As root (namespaces);
# about 30 minutes at ROUNDS=3 on the 2-core VM.
bench23: build
	scripts/bench-deps.sh
	scripts/fetch-geoip.sh
	$(GO) run ./benchmarks/peers -suite issue23 -rounds $${ROUNDS:-3} -duration $${DURATION:-3s}

# A Debian package (bin/geodns_*.deb): the binary, a systemd unit with a
# dynamic user, /etc/geodns/geodns.yaml and zones/, the man page, bash and
# zsh completion. docs/operations.md says how to install it.
deb: build
	packaging/build.sh deb $(VERSION) $(BIN) bin

# The static binary with the same files, for other distributions.
dist: build
	packaging/build.sh dist $(VERSION) $(BIN) bin

# Installs the package on this machine (purging any installed first), runs
# the installed binary as its unit would, queries it, reloads it, purges it
# and checks nothing is left. Needs root; not part of `make test`.
test-deb: deb
	scripts/test-deb.sh bin/geodns_*.deb

clean:
	rm -rf bin
