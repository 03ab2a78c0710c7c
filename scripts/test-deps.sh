#!/usr/bin/env bash
# Installs what the tests need from Debian: NSD (the reference server of the
# differential test), Unbound (the resolver in the ECS test), dig, npm (to
# fetch the GeoIP data), promtool (checks our metrics) and docker-compose
# (validates docker-compose.yml). Idempotent; quick when all are present.
set -euo pipefail

need=()
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || need+=(nsd)
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v unbound >/dev/null 2>&1 || [ -x /usr/sbin/unbound ] || need+=(unbound)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts NSD and Unbound as services on install; the tests run their own.
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now nsd unbound prometheus >/dev/null 2>&1 || true
fi
