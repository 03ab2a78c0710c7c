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
  "FuzzFastPath ./resolver"      # cached wire answers == full answers
  "FuzzCompile ./zones"          # YAML zone loader
  "FuzzImportMaster ./zones"     # RFC 1035 master-file import
  "FuzzRequest ./api"            # admin API requests
  "FuzzReadResponse ./health"    # health-check HTTP responses == net/http
)
for t in "${targets[@]}"; do
  set -- $t
  out="$(go test -run '^$' -fuzz "^$1\$" -fuzztime "$FUZZTIME" ${FUZZFLAGS:-} "$2" 2>&1)" || { echo "$out"; exit 1; }
  echo "$1: $(echo "$out" | grep -E '^fuzz: elapsed' | tail -1)"
done
