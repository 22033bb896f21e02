# Sourced by the benches that need an origin: an nginx origin on 127.0.0.1:18081
# that answers "ok" to everything (and, at /introspect, calls any token
# active), the same over h2c on 18086 as a gRPC server would answer (its
# trailers `grpc-status: 0`; the message is not read), and TOKEN, a valid
# HS256 token for
# benches/peers.toml (iss and sub as peers.sh uses them; valid for a day).
# Sets TMP (removed on exit) and `gateway`, the process group that the exit
# trap kills, and gives `start` and `stop_all` for other servers; for
# gRPC, `grpc_call` (h2load's arguments for one unary call) and
# `to_grpc_upstream` (a sed script that makes peers.toml's upstream the
# h2c listener). Needs nginx and python3.
export JWT_SECRET=${JWT_SECRET:-peers-bench-hs256-secret-0123456789abcdef}
TMP=$(mktemp -d)
gateway=""
cleanup() {
  [ -n "$gateway" ] && kill -9 -- "-$gateway" 2>/dev/null
  [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

cat > "$TMP/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18081; keepalive_requests 100000000;
    location / { return 200 "ok"; }
    # An introspection endpoint (RFC 7662) calling every token active, for features.sh.
    location = /introspect {
      default_type application/json;
      return 200 '{"active":true,"token_type":"Bearer","sub":"bench-user-42","scope":"read"}';
    }
  }
  server {
    listen 127.0.0.1:18086 http2; keepalive_requests 100000000;
    location / { default_type application/grpc; add_trailer grpc-status 0; return 200 "ok"; }
  }
}
EOF
nginx -c "$TMP/nginx.conf"

# One unary gRPC call: a length-prefixed protobuf message, field 1 "hello".
printf '\x00\x00\x00\x00\x07\x0a\x05hello' > "$TMP/call.bin"
# shellcheck disable=SC2034 # used by the scripts that source this one
grpc_call=(-d "$TMP/call.bin" -H 'content-type: application/grpc' -H 'te: trailers')
# shellcheck disable=SC2034
to_grpc_upstream='s|^servers = \["127.0.0.1:18081"\]$|servers = ["127.0.0.1:18086"]\nprotocol = "h2c"|'

TOKEN=$(python3 - <<'EOF'
import base64, hashlib, hmac, json, os, time
def b64(d): return base64.urlsafe_b64encode(d).rstrip(b"=").decode()
now = int(time.time())
h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
p = b64(json.dumps({"iss": "bench-issuer", "sub": "bench-user-42", "iat": now, "exp": now + 86400},
                   separators=(",", ":")).encode())
s = b64(hmac.new(os.environ["JWT_SECRET"].encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
print(f"{h}.{p}.{s}")
EOF
)

# start NAME PORT COMMAND...: a server in its own process group (the
# group's id is group[NAME]; `stop_all`, the caller's exit trap, ends
# each), waited for on PORT; its output in $TMP/NAME.log.
declare -A group=()
start() {
  local name=$1 port=$2
  shift 2
  setsid "$@" > "$TMP/$name.log" 2>&1 < /dev/null &
  group[$name]=$!
  disown
  for _ in $(seq 100); do
    (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null && return
    sleep 0.1
  done
  echo "$name did not listen on $port:" >&2
  cat "$TMP/$name.log" >&2
  exit 1
}
stop_all() {
  for pid in "${group[@]}"; do kill -9 -- "-$pid" 2> /dev/null || true; done
  cleanup
}

# Waits up to $1 seconds for something to listen on 127.0.0.1:18085.
wait_for_gateway() {
  for _ in $(seq $(($1 * 10))); do
    (exec 3<>/dev/tcp/127.0.0.1/18085) 2>/dev/null && return
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:18085 after $1 s" >&2
  return 1
}
