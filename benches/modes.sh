#!/usr/bin/env bash
# portero beside its peers in the modes users run it (peers.sh measures
# cleartext HTTP/1.1): each row a rate in one run, the median of ROUNDS
# interleaved rounds, its ratio to each peer (the median of the rounds'
# ratios), and each server's CPU a request from its own processes'
# counters (/proc, user + system, the origin not counted). Method and
# figures: BENCHMARKS.md.
#
#   tls-h1      wrk, TLS 1.3, HTTP/1.1 keep-alive            nginx, HAProxy + jwt_verify, portero
#   tls-h2      h2load, TLS 1.3, HTTP/2 by ALPN              the same
#   h2c         h2load, HTTP/2 with prior knowledge          the same
#   grpc        h2load, unary gRPC calls, h2 both ways       nginx grpc_pass, HAProxy + jwt_verify, portero
#   handshakes  openssl s_time: new TLS 1.3 connections a second, full
#               (-new) and resumed (-reuse, session tickets)  nginx, HAProxy, portero
#   sessions    wrk with a signed-in browser's cookie       Apache + mod_auth_openidc, portero
#
# One ECDSA P-256 certificate for every TLS listener; every server on one
# worker (nginx worker_processes 1, HAProxy nbthread 1, portero threads = 1,
# Apache one process); upstream the nginx origin of origin.sh: HTTP/1.1
# (keep-alive), and h2c for gRPC (answered as a gRPC server would, its
# message unread). HAProxy
# checks the token as peers.sh does; nginx checks nothing. Contention
# guard: before each run, wait until other processes use at most
# QUIET_MAX_PCT of the machine; a run they disturbed more is repeated
# once, and the report flags it.
#
#   cargo build --release
#   bash benches/modes.sh target/release/portero
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=${1:-target/release/portero}
MODES=${MODES:-tls-h1 tls-h2 h2c grpc handshakes sessions}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}       # wrk connections
CLIENTS=${CLIENTS:-10}   # h2load connections ...
STREAMS=${STREAMS:-10}   # ... and concurrent streams on each
QUIET_MAX_PCT=${QUIET_MAX_PCT:-15}
QUIET_WAIT=${QUIET_WAIT:-120}
[ -x "$binary" ] || { echo "no portero at $binary: cargo build --release first" >&2; exit 2; }

# What a fresh machine lacks, from Debian's packages, their services kept stopped.
need=()
for pair in nginx:nginx haproxy:haproxy wrk:wrk h2load:nghttp2-client openssl:openssl \
  apache2:apache2 python3:python3; do
  command -v "${pair%%:*}" > /dev/null || need+=("${pair#*:}")
