#!/usr/bin/env bash
# Instructions per authenticated proxied request, counted by callgrind: the
# figure that stays put on these noisy machines (the same binary gives the
# same count within about 1%), where wall-clock time moves by 10% between
# runs. Each command runs under valgrind on 127.0.0.1:18085 in front of the
# nginx origin of origin.sh; `wrk -t1 -c50` warms it for 3 s, the counters
# are zeroed, and 10 s are counted. User space only: the kernel's share,
# the same for every program here, is not in the count. KEEP=DIR keeps
# each profile there for `callgrind_annotate --inclusive=yes`. HEADER adds
# one request header (e.g. HEADER='Origin: https://app.example.com');
# BEARER replaces the valid token (a forged one, with REFUSED=1, counts the
# 401 path); any 4xx or 5xx answer fails the count otherwise. H2=1 sends
# the load as h2load's HTTP/2 with prior knowledge (h2c; 10 connections of
# 10 streams) instead of wrk's HTTP/1.1. GRPC=1 sends unary gRPC calls
# (h2load, as H2=1) to a copy of peers.toml whose upstream is the origin's
# h2c listener: h2 both ways; give it the binary alone, the config is
# added. DPOP=1 sends a DPoP-bound token with a fresh proof per request
# (benches/dpop_proofs.py makes them, benches/dpop_load.py sends them) to
# a copy of peers.toml with a store of its own, as a first start: an
# instance started again on its store within a minute asks for a nonce
# of proofs dated in its first 16 s, which these, made beforehand, do not
# carry; give it the binary alone, the config is added.
# MTLS=DIR sends the load over TLS with DIR's client certificate, one
# kept-alive connection at a time (benches/mtls_load.py). IDLE=1 counts
# no load: 50 connections, each after one request, open and silent for
# the 10 s (benches/idle_connections.py), and prints the instructions in
# all, what time alone costs a count (timers, connections' watchdogs).
# Needs valgrind, nginx, wrk (or h2load), python3.
#
#   bash benches/callgrind.sh 'target/release/portero --config benches/peers.toml'
#   GRPC=1 bash benches/callgrind.sh target/release/portero
set -euo pipefail
# shellcheck source=benches/origin.sh
. "$(dirname "$0")/origin.sh"

TOKEN=${BEARER:-$TOKEN}
url=http://127.0.0.1:18085/
grpc=()
if [ "${GRPC:-0}" = 1 ]; then
  H2=1
  url=http://127.0.0.1:18085/bench.Echo/Say
  sed "$to_grpc_upstream" "$(dirname "$0")/peers.toml" > "$TMP/grpc.toml"
  grpc=("${grpc_call[@]}")
fi
if [ "${DPOP:-0}" = 1 ]; then
  sed 's|^data_dir = .*|data_dir = "'"$TMP"'/dpop-store"|' "$(dirname "$0")/peers.toml" > "$TMP/dpop.toml"
fi

# load SECONDS: the load, its report on stdout.
load() {
  if [ -n "${MTLS:-}" ]; then
    timeout $(($1 + 20)) python3 "$(dirname "$0")/mtls_load.py" "$1" "$MTLS" "$TOKEN"
  elif [ "${H2:-0}" = 1 ]; then
    timeout $(($1 + 20)) h2load -t1 -c10 -m10 -D"$1" -H "authorization: Bearer $TOKEN" \
      "${grpc[@]}" "${extra[@]}" "$url" | sed 's/^status codes: .* \([1-9][0-9]*\) [45]xx.*/Non-2xx: \1/'
  else
    timeout $(($1 + 20)) wrk -t1 -c50 -d"${1}s" -H "Authorization: Bearer $TOKEN" \
      "${extra[@]}" http://127.0.0.1:18085/
  fi
}

# counted GATEWAY: 3 s of load, the counters zeroed, 10 s counted and
# dumped; the counted load's report on stdout. The DPoP load is one
# loader's 50 connections throughout (benches/dpop_load.py, its count
# started again at the zero): under valgrind it serves ~5,500 requests
# in the count, and wrk's 50 connections opened and closed in it would
# charge each ~300 instructions a bearer count spreads over ~35,000.
counted() {
  if [ "${IDLE:-0}" = 1 ]; then
    python3 "$(dirname "$0")/idle_connections.py" 50 "$TOKEN" &
    local holder=$!
    sleep 3
    callgrind_control --zero "$1" > /dev/null 2>&1
    sleep 10
    callgrind_control --dump "$1" > /dev/null 2>&1
    kill -TERM "$holder"
    wait "$holder"
    return
  fi
  if [ "${DPOP:-0}" != 1 ]; then
    load 3 > /dev/null
    callgrind_control --zero "$1" > /dev/null 2>&1
    load 10
    callgrind_control --dump "$1" > /dev/null 2>&1
    return
  fi
  # A proof is taken once: enough for the load, made just before it.
  python3 "$(dirname "$0")/dpop_proofs.py" "$url" $((13 * ${DPOP_RATE:-3000})) "$TMP/dpop"
  python3 "$(dirname "$0")/dpop_load.py" "$TMP/dpop" 50 > "$TMP/dpop.out" &
  local loader=$!
  sleep 3
  callgrind_control --zero "$1" > /dev/null 2>&1
  kill -USR1 "$loader"
  sleep 10
  callgrind_control --dump "$1" > /dev/null 2>&1
  kill -TERM "$loader"
  wait "$loader" || true
  cat "$TMP/dpop.out"
}

for cmd in "$@"; do
  [ "${GRPC:-0}" = 1 ] && cmd="$cmd --config $TMP/grpc.toml"
  [ "${DPOP:-0}" = 1 ] && cmd="$cmd --config $TMP/dpop.toml"
  # shellcheck disable=SC2086 # the command is split into its words on purpose
  setsid valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.%p" $cmd \
    > "$TMP/gateway.log" 2>&1 &
  gateway=$!
  wait_for_gateway 60
  extra=()
  [ -n "${HEADER:-}" ] && extra=(-H "$HEADER")
  out=$(counted "$gateway")
  kill -9 -- "-$gateway" 2>/dev/null; wait "$gateway" 2>/dev/null || true; gateway=""
  requests=$(awk '/requests in/ {print $1} /^requests:/ {print $8}' <<< "$out")
  # A count of refusals is no count of the path asked for.
  if [ "${REFUSED:-0}" != 1 ] && grep -q 'Non-2xx' <<< "$out"; then
    echo "$cmd: $(grep 'Non-2xx' <<< "$out" | xargs); the gateway's log:" >&2
    cat "$TMP/gateway.log" >&2
    exit 1
  fi
  profile=$(ls "$TMP"/callgrind.*.1)
  instructions=$(callgrind_annotate "$profile" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  if [ "${IDLE:-0}" = 1 ]; then
    printf '%-60s %8s instructions in 10 s without a request\n' "$cmd" "$instructions"
  else
    printf '%-60s %8s requests %8s instructions/request\n' \
      "$cmd" "$requests" "$((instructions / requests))"
  fi
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && mv "$profile" "$KEEP/"; fi
  rm -f "$TMP"/callgrind.*
done
