#!/usr/bin/env bash
# Installs what the dnsperf harness (benchmarks/peers) needs from Debian:
# dnsperf and the peers it measures geodns against (gdnsd, Knot, NSD).
# Idempotent; quick when all are present.
set -euo pipefail
need=()
command -v dnsperf >/dev/null 2>&1 || need+=(dnsperf)
command -v gdnsd >/dev/null 2>&1 || [ -x /usr/sbin/gdnsd ] || need+=(gdnsd)
command -v knotd >/dev/null 2>&1 || [ -x /usr/sbin/knotd ] || need+=(knot)
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || need+=(nsd)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
exec "$(dirname "$0")/apt-install.sh" "${need[@]}"
