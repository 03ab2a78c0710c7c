#!/bin/bash
# Server cost per TCP query, from the server's side: CPU (task-clock),
# system calls and context switches per query, for servers already
# running (each pinned to CPU 0; dnsperf runs on CPU 1), rounds
# interleaved. Unlike CPU at a fixed rate, a ping-pong load (one query
# outstanding) leaves nothing to batch, so every query is one read, one
# answer, one write and one wait: the per-query cost itself, which the
# machine's load changes less than it changes batching.
#
#   benchmarks/tcp-per-query.sh QUERYFILE ROUNDS name:pid:port...
#   OUTSTANDING=50 QPS=10000 benchmarks/tcp-per-query.sh ...   # pipelined, as the harness's tcp cell
#
# Needs perf (linux-perf) and dnsperf; run as root (tracepoints).
set -eu
qf=$1 rounds=$2
shift 2
q=${OUTSTANDING:-1} rate=${QPS:-5000}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
	line="round $r"
	for s in "$@"; do
		IFS=: read -r name pid port <<<"$s"
		taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$qf" -t 2 -l 6 -m tcp -c 1 -q "$q" -Q "$rate" >"$out" 2>&1 &
		dp=$!
		sleep 0.5
		stat=$(perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter -p "$pid" -- sleep 5 2>&1)
		wait $dp
		n=$(awk '/Queries per second/ {print $4*5}' "$out")
		line="$line | $name $(echo "$stat" | awk -F, -v n="$n" '{v[NR]=$1} END {printf "%.1f us %.2f syscalls %.2f cs (%d q)", 1000*v[1]/n, v[3]/n, v[2]/n, n}')"
	done
	echo "$line"
done
