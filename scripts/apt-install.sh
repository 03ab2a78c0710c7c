#!/usr/bin/env bash
# apt-install.sh PACKAGE... installs the Debian packages given (through
# sudo when not root) and stops the services some of them start, since
# geodns's tests and demo run their own instances.
set -euo pipefail
[ $# -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: $*"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now nsd unbound prometheus >/dev/null 2>&1 || true
fi