done
[ -e /usr/lib/apache2/modules/mod_auth_openidc.so ] || need+=(libapache2-mod-auth-openidc)
if [ ${#need[@]} -gt 0 ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" > /dev/null
  rm -f /usr/sbin/policy-rc.d
fi

# shellcheck source=benches/origin.sh
. "$here/origin.sh"   # the origins on 18081 and 18086, TOKEN, TMP, `start`
trap stop_all EXIT
# The origin's own group, for its CPU (counted apart from each server's).
for _ in $(seq 50); do [ -s "$TMP/nginx.pid" ] && break; sleep 0.1; done
origin=$(cat "$TMP/nginx.pid")

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2> /dev/null
cat "$TMP/cert.pem" "$TMP/key.pem" > "$TMP/haproxy.pem"

# ------------------------------------------------------------ the servers
# Ports: nginx 1818x, HAProxy 1828x, portero 1838x, Apache 18485; x = 2
# TLS (h1 and h2), 3 h2c, 4 gRPC (portero takes h2c and gRPC on one).
. "$here/modes-configs.sh"

start nginx 18182 nginx -c "$TMP/nginx-peer.conf"
start haproxy 18282 haproxy -db -f "$TMP/haproxy.cfg"
start portero 18383 "$binary" --config "$TMP/portero.toml"
if [[ " $MODES " == *" sessions "* ]]; then
  start apache 18485 apache2 -X -f "$TMP/apache.conf"
  portero_cookie=$(python3 "$here/session_sign_in.py" http://127.0.0.1:18383/app/ bench-user bench-password)
  apache_cookie=$(python3 "$here/session_sign_in.py" http://127.0.0.1:18485/ bench-user bench-password mod_auth_openidc_session)
fi

# ---------------------------------------------------------- measurement
ticks() { # the CPU ticks of a process group's live processes
  local pgid=$1 total=0 f line rest
  local -a fs
  for f in /proc/[0-9]*/stat; do
    { read -r line < "$f"; } 2> /dev/null || continue
    rest=${line##*) }
    read -ra fs <<< "$rest"
    ((fs[2] == pgid)) && total=$((total + fs[11] + fs[12]))
  done
  echo "$total"
}
busy() { # the machine's busy and total ticks
  local _c u n s i w q sq st
  read -r _c u n s i w q sq st _ < /proc/stat
  echo "$((u + n + s)) $((u + n + s + i + w + q + sq + st))"
}
children() { # REAPED: the ticks of this shell's reaped children (the load tools)
  local rest
  local -a fs
  read -r rest < "/proc/$BASHPID/stat"
  rest=${rest##*) }
  read -ra fs <<< "$rest"
  REAPED=$((fs[13] + fs[14]))
}
wait_quiet() {
  local a b pct deadline=$((SECONDS + QUIET_WAIT))
  while ((SECONDS < deadline)); do
    read -ra a <<< "$(busy)"; sleep 1; read -ra b <<< "$(busy)"
    pct=$((100 * (b[0] - a[0]) / (b[1] - a[1] + 1)))
    ((pct <= QUIET_MAX_PCT)) && return
  done
}

# measure ROW SERVER COMMAND...: the command's count of requests (the
# last line it prints) over its seconds, with SERVER's CPU a request and
# the other processes' share of the machine meanwhile.
measure() {
  local row=$1 server=$2 pgid=${group[$2]} attempt out
  shift 2
  for attempt in 1 2; do
    wait_quiet
    local t0 m0 c0 o0 l0 t1 m1 c1 o1 l1
    c0=$(ticks "$pgid"); o0=$(ticks "$origin"); children; l0=$REAPED; read -ra m0 <<< "$(busy)"
    t0=$(date +%s.%N)
    out=$("$@" | tail -n1)
    t1=$(date +%s.%N)
    read -ra m1 <<< "$(busy)"; children; l1=$REAPED; c1=$(ticks "$pgid"); o1=$(ticks "$origin")
    local others=$(((m1[0] - m0[0]) - (c1 - c0) - (o1 - o0) - (l1 - l0)))
    local pct=$((100 * (others > 0 ? others : 0) / (m1[1] - m0[1] + 1)))
    ((pct <= QUIET_MAX_PCT || attempt == 2)) && break
  done
  awk -v row="$row" -v n="$out" -v t0="$t0" -v t1="$t1" -v ticks=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v o="$pct" \
    'BEGIN { printf "%s %.0f %.1f %d\n", row, n / (t1 - t0), (n > 0 ? ticks * 1e6 / hz / n : 0), o }'
}

# The load tools, each printing its count of 2xx answers last (any other
# answer fails the row: a refusal is no measure of the path).
wrk_run() { # URL [wrk args]
  local url=$1
  shift
  timeout $((DURATION + 15)) wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" "$url" > "$TMP/wrk.out"
  if grep -q 'Non-2xx\|Socket errors' "$TMP/wrk.out"; then
    grep 'Non-2xx\|Socket errors' "$TMP/wrk.out" >&2
    echo 0
  else
    awk '/requests in/ { print $1 }' "$TMP/wrk.out"
  fi
}
h2_run() { # URL [h2load args]
  local url=$1
  shift
  timeout $((DURATION + 30)) h2load -t1 -c"$CLIENTS" -m"$STREAMS" -D"$DURATION" "$@" "$url" > "$TMP/h2.out"
  awk '/^status codes:/ { ok = $3 + 0; bad = $7 + $9; if (bad > 0) print $0 > "/dev/stderr" }
       END { print (bad > 0 ? 0 : ok) }' "$TMP/h2.out"
}
handshakes() { # PORT -new|-reuse
  timeout $((DURATION + 15)) openssl s_time -connect "127.0.0.1:$1" "$2" -time "$DURATION" \
    -www /public > "$TMP/s_time.out" 2>&1
  awk '/connections in/ { n = $1 } END { print n + 0 }' "$TMP/s_time.out"
}
auth=(-H "Authorization: Bearer $TOKEN")
grpc=("${grpc_call[@]}" "${auth[@]}")

round() {
  local mode=$1 server port
  case $mode in
    tls-h1) for server in nginx:18182 haproxy:18282 portero:18382; do
        measure "tls-h1/${server%:*}" "${server%:*}" wrk_run "https://127.0.0.1:${server#*:}/" "${auth[@]}"
      done ;;
    tls-h2) for server in nginx:18182 haproxy:18282 portero:18382; do
        measure "tls-h2/${server%:*}" "${server%:*}" h2_run "https://127.0.0.1:${server#*:}/" "${auth[@]}"
      done ;;
    h2c) for server in nginx:18183 haproxy:18283 portero:18383; do
        measure "h2c/${server%:*}" "${server%:*}" h2_run "http://127.0.0.1:${server#*:}/" "${auth[@]}"
      done ;;
    grpc) for server in nginx:18184 haproxy:18284 portero:18383; do
        measure "grpc/${server%:*}" "${server%:*}" h2_run "http://127.0.0.1:${server#*:}/bench.Echo/Say" "${grpc[@]}"
      done ;;
    handshakes) for server in nginx:18182 haproxy:18282 portero:18382; do
        measure "full-handshakes/${server%:*}" "${server%:*}" handshakes "${server#*:}" -new
        measure "resumed-handshakes/${server%:*}" "${server%:*}" handshakes "${server#*:}" -reuse
      done ;;
    sessions)
      measure "sessions/apache" apache wrk_run http://127.0.0.1:18485/ -H "Cookie: $apache_cookie"
      measure "sessions/portero" portero wrk_run http://127.0.0.1:18383/app/ -H "Cookie: $portero_cookie" ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
}

