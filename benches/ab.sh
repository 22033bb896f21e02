#!/usr/bin/env bash
# A/B of gateway builds on the authenticated path, quicker than peers.sh when
# only gateways are compared: an nginx origin on 127.0.0.1:18081, then each
# command in turn on 127.0.0.1:18085 under `wrk -t1 -c50` with one valid HS256
# token (2 s warm-up, DUR seconds measured), ROUNDS interleaved rounds.
# Prints req/s and the gateway's CPU µs per request (utime + stime from
# /proc/PID/stat over the measured run), and the user-space part alone: the
# kernel's share is nearly the same for every program here and carries most
# of the noise, so user µs/req is the steadier figure for comparing builds.
# Needs nginx, wrk, python3.
#
#   bash benches/ab.sh 'target/release/portero --config benches/peers.toml' \
#                      '/tmp/portero-before --config benches/peers.toml'
set -euo pipefail
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-2}
# shellcheck source=benches/origin.sh
. "$(dirname "$0")/origin.sh"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }

for round in $(seq "$ROUNDS"); do
  for cmd in "$@"; do
    # shellcheck disable=SC2086 # the command is split into its words on purpose
    setsid $cmd > "$TMP/gateway.log" 2>&1 &
    gateway=$!
    wait_for_gateway 10
    wrk -t1 -c50 -d2s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:18085/ > /dev/null
    before=$(cpu_ticks "$gateway")
    user_before=$(user_ticks "$gateway")
    out=$(timeout $((DUR + 10)) wrk -t1 -c50 -d"${DUR}s" -H "Authorization: Bearer $TOKEN" http://127.0.0.1:18085/)
    after=$(cpu_ticks "$gateway")
    user_after=$(user_ticks "$gateway")
    kill -9 -- "-$gateway" 2>/dev/null; wait "$gateway" 2>/dev/null || true; gateway=""
    requests=$(awk '/requests in/ {print $1}' <<< "$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<< "$out")
    ticks=$(getconf CLK_TCK)
    us=$(python3 -c "print(round(($after - $before) * 1e6 / $ticks / $requests, 1))")
    user=$(python3 -c "print(round(($user_after - $user_before) * 1e6 / $ticks / $requests, 1))")
    printf 'round %s  %-60s %10s req/s %6s µs/req (user %s)  non-2xx %s\n' \
      "$round" "$cmd" "$rps" "$us" "$user" "${non2xx:-0}"
    sleep 0.5
  done
done
