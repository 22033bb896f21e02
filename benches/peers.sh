#!/usr/bin/env bash
# peers.sh -- loopback benchmark of reverse-proxy peers for the authenticating
# gateway (method and figures: BENCHMARKS.md at the repository root).
#
#   origin      nginx, fixed "ok" body                      127.0.0.1:18081
#   nginx       nginx reverse proxy, upstream keepalive     127.0.0.1:18082
#   haproxy     haproxy plain proxy (nbthread 1)            127.0.0.1:18083
#   haproxy-jwt haproxy + HS256 jwt_verify + exp/iss check,
#               injects X-Auth-Sub                          127.0.0.1:18084
#   gateway     $GATEWAY_CMD (optional), on $GATEWAY_PORT   127.0.0.1:18085
#
# All load goes to 127.0.0.1 only; every wrk run is bounded (<= 15 s plus a
# hard `timeout`); every process started here is stopped by its PID/process
# group on exit, and the temp dir is removed.
set -Eeuo pipefail

# ----------------------------------------------------------------- settings
CONNS=${CONNS:-50}                 # wrk connections
DURATION=${DURATION:-10}           # seconds per measured run (max 15)
WARMUP=${WARMUP:-2}                # seconds of warm-up before every measured run (0 = none)
ROUNDS=${ROUNDS:-2}                # interleaved rounds: A B C D .. A B C D ..
PIN=${PIN:-unpinned}               # unpinned | pinned | both (unpinned reproduced best on these machines)
SERVER_CPUS=${SERVER_CPUS:-0}      # pinned mode: peers (+ gateway) here
ORIGIN_CPUS=${ORIGIN_CPUS:-$SERVER_CPUS}  # pinned mode: the origin nginx here (default: with the peers)
CLIENT_CPUS=${CLIENT_CPUS:-1}      # pinned mode: wrk here
WRK_THREADS=${WRK_THREADS:-1}
WRK_TIMEOUT=${WRK_TIMEOUT:-2s}
TARGETS=${TARGETS:-}               # optional subset, e.g. "direct haproxy-jwt gateway"
GATEWAY_CMD=${GATEWAY_CMD:-}
GATEWAY_PORT=${GATEWAY_PORT:-18085}
GATEWAY_WAIT=${GATEWAY_WAIT:-30}   # seconds to wait for the gateway port
GATEWAY_THREADS=${GATEWAY_THREADS:-1}  # exported as a hint for GATEWAY_CMD
# Contention guard: this 2-core box is shared (e.g. a cargo build in another shell).
QUIET_MAX_PCT=${QUIET_MAX_PCT:-15} # before each run, wait until other processes use <= this % of all CPUs ...
QUIET_WAIT=${QUIET_WAIT:-120}      # ... for at most this many seconds, then measure anyway (flagged)
DIRTY_RETRIES=${DIRTY_RETRIES:-2}  # repeat a run whose foreign CPU load exceeded QUIET_MAX_PCT, at most this often
BENCH_NICE=${BENCH_NICE:-}         # nice level for servers + wrk; default -10 as root, 0 otherwise
LOGS=${LOGS:-0}                    # 1: every proxy writes an access line per request (nginx: combined to a file,
                                   # haproxy: httplog to stdout, a file); the gateway's command reads $LOGS
OUT_JSON=${OUT_JSON:-}
SKIP_INSTALL=${SKIP_INSTALL:-0}
KEEP_TMP=${KEEP_TMP:-0}
JWT_SECRET=${JWT_SECRET:-peers-bench-hs256-secret-0123456789abcdef}
JWT_ISSUER=${JWT_ISSUER:-bench-issuer}
JWT_SUB=${JWT_SUB:-bench-user-42}
JWT_CHECK_ISS=${JWT_CHECK_ISS:-1}  # haproxy-jwt also requires iss == JWT_ISSUER
UP_PORT=${UP_PORT:-18081}
NGX_PORT=${NGX_PORT:-18082}
HAP_PORT=${HAP_PORT:-18083}
HAJ_PORT=${HAJ_PORT:-18084}
MAX_RUN_S=15

