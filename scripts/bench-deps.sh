#!/usr/bin/env bash
# Installs what the dnsperf harness (benchmarks/peers) needs from Debian:
# dnsperf and the peers it measures geodns against (gdnsd, Knot, NSD),
# Knot's geoip module (its geo cells: knot-geoip), ip (the tcp-link
# cell's network namespaces) and ldns-signzone (the pre-signed servers'
# zone).
# Idempotent; quick when all are present.
set -euo pipefail
need=()
command -v dnsperf >/dev/null 2>&1 || need+=(dnsperf)
command -v gdnsd >/dev/null 2>&1 || [ -x /usr/sbin/gdnsd ] || need+=(gdnsd)
command -v knotd >/dev/null 2>&1 || [ -x /usr/sbin/knotd ] || need+=(knot)
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || need+=(nsd)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
ls /usr/lib/*/knot/modules-*/geoip.so >/dev/null 2>&1 || need+=(knot-module-geoip)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)
command -v ldns-signzone >/dev/null 2>&1 || need+=(ldnsutils)
exec "$(dirname "$0")/apt-install.sh" "${need[@]}"
