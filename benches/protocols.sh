#!/usr/bin/env bash
# HTTP/2, gRPC and WebSocket through portero, each beside a peer in the
# same run (method and figures: BENCHMARKS.md):
#
#   h2      h2load (h2c, prior knowledge) -> HAProxy in h2 mode with the
#           jwt_verify rules of peers.sh | portero -> the origin over h2c
#   grpc    the same, each request a unary gRPC call (POST, one message,
#           answered with it and grpc-status 0 in the trailers)
#   ws      examples/ws_load, WS_CONNS WebSockets echoing WS_SIZE-byte
#           messages, straight to the origin's echo | through nginx (no
#           auth: the usual WebSocket proxy, for what a hop costs) |
#           through a portero tunnel
#
# The origin is examples/bench_origin on one thread; portero runs
# benches/protocols.toml with one worker thread, HAProxy with nbthread 1.
# ROUNDS interleaved rounds of DURATION seconds (after 2 s of warm-up);
# the report gives each row's median and the median of its per-round ratios
# to the peer. Loopback only; every run is bounded by `timeout`.
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
CLIENTS=${CLIENTS:-10}   # h2load connections ...
STREAMS=${STREAMS:-10}   # ... and concurrent streams on each
WS_CONNS=${WS_CONNS:-50}
WS_SIZE=${WS_SIZE:-128}
for tool in haproxy h2load nginx python3; do
  command -v "$tool" > /dev/null || { echo "protocols.sh needs $tool (apt-get install haproxy nghttp2-client nginx)" >&2; exit 1; }
done
# shellcheck source=benches/origin.sh
. "$(dirname "$0")/origin.sh"   # TOKEN and TMP (its nginx origin sits idle here)

servers=()
stop_all() {
  for pid in "${servers[@]}"; do kill -9 -- "-$pid" 2> /dev/null || true; done
  cleanup
}
trap stop_all EXIT

# start NAME PORT COMMAND...: in its own process group, waited for on PORT.
start() {
  local name=$1 port=$2
  shift 2
  setsid "$@" > "$TMP/$name.log" 2>&1 &
  servers+=($!)
  disown
  for _ in $(seq 100); do
    (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null && return
    sleep 0.1
  done
  echo "$name did not listen on $port:" >&2
  cat "$TMP/$name.log" >&2
  exit 1
}

cat > "$TMP/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe_h2
  bind 127.0.0.1:18094 proto h2
  http-request set-var(txn.bearer) http_auth_bearer
  http-request return status 401 unless { var(txn.bearer) -m found }
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request return status 401 unless { var(txn.alg) -m str HS256 }
  http-request return status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"$JWT_SECRET") -m int 1 }
  http-request set-var(txn.now) date
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request return status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
  http-request return status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str bench-issuer }
  http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query('\$.sub')
  http-request return status 401 unless { var(txn.sub) -m found }
  http-request set-header X-Auth-Sub %[var(txn.sub)]
  default_backend be_h2c
backend be_h2c
  server origin 127.0.0.1:18091 proto h2
EOF

cat > "$TMP/nginx-ws.conf" <<EOF
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
EOF

start origin 18091 "$BIN/examples/bench_origin" --http 127.0.0.1:18091 --websocket 127.0.0.1:18092
start haproxy 18094 haproxy -f "$TMP/haproxy.cfg"
start nginx-ws 18093 nginx -c "$TMP/nginx-ws.conf"
start portero 18095 "$BIN/portero" --config "$(dirname "$0")/protocols.toml"

# One unary call's request: a length-prefixed protobuf message, field 1 "hello".
printf '\x00\x00\x00\x00\x07\x0a\x05hello' > "$TMP/call.bin"
grpc=(-d "$TMP/call.bin" -H 'content-type: application/grpc' -H 'te: trailers')

# h2 ROW URL [h2load args]: prints "ROW req/s mean-ms failed".
h2() {
  local row=$1 url=$2
  shift 2
  local out
  out=$(timeout $((DURATION + 30)) h2load -t1 -c"$CLIENTS" -m"$STREAMS" -D"$DURATION" --warm-up-time=2 \
    -H "authorization: Bearer $TOKEN" "$@" "$url")
  awk -v row="$row" '
    function ms(t) { return t ~ /us$/ ? t / 1000 : t ~ /ms$/ ? t + 0 : t * 1000 }
    /^finished in/ { rps = $4 }
    /^requests:/ { failed = $10 + $12 + $14 }
    /^status codes:/ { non2xx = $5 + $7 + $9 }
    /^time for request:/ { mean = ms($6) }
    END { printf "%s %s %.3f %d\n", row, rps, mean, failed + non2xx }' <<< "$out"
}

# ws ROW URL [token]: prints "ROW messages/s p50-µs p99-µs errors".
ws() {
  local row=$1 url=$2 token=${3:-}
  "$BIN/examples/ws_load" "$url" 2 2 "$WS_SIZE" $token > /dev/null
  timeout $((DURATION + 30)) "$BIN/examples/ws_load" "$url" "$WS_CONNS" "$DURATION" "$WS_SIZE" $token |
    awk -v row="$row" '/^WSRESULT/ { print row, $2, $3, $4, $6 }'
}

for round in $(seq "$ROUNDS"); do
  {
    h2 h2-haproxy-jwt http://127.0.0.1:18094/
    h2 h2-portero http://127.0.0.1:18095/
    h2 grpc-haproxy-jwt http://127.0.0.1:18094/bench.Echo/Say "${grpc[@]}"
    h2 grpc-portero http://127.0.0.1:18095/bench.Echo/Say "${grpc[@]}"
    ws ws-direct ws://127.0.0.1:18092/ws
    ws ws-nginx ws://127.0.0.1:18093/ws
    ws ws-portero ws://127.0.0.1:18095/ws "$TOKEN"
  } | sed "s/^/$round /" | tee -a "$TMP/results"
done

python3 - "$TMP/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    round_, row, rate, *rest = line.split()
    rows.setdefault(row, {})[int(round_)] = (float(rate), rest)
# Each row, and the peer its ratio is to (the median of per-round ratios).
order = [("h2-haproxy-jwt", None), ("h2-portero", "h2-haproxy-jwt"),
         ("grpc-haproxy-jwt", None), ("grpc-portero", "grpc-haproxy-jwt"),
         ("ws-direct", None), ("ws-nginx", "ws-direct"),
         ("ws-portero", "ws-direct"), ("ws-portero", "ws-nginx")]
print(f"{'row':<18} {'req/s or msg/s':>15} {'vs':>22}  latency (h2: mean ms; ws: p50/p99 µs)  failures")
for name, peer in order:
    runs = rows.get(name, {})
    if not runs:
        print(f"{name:<18} no result")
        continue
    rate = statistics.median(r for r, _ in runs.values())
    ratio = ""
    if peer and rows.get(peer):
        both = [runs[k][0] / rows[peer][k][0] for k in runs if k in rows[peer]]
        ratio = f"{statistics.median(both):.2f}x {peer}"
    rest = list(zip(*[extra for _, extra in runs.values()]))
    latency = "/".join(str(statistics.median(float(v) for v in col)) for col in rest[:-1])
    failures = sum(int(v) for v in rest[-1])
    print(f"{name:<18} {rate:>15.0f} {ratio:>22}  {latency:<38} {failures}")
EOF
