#!/usr/bin/env bash
# Client latency with and without a shadow, one run: two gateways on the
# demo config (one worker each, access log off), one of them comparing its
# client-flat answers with a legacy service that takes 2 s to answer (a
# Python stand-in), so its comparison queue (the default 1,000) stays
# full. `wrk -t1 -c20 -d10s --latency` logins per round on each, ROUNDS
# rounds interleaved (default 3); then the RSS of both and the shadowed
# gateway's comparison counts.
#
#   cargo build --release && bash benches/shadow.sh [binary]
set -euo pipefail
binary=$(realpath "${1:-target/release/portero}")
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"

# The legacy service: every answer after 2 s, as client-flat's seed says.
cat > legacy.py <<'PY'
import json, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class Legacy(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        time.sleep(2)
        now = int(time.time())
        body = json.dumps({"access_token": "a.b.c", "exp": now + 3600, "iat": now}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 2048
ThreadingHTTPServer(("127.0.0.1", 18299), Legacy).serve_forever()
PY
python3 legacy.py 2>/dev/null & pids+=($!)

# The demo config on other ports, one worker, no access log; $1: its name,
# $2 and $3: its public and admin ports.
config() {
  sed -e 's/^threads = .*/threads = 1\naccess_log = false/' \
    -e "s/127.0.0.1:8080/127.0.0.1:$2/" -e "s/127.0.0.1:9901/127.0.0.1:$3/" \
    -e "s|^data_dir = .*|data_dir = \"$1-data\"|" "$here/gateway.toml" > "$1.toml"
}
config plain 18281 18282
config shadowed 18291 18292
printf '\n[issuers.client-flat.shadow]\nurl = "http://127.0.0.1:18299"\ntimeout = "5s"\n' >> shadowed.toml
cat > login.lua <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"client_id": "demo_client_123", "client_secret": "demo_secret_456_ABCDEFGH"}'
LUA
for name in plain shadowed; do
  PORTERO_ADMIN_TOKEN=x "$binary" --config "$name.toml" > "$name.log" 2>&1 & pids+=($!)
done
gateway_pid() { pgrep -f -- "--config $1.toml" | head -1; }
for admin in 18282 18292; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$(gateway_pid "$1")/status"; }
echo "RSS idle: plain $(rss plain) KiB, shadowed $(rss shadowed) KiB"

for round in $(seq "${ROUNDS:-3}"); do
  for name in plain shadowed; do
    port=$([ "$name" = plain ] && echo 18281 || echo 18291)
    out=$(wrk -t1 -c20 -d10s --latency -s login.lua "http://127.0.0.1:$port/api/v1/auth")
    printf 'round %s %-9s %10s req/s  p50 %8s  p99 %8s  %s\n' "$round" "$name" \
      "$(awk '/Requests\/sec/ {print $2}' <<< "$out")" \
      "$(awk '$1 == "50%" {print $2}' <<< "$out")" \
      "$(awk '$1 == "99%" {print $2}' <<< "$out")" \
      "$(grep -o 'Non-2xx or 3xx responses: [0-9]*' <<< "$out" || true)"
  done
  echo "  RSS after the round: plain $(rss plain) KiB, shadowed $(rss shadowed) KiB (queue full)"
done
curl -s http://127.0.0.1:18292/metrics | grep '^portero_shadow_comparisons_total'
