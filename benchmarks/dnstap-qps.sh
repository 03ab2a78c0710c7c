#!/usr/bin/env bash
# QPS per core with the dnstap query log off and on (to a file), with
# dnsperf: geodns pinned to CPU 0 (so GOMAXPROCS is 1: the dnstap writer
# shares the core), dnsperf to CPU 1, the example zones, ROUNDS alternating
# rounds of DURATION seconds. Prints QPS and geodns_dnstap_dropped_total.
# MODES="off on qlog" adds the sampled JSON query log at its defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-8}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 go build -o "$work/geodns" ./cmd/geodns
for _ in $(seq 50); do echo "www.example.com A"; echo "mail.example.com A"; echo "example.com SOA"; done >"$work/q.txt"
printf 'server_id: bench\n' >"$work/off.yaml"
printf 'server_id: bench\ndnstap: {file: %s/tap.fstrm}\n' "$work" >"$work/on.yaml"
printf 'server_id: bench\nquery_log: {path: %s/queries.json}\n' "$work" >"$work/qlog.yaml" # defaults: 1 %, 100 lines/s
port=25353 http=127.0.0.1:28053
# cpu_ticks prints a process's user + system CPU time in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq "$ROUNDS"); do
	for mode in ${MODES:-off on}; do
		taskset -c 0 "$work/geodns" serve --zones examples/zones --listen 127.0.0.1:$port --http $http \
			--probe-allow 127.0.0.0/8 --config "$work/$mode.yaml" >"$work/$mode.log" 2>&1 &
		pid=$!
		for _ in $(seq 50); do dig +short +time=1 -p $port @127.0.0.1 example.com SOA >/dev/null 2>&1 && break; sleep 0.1; done
		cpu0=$(cpu_ticks "$pid")
		out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p $port -d "$work/q.txt" -l "$DURATION" -c 4 -q 200 2>&1)
		cpu1=$(cpu_ticks "$pid")
		qps=$(awk '/Queries per second/{print $4}' <<<"$out")
		done_q=$(awk '/Queries completed/{print $3}' <<<"$out")
		# Queries per CPU-second of the server: QPS per core, which other
		# work on the host (it steals the core, not CPU time) hardly moves.
		per_core=$(awk -v q="$done_q" -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" 'BEGIN{ if (t > 0) printf "%.0f", q / (t / hz); else print "?" }')
		drops=$(curl -s http://$http/metrics | awk '/^geodns_dnstap_dropped_total/{print $2}')
		kill "$pid"; wait "$pid" 2>/dev/null || true
		rm -f "$work/tap.fstrm" "$work/queries.json"
		echo "round $round dnstap $mode: $qps qps, $per_core queries per server CPU-second, dnstap drops $drops"
	done
done
