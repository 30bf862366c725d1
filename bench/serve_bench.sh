#!/bin/bash
# Serving benchmark: start acceld on the example models and drive it with bench/loadgen over
# TCP and over the Unix socket, at concurrency 1 and 16, interleaved in rounds; print the
# median of the rounds per point (requests/s, p50, p99).
# usage: bench/serve_bench.sh [-b BUILD_DIR] [-m MODEL] [-r ROUNDS] [-d SECONDS] [-t THREADS]
# BUILD_DIR defaults to ./build (scripts/quickstart.sh builds there).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build model=mlp rounds=3 secs=5 threads=0
while getopts "b:m:r:d:t:" o; do
	case $o in
	b) build=$(cd "$OPTARG" && pwd) ;;
	m) model=$OPTARG ;;
	r) rounds=$OPTARG ;;
	d) secs=$OPTARG ;;
	t) threads=$OPTARG ;;
	*) sed -n '2,6p' "$0"; exit 2 ;;
	esac
done
for p in daemon/acceld bench/loadgen; do
	[ -x "$build/$p" ] || { echo "serve_bench: $build/$p not built (make -C $build $p)" >&2; exit 1; }
done
tmp=$(mktemp -d /tmp/acceld-bench-XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build/daemon/acceld" --listen "127.0.0.1:$port" --listen "unix:$tmp/acceld.sock" \
	--model-repository "$top/conf/models" --threads "$threads" --log-level warning 2>"$tmp/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
	"$build/client/accelctl" -a "127.0.0.1:$port" -t 1000 status 2>/dev/null | grep -q 'ready: *true' && break
	sleep 0.1
done
echo "serve_bench: acceld pid $pid, model $model, $rounds rounds of ${secs}s per point, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
for r in $(seq "$rounds"); do
	for c in 1 16; do
		for addr in "127.0.0.1:$port" "unix:$tmp/acceld.sock"; do
			"$build/bench/loadgen" -a "$addr" -m "$model" -c "$c" -d "$secs" -w 1 --json |
				sed "s/^{/{\"transport\":\"${addr%%:*}\",/" >>"$tmp/results"
		done
	done
done
/usr/bin/python3 - "$tmp/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| transport | concurrency | requests/s | p50 µs | p99 µs | errors |")
print("|---|---|---|---|---|---|")
for c in (1, 16):
    for t in ("127.0.0.1", "unix"):
        pts = [r for r in rows if r["concurrency"] == c and r["transport"] == t]
        med = lambda k: statistics.median(r[k] for r in pts)
        name = "TCP" if t != "unix" else "Unix socket"
        print(f"| {name} | {c} | {med('requests_per_s'):.0f} | {med('p50_us'):.0f} | {med('p99_us'):.0f} | {sum(r['errors'] for r in pts)} |")
PY
