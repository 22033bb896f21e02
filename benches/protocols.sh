#!/usr/bin/env bash
# WebSockets through portero beside a peer in the same run (method and
# figures: BENCHMARKS.md; HTTP/2, gRPC and TLS are modes.sh's):
# examples/ws_load, WS_CONNS WebSockets echoing WS_SIZE-byte messages,
# straight to the origin's echo | through nginx (no auth: the usual
# WebSocket proxy, for what a hop costs) | through a portero tunnel.
#
# The origin is examples/bench_origin on one thread; portero runs
# benches/protocols.toml with one worker thread, nginx one worker.
# ROUNDS interleaved rounds of DURATION seconds (after 2 s of warm-up);
# the report gives each row's median and the median of its per-round
# ratios to the peer. Loopback only; every run is bounded by `timeout`.
#
# Two builds: one that takes in the examples builds with the tests' tokio
# features (`test-util`), and would give portero them too.
#
#   cargo build --release --bin portero
#   cargo build --release --example bench_origin --example ws_load
#   bash benches/protocols.sh target/release
set -euo pipefail
BIN=${1:-target/release}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WS_CONNS=${WS_CONNS:-50}
WS_SIZE=${WS_SIZE:-128}
for tool in nginx python3; do
  command -v "$tool" > /dev/null || { echo "protocols.sh needs $tool (apt-get install nginx)" >&2; exit 1; }
done
# shellcheck source=benches/origin.sh
. "$(dirname "$0")/origin.sh"   # TOKEN, TMP and `start` (its nginx origin sits idle here)
trap stop_all EXIT

cat > "$TMP/nginx-ws.conf" <<CONF
worker_processes 1;
pid $TMP/nginx-ws.pid;
daemon off;
error_log $TMP/nginx-ws-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18093;
    location / {
      proxy_pass http://127.0.0.1:18092;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection upgrade;
      proxy_read_timeout 60s;
    }
  }
}
CONF

start origin 18092 "$BIN/examples/bench_origin" --websocket 127.0.0.1:18092
start nginx-ws 18093 nginx -c "$TMP/nginx-ws.conf"
start portero 18095 "$BIN/portero" --config "$(dirname "$0")/protocols.toml"

# ws ROW URL [token]: prints "ROW messages/s p50-µs p99-µs errors".
ws() {
  local row=$1 url=$2 token=${3:-}
  "$BIN/examples/ws_load" "$url" 2 2 "$WS_SIZE" $token > /dev/null
  timeout $((DURATION + 30)) "$BIN/examples/ws_load" "$url" "$WS_CONNS" "$DURATION" "$WS_SIZE" $token |
    awk -v row="$row" '/^WSRESULT/ { print row, $2, $3, $4, $6 }'
}

for round in $(seq "$ROUNDS"); do
  {
    ws ws-direct ws://127.0.0.1:18092/ws
    ws ws-nginx ws://127.0.0.1:18093/ws
    ws ws-portero ws://127.0.0.1:18095/ws "$TOKEN"
  } | sed "s/^/$round /" | tee -a "$TMP/results"
done

python3 - "$TMP/results" <<'REPORT'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    round_, row, rate, *rest = line.split()
    rows.setdefault(row, {})[int(round_)] = (float(rate), rest)
# Each row, and the peer its ratio is to (the median of per-round ratios).
order = [("ws-direct", None), ("ws-nginx", "ws-direct"),
         ("ws-portero", "ws-direct"), ("ws-portero", "ws-nginx")]
print(f"{'row':<12} {'msg/s':>9} {'vs':>18}  p50/p99 µs  failures")
for name, peer in order:
    runs = rows.get(name, {})
    if not runs:
        print(f"{name:<12} no result")
        continue
    rate = statistics.median(r for r, _ in runs.values())
    ratio = ""
    if peer and rows.get(peer):
        both = [runs[k][0] / rows[peer][k][0] for k in runs if k in rows[peer]]
        ratio = f"{statistics.median(both):.2f}x {peer}"
    rest = list(zip(*[extra for _, extra in runs.values()]))
    latency = "/".join(str(statistics.median(float(v) for v in col)) for col in rest[:-1])
    failures = sum(int(v) for v in rest[-1])
    print(f"{name:<12} {rate:>9.0f} {ratio:>18}  {latency:<11} {failures}")
REPORT
