#!/usr/bin/env bash
# Makes pgo/portero.profdata, the profile that guides release builds
# (pgo/rustc.sh): an instrumented portero, built in a target dir of its
# own, serves what the benches measure for a few seconds each and writes
# its counts as it exits; they are merged sparse, so code the training
# never ran carries no counts and is optimised as without a profile. Run
# it after a change to the request path and commit the profile with the
# change (a function whose code changed loses its counts). About 12 min;
# needs what features.sh needs, and h2load (nghttp2-client).
#
#   bash benches/pgo.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
seconds=${SECONDS_EACH:-4}
command -v h2load > /dev/null || { echo "pgo.sh needs h2load (apt-get install nghttp2-client)" >&2; exit 1; }
llvm_bin="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | awk '/^host:/ {print $2}')/bin"
[ -x "$llvm_bin/llvm-profdata" ] || rustup component add llvm-tools

target=${PGO_TARGET_DIR:-$root/target/pgo-instrumented}
counts=$target/counts
mkdir -p "$counts"
(cd "$root" && CARGO_ENCODED_RUSTFLAGS="-Cprofile-generate=$counts" CARGO_TARGET_DIR="$target" \
  cargo build --release --locked --bin portero)
rm -f "$counts"/*  # the build scripts' own counts
binary=$target/release/portero

# shellcheck source=benches/origin.sh
. "$here/origin.sh"
dir=$TMP
# shellcheck source=benches/variants.sh
. "$here/variants.sh"

# train CONFIG LOAD...: the gateway on CONFIG under LOAD (a command line,
# run as is), then SIGTERM, so that it exits and writes its counts. A load
# answered with a 4xx or 5xx stops the training, but where REFUSED=1 asks
# for refusals.
train() {
  local config=$1 out
  shift
  setsid "$binary" --config "$config" > "$dir/gateway.log" 2>&1 &
  gateway=$!
  wait_for_gateway 30
  out=$("$@")
  kill -TERM -- "-$gateway"
  wait "$gateway" || true
  gateway=""
  echo "== $(basename "$config") $1: $(grep -E 'requests in|Non-2xx|^status codes' <<< "$out" | xargs)"
  if [ "${REFUSED:-0}" != 1 ] && grep -qE 'Non-2xx|[1-9][0-9]* [45]xx' <<< "$out"; then
    echo "pgo.sh: that load was refused; the gateway's log:" >&2
    cat "$dir/gateway.log" >&2
    exit 1
  fi
}
load() { wrk -t1 -c50 -d"${seconds}s" -H "Authorization: Bearer ${BEARER:-$TOKEN}" "$@" http://127.0.0.1:18085/; }

for name in shipped access-log json-logs span-export rate-limit rule; do
  train "$dir/$name.toml" load
done
train "$dir/cors.toml" load -H 'Origin: https://app.example.com'
BEARER=$api_key train "$dir/api-key.toml" load
BEARER=opaque-bench-token-0123456789 train "$dir/introspection.toml" load
train "$dir/session.toml" load -H "Cookie: $session_cookie"
# A token on that sign-in route: its no-cookie branches, cold otherwise.
train "$dir/session.toml" load
# The 401 path: a token whose signature's first character is another.
signature=${TOKEN##*.}
[ "${signature:0:1}" = A ] && other=B || other=A
REFUSED=1 BEARER="${TOKEN%.*}.$other${signature:1}" train "$dir/shipped.toml" load
# DPoP: the bound token with a fresh ES256 proof each request (made after
# the gateway started, which takes no proof made before), as sender.sh
# drives it, on a store of its own: started again on the shipped one
# within a minute, the gateway would ask these proofs for a nonce.
dpop() {
  python3 "$here/dpop_proofs.py" http://127.0.0.1:18085/ $((seconds * 40000)) "$dir/dpop"
  PROOFS=$dir/dpop wrk -t1 -c50 -d"${seconds}s" -s "$here/dpop.lua" http://127.0.0.1:18085/
}
sed 's|^data_dir = .*|data_dir = "'"$dir"'/dpop-store"|' "$dir/shipped.toml" > "$dir/dpop.toml"
train "$dir/dpop.toml" dpop
# HTTP/2 from the client (h2c), as protocols.sh drives it.
train "$dir/shipped.toml" h2load -c10 -m10 -n 40000 -H "authorization: Bearer $TOKEN" http://127.0.0.1:18085/
# TLS 1.3: HTTP/1.1 and HTTP/2 by ALPN.
tls() {
  wrk -t1 -c50 -d"${seconds}s" -H "Authorization: Bearer $TOKEN" https://127.0.0.1:18085/
  h2load -c10 -m10 -n 40000 -H "authorization: Bearer $TOKEN" https://127.0.0.1:18085/
}
train "$dir/tls.toml" tls
# Unary gRPC calls, h2 both ways: the route's upstream the origin's h2c listener.
variant grpc "$to_grpc_upstream"
train "$dir/grpc.toml" h2load -c10 -m10 -n 40000 "${grpc_call[@]}" \
  -H "authorization: Bearer $TOKEN" http://127.0.0.1:18085/bench.Echo/Say
# Token issuance at a legacy endpoint and at the standard one, on the
# demo config moved onto 18085.
sed -e 's/127.0.0.1:8080/127.0.0.1:18085/; s/127.0.0.1:9901/127.0.0.1:19085/' \
  -e 's|^data_dir = .*|data_dir = "'"$dir"'/demo-store"|' "$root/gateway.toml" > "$dir/demo.toml"
issuance() {
  wrk -t1 -c50 -d"${seconds}s" -s "$here/issue.lua" http://127.0.0.1:18085/api/v1/auth
  wrk -t1 -c50 -d"${seconds}s" -s "$here/oauth2.lua" http://127.0.0.1:18085/oauth2/client-flat/token
}
train "$dir/demo.toml" issuance

"$llvm_bin/llvm-profdata" merge --sparse -o "$root/pgo/portero.profdata" "$counts"/*.profraw
rustc -V > "$root/pgo/rustc-version"
rm -f "$counts"/*
echo "wrote pgo/portero.profdata for $(cat "$root/pgo/rustc-version"), the release deploy/Containerfile builds with;" \
  "release builds made with the old profile are stale (cargo cannot tell): cargo clean --release"
