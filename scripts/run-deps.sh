#!/usr/bin/env bash
# Installs what `make run` needs from Debian: npm (fetches the GeoIP data),
# and dig and curl for the commands the demo prints. Idempotent.
set -euo pipefail
need=()
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
