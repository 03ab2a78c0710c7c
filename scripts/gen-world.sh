#!/usr/bin/env bash
# Regenerates ui/assets/world.json, the status page's map: the countries of
# Natural Earth 1:110m (public domain) as packaged by world-atlas (ISC,
# Mike Bostock), fetched with npm pack at a pinned version and checksum,
# projected to SVG paths by ui/internal/genworld. The result is committed,
# so builds and air-gapped hosts never fetch it; run this only to update.
set -euo pipefail

PKG="world-atlas"
VERSION="2.0.2"
SHA256="032e7765f2ce00edaeafec23ff22bc3b77e42987c257da944cc585b452c05b97"

root="$(cd "$(dirname "$0")/.." && pwd)"
command -v npm >/dev/null || { echo "gen-world: npm is needed (apt-get install npm)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PKG@$VERSION" >/dev/null 2>"$work/npm.log") || { cat "$work/npm.log" >&2; exit 1; }
tgz="$(ls "$work"/*.tgz)"
echo "$SHA256  $tgz" | sha256sum -c --quiet - || { echo "gen-world: checksum mismatch for $PKG@$VERSION" >&2; exit 1; }
tar -xzf "$tgz" -C "$work" package/countries-110m.json
(cd "$root" && go run ./ui/internal/genworld "$work/package/countries-110m.json" > ui/assets/world.json.new)
mv "$root/ui/assets/world.json.new" "$root/ui/assets/world.json"
echo "ui/assets/world.json: $(wc -c < "$root/ui/assets/world.json") bytes"
