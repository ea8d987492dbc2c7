#!/bin/bash
# usage: bench/http/floor/measure.sh <server command…>
# Runs the server on CPU 0 and `wrk -t1 -c64` on CPU 1 (1 s warm-up, 4 s
# measured) and prints the server's CPU time per request (all threads,
# from schedstat). The server must print "LISTENING <port>". Loopback only.
set -eu
out=$(mktemp)
taskset -c 0 "$@" > "$out" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 50); do grep -q LISTENING "$out" && break; sleep 0.1; done
port=$(awk '/LISTENING/ {print $2}' "$out")
cpu_ns() { python3 -c "import glob; print(sum(int(open(f).read().split()[0]) for f in glob.glob('/proc/$pid/task/*/schedstat')))"; }
taskset -c 1 wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" > /dev/null
before=$(cpu_ns)
requests=$(taskset -c 1 wrk -t1 -c64 -d4s "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
after=$(cpu_ns)
python3 -c "r=$requests; ns=$after-$before; print('%s: %d requests, %.2f us of server CPU per request, %.0f requests per CPU-second' % ('$1', r, ns/1e3/r, r/(ns/1e9)))"