for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    round "$mode" | sed "s/^/$round /" | tee -a "$TMP/results" >&2
  done
done

python3 - "$TMP/results" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    round_, row, rate, cpu, other = line.split()
    runs.setdefault(row, {})[int(round_)] = (float(rate), float(cpu), int(other))
print(f"{'mode':<20} {'server':<9} {'req/s':>8} {'CPU µs/req':>11}  ratios (portero's, median of the rounds')  other CPU max")
for row, by_round in runs.items():
    mode, server = row.split("/")
    rate = statistics.median(r for r, _, _ in by_round.values())
    cpu = statistics.median(c for _, c, _ in by_round.values())
    ratios = []
    for peer in (p for p in runs if server == "portero" and p.startswith(mode + "/") and p != row):
        # A round the peer failed (no answers counted) gives no ratio.
        each = [r / runs[peer][k][0] for k, (r, _, _) in by_round.items() if runs[peer].get(k, (0,))[0]]
        if each:
            ratios.append(f"{statistics.median(each):.2f}x {peer.split('/')[1]}")
    ratios = "  ".join(ratios)
    other = max(o for _, _, o in by_round.values())
    print(f"{mode:<20} {server:<9} {rate:>8.0f} {cpu:>11.1f}  {ratios:<42} {other}%")
EOF
