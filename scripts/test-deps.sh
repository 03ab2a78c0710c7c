#!/usr/bin/env bash
# Installs what the tests need from Debian: NSD and Knot (the two reference
# servers of the differential and conformance tests; nsd-checkzone and
# Knot's kzonecheck, from knot-dnssecutils, judge the zone acceptance test;
# with ldns-verify-zone, from ldnsutils, the signed transfers),
# Unbound (the resolver in the ECS test), dig, npm (to fetch the GeoIP
# data), promtool (checks our metrics), docker-compose (validates
# docker-compose.yml), Chromium (the status page's browser test) and etcd
# (the cluster tests start real 3-member etcd clusters, internal/etcdtest).
# Idempotent; quick when all are present.
set -euo pipefail
need=()
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || need+=(nsd)
command -v knotd >/dev/null 2>&1 || [ -x /usr/sbin/knotd ] || need+=(knot)
command -v kzonecheck >/dev/null 2>&1 || [ -x /usr/sbin/kzonecheck ] || need+=(knot-dnssecutils)
# ldns-verify-zone judges the signed zones geodns transfers.
command -v ldns-verify-zone >/dev/null 2>&1 || need+=(ldnsutils)
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v unbound >/dev/null 2>&1 || [ -x /usr/sbin/unbound ] || need+=(unbound)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/etcd ] || need+=(etcd-server)
# The NS-set split-view test builds network namespaces (ip, nsenter).
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
exec "$(dirname "$0")/apt-install.sh" "${need[@]}"