log()  { printf '[peers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { log "WARNING: $*"; }
die()  { log "ERROR: $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
isint() { [[ $1 =~ ^[0-9]+$ ]]; }

# A fresh machine lacks the peers and the load generator: install them
# (Debian packages, as root), keeping their services from starting.
missing=()
for pkg in nginx haproxy wrk; do have "$pkg" || missing+=("$pkg"); done
if (( ${#missing[@]} )); then
  (( EUID == 0 )) || die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
  log "installing ${missing[*]}"
  added_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && added_policy=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  (( added_policy )) && rm -f /usr/sbin/policy-rc.d
fi

if [[ -z $BENCH_NICE ]]; then if (( EUID == 0 )); then BENCH_NICE=-10; else BENCH_NICE=0; fi; fi
[[ $BENCH_NICE =~ ^-?[0-9]+$ ]] || die "BENCH_NICE must be an integer"
for v in CONNS DURATION WARMUP ROUNDS GATEWAY_PORT GATEWAY_WAIT UP_PORT NGX_PORT HAP_PORT HAJ_PORT QUIET_MAX_PCT QUIET_WAIT DIRTY_RETRIES; do
  isint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
done
(( DURATION >= 1 )) || die "DURATION must be >= 1"
(( ROUNDS >= 1 ))   || die "ROUNDS must be >= 1"
(( CONNS >= 1 ))    || die "CONNS must be >= 1"
if (( DURATION > MAX_RUN_S )); then warn "DURATION=$DURATION clamped to $MAX_RUN_S s"; DURATION=$MAX_RUN_S; fi
if (( WARMUP > MAX_RUN_S ));   then warn "WARMUP=$WARMUP clamped to $MAX_RUN_S s";     WARMUP=$MAX_RUN_S; fi
case $PIN in pinned) MODES=(pinned) ;; unpinned) MODES=(unpinned) ;; both) MODES=(pinned unpinned) ;;
  *) die "PIN must be pinned|unpinned|both" ;; esac

[[ $JWT_SECRET =~ ^[A-Za-z0-9._~+/=-]+$ ]] || die "JWT_SECRET may only use [A-Za-z0-9._~+/=-] (it is embedded in haproxy.cfg)"
[[ $JWT_SECRET =~ ^(proc|sess|txn|req|res)\. ]] && die "JWT_SECRET must not look like a haproxy variable name"
[[ $JWT_ISSUER =~ ^[A-Za-z0-9._~:/-]+$ ]] || die "JWT_ISSUER may only use [A-Za-z0-9._~:/-]"

# ------------------------------------------------------ state and cleanup
TMP=""
CREATED_POLICY=0
declare -a START_ORDER=()     # server names in start order
declare -A SRV_PID=()         # name -> pid (== process group id, via setsid)
declare -A PGID_NAME=()       # pgid -> name

stop_servers() {
  local i name pid t
  for (( i=${#START_ORDER[@]}-1; i>=0; i-- )); do
    name=${START_ORDER[$i]}; pid=${SRV_PID[$name]:-}
    [[ -n $pid ]] || continue
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for (( t=0; t<50; t++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      warn "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    # stray members of the group (e.g. nginx workers) -- by process group id only
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "SRV_PID[$name]"; unset "PGID_NAME[$pid]"
  done
  START_ORDER=()
}

cleanup() {
  local rc=$?
  set +e
  stop_servers
  if (( CREATED_POLICY )); then rm -f /usr/sbin/policy-rc.d; fi
  if [[ -n $TMP && -d $TMP ]]; then
    if [[ $KEEP_TMP == 1 ]]; then log "kept temp dir $TMP"; else rm -rf -- "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ dependencies
install_deps() {
  local -a pkgs=()
  have wrk     || pkgs+=(wrk)
  have nginx   || pkgs+=(nginx-light)
  have haproxy || pkgs+=(haproxy)
  have curl    || pkgs+=(curl)
  have python3 || pkgs+=(python3)
  { have taskset && have setsid; } || pkgs+=(util-linux)
  (( ${#pkgs[@]} )) || return 0
  [[ $SKIP_INSTALL == 1 ]] && die "missing packages: ${pkgs[*]} (SKIP_INSTALL=1)"
  (( EUID == 0 )) || die "missing packages: ${pkgs[*]}; run as root or install them"
  have apt-get || die "missing packages: ${pkgs[*]} and no apt-get"
  # Keep Debian's postinst from starting system nginx/haproxy services (port 80 etc.).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; CREATED_POLICY=1
  fi
  log "installing: ${pkgs[*]}"
  apt-get update -qq >/dev/null
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; then
    # nginx-light is only a metapackage on some releases; fall back to nginx
    pkgs=("${pkgs[@]/nginx-light/nginx}")
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null \
      || die "apt-get install ${pkgs[*]} failed"
  fi
  if (( CREATED_POLICY )); then rm -f /usr/sbin/policy-rc.d; CREATED_POLICY=0; fi
}
install_deps
for b in wrk nginx haproxy curl python3 taskset setsid timeout; do have "$b" || die "$b not found"; done

NCPU=$(getconf _NPROCESSORS_ONLN)
ALL_CPUS="0-$((NCPU-1))"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
CLK_TCK=$(getconf CLK_TCK)

HAP_VERSION=$( { haproxy -v 2>/dev/null || true; } | sed -n 's/^HA-\{0,1\}Proxy version \([0-9][0-9.]*\).*/\1/p' | head -n1)
NGX_VERSION=$( { nginx -v 2>&1 || true; } | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p' | head -n1)
WRK_VERSION=$( { wrk -v 2>&1 || true; } | awk 'NR==1 {print $2}')  # wrk -v exits 1
IFS=. read -r hv_major hv_minor _ <<<"${HAP_VERSION:-0.0}"
if (( hv_major < 2 || (hv_major == 2 && hv_minor < 5) )); then
  die "haproxy $HAP_VERSION has no jwt_verify (needs >= 2.5)"
fi

TMP=$(mktemp -d /tmp/peers-bench.XXXXXX)
chmod 755 "$TMP"
RESULTS="$TMP/results.tsv"
: > "$RESULTS"

# -------------------------------------------------------------- JWT tokens
# mint <secret> <exp offset s> [alg] [sub]  -- HS256 via python3 stdlib only
mint() {
  python3 - "$@" <<'PY'
import base64, hashlib, hmac, json, os, sys, time
secret, off = sys.argv[1].encode(), int(sys.argv[2])
alg = sys.argv[3] if len(sys.argv) > 3 else "HS256"
sub = sys.argv[4] if len(sys.argv) > 4 else os.environ["JWT_SUB"]
iss = os.environ["JWT_ISSUER"]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
enc = lambda o: b64(json.dumps(o, separators=(",", ":")).encode())
now = int(time.time())
head = enc({"alg": alg, "typ": "JWT"})
body = enc({"sub": sub, "iss": iss, "iat": now, "exp": now + off})
signing = f"{head}.{body}"
sig = "" if alg == "none" else b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())
print(f"{signing}.{sig}")
PY
}
export JWT_ISSUER JWT_SUB
TOKEN=$(mint "$JWT_SECRET" 3600)                        # valid: exp = now + 1h
BAD_TOKEN=$(mint "wrong-$JWT_SECRET" 3600)             # well-formed, bad signature
EXPIRED_TOKEN=$(mint "$JWT_SECRET" -60)                # good signature, expired
NONE_TOKEN=$(mint "" 3600 none)                         # alg=none
FORGED_TOKEN="${TOKEN%%.*}.$(cut -d. -f2 <<<"$(mint "$JWT_SECRET" 3600 HS256 admin)").${TOKEN##*.}"  # payload swapped

# ----------------------------------------------------------------- configs
cat > "$TMP/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/origin.pid;
error_log $TMP/origin.err warn;
worker_rlimit_nofile 16384;
events { worker_connections 4096; }
http {
  access_log off;
  server_tokens off;
  default_type text/plain;
  client_body_temp_path $TMP/origin-body;
  proxy_temp_path $TMP/origin-proxy;
  keepalive_requests 100000000;
  keepalive_timeout 75s;
  server {
    listen 127.0.0.1:$UP_PORT backlog=4096;
    location = /echo-sub { return 200 "sub=\$http_x_auth_sub\n"; }
    location / { return 200 "ok"; }
  }
}
EOF

cat > "$TMP/nginx-proxy.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx-proxy.pid;
error_log $TMP/nginx-proxy.err warn;
worker_rlimit_nofile 16384;
events { worker_connections 4096; }
http {
  $( [[ $LOGS == 1 ]] && echo "access_log $TMP/nginx-access.log;" || echo "access_log off;" )
  server_tokens off;
  client_body_temp_path $TMP/nginx-body;
  proxy_temp_path $TMP/nginx-proxy-tmp;
  keepalive_requests 100000000;
  keepalive_timeout 75s;
  upstream origin {
    server 127.0.0.1:$UP_PORT;
    keepalive 64;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
  }
  server {
    listen 127.0.0.1:$NGX_PORT backlog=4096;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF

hap_common() {
  cat <<EOF
global
  nbthread 1
  maxconn 4096
  pidfile $TMP/$1.pid
$( [[ $LOGS == 1 ]] && echo "  log stdout format raw local0" )
defaults
  mode http
$( [[ $LOGS == 1 ]] && printf '  log global\n  option httplog\n' )
  option http-keep-alive
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 75s
backend be_origin
  server origin 127.0.0.1:$UP_PORT
EOF
}

{ hap_common haproxy-plain; cat <<EOF
frontend fe_plain
  bind 127.0.0.1:$HAP_PORT backlog 4096
  default_backend be_origin
EOF
} > "$TMP/haproxy-plain.cfg"

# JWT rules: bearer present -> alg == HS256 -> HMAC signature (jwt_verify == 1)
# -> exp > now -> (iss) -> sub present -> X-Auth-Sub := sub (client copy replaced).
# "http-request return" keeps the client connection alive on 401, like a gateway would.
{ hap_common haproxy-jwt; cat <<EOF
frontend fe_jwt
  bind 127.0.0.1:$HAJ_PORT backlog 4096
  http-request set-var(txn.bearer) http_auth_bearer
  http-request return status 401 content-type text/plain string "missing bearer token" hdr WWW-Authenticate Bearer unless { var(txn.bearer) -m found }
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request return status 401 content-type text/plain string "unsupported alg" hdr WWW-Authenticate Bearer unless { var(txn.alg) -m str HS256 }
  http-request return status 401 content-type text/plain string "bad signature" hdr WWW-Authenticate Bearer unless { var(txn.bearer),jwt_verify(txn.alg,"$JWT_SECRET") -m int 1 }
  http-request set-var(txn.now) date
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request return status 401 content-type text/plain string "token expired" hdr WWW-Authenticate Bearer unless { var(txn.exp),sub(txn.now) -m int gt 0 }
EOF
if [[ $JWT_CHECK_ISS == 1 ]]; then cat <<EOF
  http-request return status 401 content-type text/plain string "bad issuer" hdr WWW-Authenticate Bearer unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str $JWT_ISSUER }
EOF
fi
cat <<EOF
  http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query('\$.sub')
  http-request return status 401 content-type text/plain string "no subject" hdr WWW-Authenticate Bearer unless { var(txn.sub) -m found }
  http-request set-header X-Auth-Sub %[var(txn.sub)]
  default_backend be_origin
EOF
} > "$TMP/haproxy-jwt.cfg"

for c in haproxy-plain haproxy-jwt; do
  haproxy -c -q -f "$TMP/$c.cfg" >"$TMP/$c.check" 2>&1 || { cat "$TMP/$c.check" >&2; die "haproxy $HAP_VERSION rejects $c.cfg (jwt_verify support?)"; }
done
nginx -t -q -e "$TMP/nginx-t.err" -p "$TMP" -c "$TMP/origin.conf" 2>"$TMP/nginx-t.out" || { cat "$TMP/nginx-t.out" >&2; die "origin.conf invalid"; }
nginx -t -q -e "$TMP/nginx-t.err" -p "$TMP" -c "$TMP/nginx-proxy.conf" 2>"$TMP/nginx-t.out" || { cat "$TMP/nginx-t.out" >&2; die "nginx-proxy.conf invalid"; }

cat > "$TMP/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("WRKRESULT %.2f %.1f %.1f %.1f %.1f %.1f %d %d %d %.3f\n",
    summary.requests / s, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, summary.requests, e.status, e.connect + e.read + e.write + e.timeout, s))
end
EOF

# ------------------------------------------------------------- processes
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_bg <name> <cpus> <cmd...>: own session/process group (pid == pgid)
start_bg() {
  local name=$1 cpus=$2; shift 2
  setsid nice -n "$BENCH_NICE" taskset -c "$cpus" "$@" >"$TMP/$name.log" 2>&1 </dev/null &
  local pid=$!
  START_ORDER+=("$name"); SRV_PID[$name]=$pid; PGID_NAME[$pid]=$name
}

wait_port() { # <name> <port> <timeout s>
  local name=$1 port=$2 t=$(( $3 * 10 )) pid=${SRV_PID[$1]}
  while (( t-- > 0 )); do
    port_open "$port" && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$TMP/$name.log" >&2 || true; die "$name exited before listening on :$port"; }
    sleep 0.1
  done
  tail -n 20 "$TMP/$name.log" >&2 || true
  die "$name did not listen on 127.0.0.1:$port within $3 s"
}

start_servers() { # <peer cpu set> <origin cpu set>
  local cpus=$1 ocpus=$2 p
  for p in "$UP_PORT" "$NGX_PORT" "$HAP_PORT" "$HAJ_PORT"; do port_open "$p" && die "port $p already in use"; done
  start_bg origin       "$ocpus" nginx -e "$TMP/origin.err" -p "$TMP" -c "$TMP/origin.conf"
  start_bg nginx-proxy  "$cpus" nginx -e "$TMP/nginx-proxy.err" -p "$TMP" -c "$TMP/nginx-proxy.conf"
  start_bg haproxy-plain "$cpus" haproxy -db -f "$TMP/haproxy-plain.cfg"
  start_bg haproxy-jwt  "$cpus" haproxy -db -f "$TMP/haproxy-jwt.cfg"
  wait_port origin "$UP_PORT" 10
  wait_port nginx-proxy "$NGX_PORT" 10
  wait_port haproxy-plain "$HAP_PORT" 10
  wait_port haproxy-jwt "$HAJ_PORT" 10
  if [[ -n $GATEWAY_CMD ]]; then
    port_open "$GATEWAY_PORT" && die "gateway port $GATEWAY_PORT already in use"
    start_bg gateway "$cpus" env UPSTREAM_URL="http://127.0.0.1:$UP_PORT" UPSTREAM_ADDR="127.0.0.1:$UP_PORT" GATEWAY_PORT="$GATEWAY_PORT" \
      GATEWAY_THREADS="$GATEWAY_THREADS" JWT_SECRET="$JWT_SECRET" JWT_ISSUER="$JWT_ISSUER" LOGS="$LOGS" \
      bash -c "$GATEWAY_CMD"
    wait_port gateway "$GATEWAY_PORT" "$GATEWAY_WAIT"
  fi
  local n; for n in "${START_ORDER[@]}"; do
    [[ $(awk '{sub(/.*\) /,""); print $3}' "/proc/${SRV_PID[$n]}/stat") == "${SRV_PID[$n]}" ]] \
      || warn "$n: pid ${SRV_PID[$n]} is not its process-group leader; CPU accounting may be incomplete"
  done
}

# ------------------------------------------------------------ functional checks
CHECK_FAILS=0
# expect <desc> <code> <body-substring or -> <port> <path> [curl args...]
expect() {
  local desc=$1 want=$2 body=$3 port=$4 path=$5; shift 5
  local got
  rm -f "$TMP/body"; : > "$TMP/body"
  got=$(curl -s -o "$TMP/body" -w '%{http_code}' --max-time 3 "$@" "http://127.0.0.1:$port$path" || true)
  if [[ -n $got && $want == *"$got"* && ( $body == - || $(cat "$TMP/body") == *"$body"* ) ]]; then
    log "  ok    $desc -> $got"
  else
    local wb=""; [[ $body == - ]] || wb=" with body containing \"$body\""
    log "  FAIL  $desc -> got $got '$(head -c 80 "$TMP/body")', want $want$wb"
    CHECK_FAILS=$((CHECK_FAILS+1))
  fi
}
functional_checks() {
  local A="Authorization: Bearer"
  log "functional checks (haproxy $HAP_VERSION, nginx $NGX_VERSION)"
  expect "origin GET /"                  200 ok "$UP_PORT"  /
  expect "nginx proxy GET /"             200 ok "$NGX_PORT" /
  expect "haproxy proxy GET /"           200 ok "$HAP_PORT" /
  expect "haproxy-jwt valid token"       200 ok "$HAJ_PORT" / -H "$A $TOKEN"
  expect "haproxy-jwt injects X-Auth-Sub" 200 "sub=$JWT_SUB" "$HAJ_PORT" /echo-sub -H "$A $TOKEN"
  expect "haproxy-jwt overrides client X-Auth-Sub" 200 "sub=$JWT_SUB" "$HAJ_PORT" /echo-sub -H "$A $TOKEN" -H "X-Auth-Sub: admin"
  expect "haproxy-jwt no token"          401 - "$HAJ_PORT" /
  expect "haproxy-jwt bad signature"     401 "bad signature" "$HAJ_PORT" / -H "$A $BAD_TOKEN"
  expect "haproxy-jwt forged payload"    401 "bad signature" "$HAJ_PORT" / -H "$A $FORGED_TOKEN"
  expect "haproxy-jwt expired"           401 "expired" "$HAJ_PORT" / -H "$A $EXPIRED_TOKEN"
  expect "haproxy-jwt alg=none"          401 - "$HAJ_PORT" / -H "$A $NONE_TOKEN"
  expect "haproxy-jwt garbage"           401 - "$HAJ_PORT" / -H "$A not.a.jwt"
  (( CHECK_FAILS == 0 )) || die "$CHECK_FAILS peer check(s) failed; not benchmarking"
  if [[ -n $GATEWAY_CMD ]]; then
    expect "gateway valid token"         200 - "$GATEWAY_PORT" / -H "$A $TOKEN"
    (( CHECK_FAILS == 0 )) || die "gateway does not answer 200 to a valid token; not benchmarking"
    expect "gateway bad signature"       "401 403" - "$GATEWAY_PORT" / -H "$A $BAD_TOKEN"
    expect "gateway expired"             "401 403" - "$GATEWAY_PORT" / -H "$A $EXPIRED_TOKEN"
    expect "gateway no token"            "401 403" - "$GATEWAY_PORT" /
    expect "gateway injects X-Auth-Sub"  200 "sub=$JWT_SUB" "$GATEWAY_PORT" /echo-sub -H "$A $TOKEN"
    (( CHECK_FAILS == 0 )) || warn "gateway failed $CHECK_FAILS check(s); benchmarking it anyway"
    CHECK_FAILS=0
  fi
}

# ------------------------------------------------------------- measurement
# cpu_snapshot: "name ticks" for every started server (all processes of its group)
cpu_snapshot() {
  local f line rest name
  local -a fs
  local -A acc=()
  for f in /proc/[0-9]*/stat; do
    { read -r line < "$f"; } 2>/dev/null || continue
    rest=${line##*) }
    read -ra fs <<<"$rest"
    name=${PGID_NAME[${fs[2]}]:-}
    [[ -n $name ]] || continue
    acc[$name]=$(( ${acc[$name]:-0} + fs[11] + fs[12] ))
  done
  for name in "${!acc[@]}"; do echo "$name ${acc[$name]}"; done
}
ticks_of() { awk -v n="$2" '$1==n {print $2; f=1} END {if (!f) print 0}' <<<"$1"; }

# /proc/stat: "<task-busy ticks> <all ticks> <steal ticks>" (task-busy = user+nice+system)
stat_snapshot() {
  local _c u n s i w q sq st rest
  read -r _c u n s i w q sq st rest < /proc/stat
  echo "$((u + n + s)) $((u + n + s + i + w + q + sq + st)) $st"
}
# wait_quiet: block until processes other than ours use <= QUIET_MAX_PCT of the machine
wait_quiet() {
  (( QUIET_MAX_PCT < 100 )) || return 0
  local deadline=$((SECONDS + QUIET_WAIT)) said=0 a b pct
  while :; do
    read -ra a <<<"$(stat_snapshot)"; sleep 1; read -ra b <<<"$(stat_snapshot)"
    pct=$(( (b[1] - a[1]) > 0 ? 100 * (b[0] - a[0]) / (b[1] - a[1]) : 0 ))
    (( pct <= QUIET_MAX_PCT )) && return 0
    if (( SECONDS >= deadline )); then
      warn "other processes still use ${pct}% of the CPUs after ${QUIET_WAIT}s; measuring anyway (see 'other' column)"
      return 0
    fi
    (( said )) || { log "other processes use ${pct}% of the CPUs; waiting up to ${QUIET_WAIT}s for quiet"; said=1; }
  done
}
all_ticks() { awk '{t += $2} END {print t + 0}' <<<"$1"; }

# target table: name port token server
declare -a TGT_NAME=() TGT_PORT=() TGT_TOKEN=() TGT_SERVER=()
add_target() {
  if [[ -n $TARGETS && " $TARGETS " != *" $1 "* ]]; then return 0; fi
  TGT_NAME+=("$1"); TGT_PORT+=("$2"); TGT_TOKEN+=("$3"); TGT_SERVER+=("$4")
}
# Every target gets the same Authorization header, so request size is identical
# and differences are due to proxying / verification only.
add_target direct            "$UP_PORT"  "$TOKEN"     origin
add_target nginx             "$NGX_PORT" "$TOKEN"     nginx-proxy
add_target haproxy           "$HAP_PORT" "$TOKEN"     haproxy-plain
add_target haproxy-jwt       "$HAJ_PORT" "$TOKEN"     haproxy-jwt
if [[ -n $GATEWAY_CMD ]]; then
  add_target gateway         "$GATEWAY_PORT" "$TOKEN" gateway
fi
add_target haproxy-jwt-badsig "$HAJ_PORT" "$BAD_TOKEN" haproxy-jwt
if [[ -n $GATEWAY_CMD ]]; then
  add_target gateway-badsig  "$GATEWAY_PORT" "$BAD_TOKEN" gateway
fi
(( ${#TGT_NAME[@]} )) || die "TARGETS='$TARGETS' selects nothing"

run_one() { # <mode> <round> <idx> <client cpus>
  local mode=$1 round=$2 i=$3 ccpus=$4
  local name=${TGT_NAME[$i]} port=${TGT_PORT[$i]} tok=${TGT_TOKEN[$i]} srv=${TGT_SERVER[$i]}
  local url="http://127.0.0.1:$port/"
  local -a wrk=(timeout -k 2 0 nice -n "$BENCH_NICE" taskset -c "$ccpus" wrk -t"$WRK_THREADS" -c"$CONNS" --timeout "$WRK_TIMEOUT"
                -H "Authorization: Bearer $tok")
  wait_quiet
  if (( WARMUP > 0 )); then
    wrk[3]=$((WARMUP + 10))
    "${wrk[@]}" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || warn "$name warm-up failed"
  fi
  wrk[3]=$((DURATION + 10))
  local before after rc=0 s0 s1
  before=$(cpu_snapshot); s0=$(stat_snapshot)
  TIMEFORMAT='%U %S'
  { time "${wrk[@]}" -d"${DURATION}s" -s "$TMP/report.lua" "$url" >"$TMP/wrk.out" 2>&1; } 2>"$TMP/time.out" || rc=$?
  s1=$(stat_snapshot); after=$(cpu_snapshot)
  local line; line=$(grep '^WRKRESULT ' "$TMP/wrk.out" | tail -n1 || true)
  if (( rc != 0 )) || [[ -z $line ]]; then
    warn "$mode r$round $name: wrk failed (rc=$rc): $(tail -n 3 "$TMP/wrk.out" | tr '\n' ' ')"
    return 0
  fi
  local -a r; read -ra r <<<"$line"
  local cu cs; read -r cu cs < "$TMP/time.out"
  local peer_t orig_t
  peer_t=$(( $(ticks_of "$after" "$srv") - $(ticks_of "$before" "$srv") ))
  orig_t=0
  if [[ $srv != origin ]]; then orig_t=$(( $(ticks_of "$after" origin) - $(ticks_of "$before" origin) )); fi
  # CPU used by processes other than our servers and wrk during the run (a rustc in another shell, ...)
  local -a a b; read -ra a <<<"$s0"; read -ra b <<<"$s1"
  local ours_t=$(( $(all_ticks "$after") - $(all_ticks "$before") ))
  local other_pct steal_pct
  other_pct=$(awk -v busy=$((b[0] - a[0])) -v all=$((b[1] - a[1])) -v ours="$ours_t" -v cu="$cu" -v cs="$cs" -v hz="$CLK_TCK" \
    'BEGIN { o = busy - ours - (cu + cs) * hz; if (o < 0) o = 0; printf "%.1f", (all > 0 ? 100 * o / all : 0) }')
  steal_pct=$(awk -v st=$((b[2] - a[2])) -v all=$((b[1] - a[1])) 'BEGIN { printf "%.1f", (all > 0 ? 100 * st / all : 0) }')
  # mode round target rps p50 p90 p99 max mean requests non2xx sockerr secs wrk_user wrk_sys peer_ticks origin_ticks other% steal%
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$mode" "$round" "$name" "${r[1]}" "${r[2]}" "${r[3]}" "${r[4]}" "${r[5]}" "${r[6]}" "${r[7]}" "${r[8]}" "${r[9]}" "${r[10]}" \
    "$cu" "$cs" "$peer_t" "$orig_t" "$other_pct" "$steal_pct" > "$TMP/last.tsv"
  LAST_OTHER=$other_pct
  log "$(printf '%-8s r%s %-18s %10.0f req/s  p50 %6.0f us  p99 %6.0f us  non2xx %-8s other-cpu %5s%%' "$mode" "$round" "$name" "${r[1]}" "${r[2]}" "${r[4]}" "${r[8]}" "$other_pct")"
}

# run_target: run_one, repeated (up to DIRTY_RETRIES times) while foreign CPU load spoils it
run_target() {
  local attempt=0
  while :; do
    LAST_OTHER=""; : > "$TMP/last.tsv"
    run_one "$@"
    attempt=$((attempt + 1))
    if [[ -n $LAST_OTHER ]] && (( attempt <= DIRTY_RETRIES )) \
       && awk -v o="$LAST_OTHER" -v m="$QUIET_MAX_PCT" 'BEGIN { exit !(o > m) }'; then
      log "  foreign CPU load ${LAST_OTHER}% during that run; repeating it (retry $attempt/$DIRTY_RETRIES)"
      continue
    fi
    if [[ -s $TMP/last.tsv ]]; then printf '%s\t%s\n' "$(cat "$TMP/last.tsv")" "$attempt" >> "$RESULTS"; fi
    return 0
  done
}

# ------------------------------------------------------------------- main
START_TS=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "targets: ${TGT_NAME[*]}; modes: ${MODES[*]}; wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s (warm-up ${WARMUP}s), $ROUNDS rounds; nice $BENCH_NICE"
for mode in "${MODES[@]}"; do
  if [[ $mode == pinned ]]; then scpu=$SERVER_CPUS; ocpu=$ORIGIN_CPUS; ccpu=$CLIENT_CPUS
  else scpu=$ALL_CPUS; ocpu=$ALL_CPUS; ccpu=$ALL_CPUS; fi
  log "== mode $mode: peers on CPU $scpu, origin on CPU $ocpu, wrk on CPU $ccpu"
  start_servers "$scpu" "$ocpu"
  functional_checks
  for (( round=1; round<=ROUNDS; round++ )); do
    for i in "${!TGT_NAME[@]}"; do run_target "$mode" "$round" "$i" "$ccpu"; done
  done
  stop_servers
  sleep 1
done

# ---------------------------------------------------------------- report
export RESULTS START_TS CONNS DURATION WARMUP ROUNDS WRK_THREADS SERVER_CPUS ORIGIN_CPUS CLIENT_CPUS NCPU CLK_TCK \
       HAP_VERSION NGX_VERSION WRK_VERSION OUT_JSON LOGS GATEWAY_CMD GATEWAY_PORT JWT_CHECK_ISS BENCH_NICE QUIET_MAX_PCT
export TARGET_ORDER="${TGT_NAME[*]}"
python3 - <<'PY'
import json, os, platform, statistics as st
E = os.environ
cols = ["mode", "round", "target", "rps", "p50_us", "p90_us", "p99_us", "max_us", "mean_us", "requests",
        "non2xx", "sock_errors", "secs", "wrk_user_s", "wrk_sys_s", "peer_ticks", "origin_ticks", "other_cpu_pct", "steal_pct", "attempts"]
runs = []
with open(E["RESULTS"]) as f:
    for line in f:
        v = line.rstrip("\n").split("\t")
        if len(v) != len(cols):
            continue
        d = dict(zip(cols, v))
        for k in cols[3:]:
            d[k] = float(d[k])
        d["round"] = int(d["round"])
        d["attempts"] = int(d["attempts"])
        runs.append(d)
tck = float(E["CLK_TCK"])
order = E["TARGET_ORDER"].split()
modes = [m for m in ("pinned", "unpinned") if any(r["mode"] == m for r in runs)]
med = st.median
summary = []
for m in modes:
    for t in order:
        rs = [r for r in runs if r["mode"] == m and r["target"] == t]
        if not rs:
            continue
        rps = [r["rps"] for r in rs]
        req = sum(r["requests"] for r in rs)
        s = dict(mode=m, target=t, rounds=len(rs), rps=med(rps),
                 rps_min=min(rps), rps_max=max(rps),
                 rps_spread_pct=(max(rps) - min(rps)) / med(rps) * 100 if med(rps) else 0.0,
                 p50_ms=med([r["p50_us"] for r in rs]) / 1000, p90_ms=med([r["p90_us"] for r in rs]) / 1000,
                 p99_ms=med([r["p99_us"] for r in rs]) / 1000,
                 p99_spread_pct=(max(r["p99_us"] for r in rs) - min(r["p99_us"] for r in rs)) / med([r["p99_us"] for r in rs]) * 100,
                 non2xx_pct=100.0 * sum(r["non2xx"] for r in rs) / req if req else 0.0,
                 sock_errors=int(sum(r["sock_errors"] for r in rs)),
                 peer_cpu_us_per_req=1e6 * sum(r["peer_ticks"] for r in rs) / tck / req if req else 0.0,
                 origin_cpu_us_per_req=1e6 * sum(r["origin_ticks"] for r in rs) / tck / req if req else 0.0,
                 wrk_cpu_pct=100.0 * med([(r["wrk_user_s"] + r["wrk_sys_s"]) / r["secs"] for r in rs]),
                 peer_cpu_pct=100.0 * med([r["peer_ticks"] / tck / r["secs"] for r in rs]),
                 other_cpu_pct_max=max(r["other_cpu_pct"] for r in rs), steal_pct_max=max(r["steal_pct"] for r in rs))
        # ratios vs direct: median of per-round ratios (direct ran in the same round, minutes apart at most),
        # which cancels slow drift of the machine better than a ratio of medians
        dr = {r["round"]: r for r in runs if r["mode"] == m and r["target"] == "direct"}
        pairs = [(r, dr[r["round"]]) for r in rs if r["round"] in dr]
        if pairs:
            s["rps_vs_direct"] = med([a["rps"] / b["rps"] for a, b in pairs])
            s["p50_vs_direct"] = med([a["p50_us"] / b["p50_us"] for a, b in pairs if b["p50_us"]])
            s["p99_vs_direct"] = med([a["p99_us"] / b["p99_us"] for a, b in pairs if b["p99_us"]])
        s["retried_runs"] = sum(1 for r in rs if r["attempts"] > 1)
        summary.append(s)

def fmt(x, f):
    return "-" if x is None else format(x, f)

hdr = (f"{'mode':<8} {'target':<18} {'req/s':>9} {'±rnd':>6} {'p50 ms':>7} {'p99 ms':>7} "
       f"{'rps/dir':>7} {'p50/dir':>7} {'p99/dir':>7} {'peer µs/req':>11} {'peer cpu':>8} {'orig µs/req':>11} {'wrk cpu':>7} {'non2xx':>7} {'other':>6}")
print()
print(f"== peers.sh results ({E['START_TS']}; {E['NCPU']}-core loopback; wrk {E['WRK_VERSION']} -t{E['WRK_THREADS']} "
      f"-c{E['CONNS']} -d{E['DURATION']}s, warm-up {E['WARMUP']}s, {E['ROUNDS']} interleaved rounds, medians) ==")
print(f"   haproxy {E['HAP_VERSION']} (nbthread 1), nginx {E['NGX_VERSION']} (worker_processes 1); pinned = peers on CPU "
      f"{E['SERVER_CPUS']}, origin on CPU {E['ORIGIN_CPUS']}, wrk on CPU {E['CLIENT_CPUS']}; unpinned = all on all CPUs; "
      f"nice {E['BENCH_NICE']}" + ("; access logs ON (nginx combined to a file, haproxy httplog to stdout)" if E.get("LOGS") == "1" else ""))
print(hdr)
print("-" * len(hdr))
for s in summary:
    print(f"{s['mode']:<8} {s['target']:<18} {s['rps']:>9.0f} {s['rps_spread_pct']:>5.1f}% {s['p50_ms']:>7.3f} {s['p99_ms']:>7.3f} "
          f"{fmt(s.get('rps_vs_direct'), '.3f'):>7} {fmt(s.get('p50_vs_direct'), '.2f'):>7} {fmt(s.get('p99_vs_direct'), '.2f'):>7} "
          f"{s['peer_cpu_us_per_req']:>11.1f} {s['peer_cpu_pct']:>7.0f}% {s['origin_cpu_us_per_req']:>11.1f} {s['wrk_cpu_pct']:>6.0f}% {s['non2xx_pct']:>6.1f}% "
          f"{s['other_cpu_pct_max']:>5.1f}%")
print("   ±rnd = (max-min)/median req/s across rounds; x/dir = median of per-round ratios to 'direct';")
print("   peer/orig µs/req = server CPU time per request (whole process group); peer cpu = cores used by the peer")
print("   (100% = one core saturated); wrk cpu = client CPU use (100% = the load generator itself is the limit);")
print("   *-badsig rows are 401 responses;")
print("   other = worst-round CPU share (of all cores) used by processes outside this benchmark during the run.")
qmax = float(E["QUIET_MAX_PCT"])
retried = sum(r["attempts"] - 1 for r in runs)
if retried:
    print(f"   {retried} run(s) were repeated because other processes loaded the machine (> {qmax:.0f}% CPU).")
dirty = [r for r in runs if r["other_cpu_pct"] > qmax]
if dirty:
    print(f"   WARNING: {len(dirty)} kept run(s) still shared the machine with > {qmax:.0f}% foreign CPU load: "
          + ", ".join(f"{r['mode']}/r{r['round']}/{r['target']} {r['other_cpu_pct']:.0f}%" for r in dirty))

derived = {}
for m in modes:
    g = {s["target"]: s for s in summary if s["mode"] == m}
    lines = []
    def cmp(a, b, label):
        if a in g and b in g:
            A, B = g[a], g[b]
            d = dict(rps_ratio=A["rps"] / B["rps"], p50_delta_us=(A["p50_ms"] - B["p50_ms"]) * 1000,
                     p99_delta_us=(A["p99_ms"] - B["p99_ms"]) * 1000,
                     cpu_delta_us_per_req=A["peer_cpu_us_per_req"] - B["peer_cpu_us_per_req"])
            derived.setdefault(m, {})[f"{a}_vs_{b}"] = d
            lines.append(f"   {label}: req/s x{d['rps_ratio']:.3f} ({(d['rps_ratio'] - 1) * 100:+.1f}%), p50 {d['p50_delta_us']:+.0f} µs, "
                         f"p99 {d['p99_delta_us']:+.0f} µs, peer CPU {d['cpu_delta_us_per_req']:+.1f} µs/req")
    cmp("haproxy-jwt", "haproxy", "jwt_verify cost (haproxy-jwt vs haproxy)")
    cmp("haproxy", "nginx", "haproxy vs nginx (plain proxying)")
    cmp("haproxy-jwt-badsig", "haproxy-jwt", "401 path vs accept path (haproxy)")
    cmp("gateway", "haproxy-jwt", "gateway vs haproxy-jwt")
    cmp("gateway", "nginx", "gateway vs nginx")
    if lines:
        print(f"{m}:")
        print("\n".join(lines))

stab = {}
for m in modes:
    sp = [s["rps_spread_pct"] for s in summary if s["mode"] == m and s["rounds"] > 1]
    p99 = [s["p99_spread_pct"] for s in summary if s["mode"] == m and s["rounds"] > 1]
    if sp:
        stab[m] = dict(mean_rps_spread_pct=st.mean(sp), max_rps_spread_pct=max(sp), mean_p99_spread_pct=st.mean(p99))
for m, v in stab.items():
    print(f"stability {m:<8}: round-to-round req/s spread mean {v['mean_rps_spread_pct']:.1f}% (max {v['max_rps_spread_pct']:.1f}%), "
          f"p99 spread mean {v['mean_p99_spread_pct']:.1f}%")
if len(stab) == 2:
    best = min(stab, key=lambda k: stab[k]["mean_rps_spread_pct"])
    print(f"more stable (lower mean req/s spread): {best}")

if E.get("OUT_JSON"):
    doc = dict(tool="peers.sh", started=E["START_TS"], host=dict(ncpu=int(E["NCPU"]), kernel=platform.release()),
               versions=dict(haproxy=E["HAP_VERSION"], nginx=E["NGX_VERSION"], wrk=E["WRK_VERSION"]),
               config=dict(connections=int(E["CONNS"]), duration_s=int(E["DURATION"]), warmup_s=int(E["WARMUP"]),
                           rounds=int(E["ROUNDS"]), wrk_threads=int(E["WRK_THREADS"]), server_cpus=E["SERVER_CPUS"], origin_cpus=E["ORIGIN_CPUS"],
                           client_cpus=E["CLIENT_CPUS"], gateway_cmd=E.get("GATEWAY_CMD") or None,
                           gateway_port=int(E["GATEWAY_PORT"]), jwt_check_iss=E["JWT_CHECK_ISS"] == "1",
                           nice=int(E["BENCH_NICE"]), quiet_max_pct=int(E["QUIET_MAX_PCT"])),
               summary=summary, derived=derived, stability=stab, runs=runs)
    with open(E["OUT_JSON"], "w") as f:
        json.dump(doc, f, indent=2)
    print(f"JSON written to {E['OUT_JSON']}")
PY
