#!/usr/bin/env bash
# apt-install.sh PACKAGE... installs the Debian packages given (through
# sudo when not root). Some of them start a system service of their own
# (NSD, Unbound, Knot, gdnsd, Prometheus); geodns's tests and demo run
# private instances on their own ports, so the services of the packages
# installed here, and only those, are stopped and disabled again. A service
# the machine had before is never touched.
set -euo pipefail
[ $# -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Packages already installed (their services are the machine's) are left
# out, whatever the caller asked.
new=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || new+=("$pkg")
done
[ ${#new[@]} -eq 0 ] && exit 0
set -- "${new[@]}"
echo "installing: $*"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
if command -v systemctl >/dev/null 2>&1; then
  for pkg in "$@"; do
    case $pkg in
      nsd | unbound | prometheus | knot | gdnsd)
        $SUDO systemctl disable --now "$pkg" >/dev/null 2>&1 || true ;;
    esac
  done
fi
