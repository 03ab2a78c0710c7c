#!/usr/bin/env bash
# peer-geodns.sh ZONEDIR PORT: runs geodns as the server under test of the
# shared peer harness (EXTRA_SERVER_CMD="benchmarks/peer-geodns.sh {zonedir} {port}").
# ZONEDIR holds example.com.zone (RFC 1035) and geo.mmdb; www.example.com
# must answer EU clients 192.0.2.101, NA clients 192.0.2.102, others
# 192.0.2.100 (GEO.txt). The zone is imported with geodns import and www
# becomes a service with those three sites.
set -euo pipefail
zd=$1 port=$2
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${GEODNS:-$here/bin/geodns}
out=$zd/yaml
mkdir -p "$out"
grep -v '^www ' "$zd/example.com.zone" > "$zd/static.zone"
"$bin" import --origin example.com. "$zd/static.zone" > "$out/example.com.yaml"
cat >> "$out/example.com.yaml" <<'YAML'
  www: {service: web}
sites:
  other: {lat: 0, lon: 0}
  eu: {lat: 50.11, lon: 8.68}
  na: {lat: 39.04, lon: -77.49}
services:
  web:
    ttl: 300
    endpoints:
      - {site: other, address: 192.0.2.100}
      - {site: eu, address: 192.0.2.101}
      - {site: na, address: 192.0.2.102}
    rules:
      - {match: {continent: [EU]}, sites: [eu]}
      - {match: {continent: [NA]}, sites: [na]}
    site_order: [other]
YAML
exec "$bin" serve --zones "$out" --listen "127.0.0.1:$port" --geoip "$zd/geo.mmdb" --http off --log-format json
