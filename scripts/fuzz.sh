#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME each (default 10s), one after the
# other, and prints each one's last progress line. A crasher is saved under
# the package's testdata/fuzz/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-10s}"
targets=(
  "FuzzAnswer ./resolver"        # raw packet -> handler
  "FuzzECS ./resolver"           # client subnet option parsing
  "FuzzEngine ./resolver"        # the engine (cache miss and hit) == the oracle (the old full path)
  "FuzzPackQuery ./resolver"     # the dns.Msg API's query packer == Pack; its decoder (fresh, shared) == Unpack
  "FuzzCompile ./zones"          # YAML zone loader
  "FuzzImportMaster ./zones"     # RFC 1035 master-file import
  "FuzzRequest ./api"            # admin API requests
  "FuzzReadResponse ./health"    # health-check HTTP responses == net/http
  "FuzzScanMatchesParser ./zones" # master-file positions == miekg's parser
  "FuzzClaims ./xfr"             # the TCP path's raw scans for transfers and TSIG
  "FuzzServe ./xfr"              # any message through the transfer wrapper, no panic
)
for t in "${targets[@]}"; do
  set -- $t
  if ! out="$(go test -run '^$' -fuzz "^$1\$" -fuzztime "$FUZZTIME" ${FUZZFLAGS:-} "$2" 2>&1)"; then
    # Go before 1.27 may fail a run with a bare "context deadline exceeded"
    # when -fuzztime ends while a worker is busy (golang/go#75804): no input
    # failed. Anything else, or a reproducer written, is a failure.
    if ! grep -q '^    context deadline exceeded$' <<<"$out" || grep -q 'Failing input written' <<<"$out"; then
      echo "$out"
      exit 1
    fi
    echo "$1: stopped by the fuzzing engine's deadline race (golang/go#75804), no failing input"
  fi
  echo "$1: $(echo "$out" | grep -E '^fuzz: elapsed' | tail -1)"
done
