#!/usr/bin/env bash
# What each optional feature adds to an authenticated proxied request, in
# instructions: callgrind.sh (one run each, one after the other) on
# benches/peers.toml as shipped and on copies of it with one feature
# turned on or off. Needs what callgrind.sh needs.
#
#   cargo build --release && bash benches/features.sh [path/to/portero]
set -euo pipefail
here=$(dirname "$0")
binary=${1:-${CARGO_TARGET_DIR:-$here/../target}/release/portero}
[ -x "$binary" ] || { echo "no portero binary at $binary: cargo build --release first" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# shellcheck source=benches/variants.sh
. "$here/variants.sh"

commands=()
for name in shipped trace-context-off access-log json-logs span-export rate-limit cors rule claims-none claims-four; do
  commands+=("$binary --config $dir/$name.toml")
done
bash "$here/callgrind.sh" "${commands[@]}" | sed "s|$dir/||"
# A CORS request (with `Origin`) on the CORS route and, for comparison, on
# the shipped one.
HEADER='Origin: https://app.example.com' bash "$here/callgrind.sh" \
  "$binary --config $dir/cors.toml" "$binary --config $dir/shipped.toml" | sed "s|$dir/|with Origin: |"
# An API key on the api-key route: compare with `shipped` above.
BEARER=$api_key bash "$here/callgrind.sh" "$binary --config $dir/api-key.toml" | sed "s|$dir/|with an API key: |"
# An opaque token on the introspection route: compare with `shipped` above.
BEARER=opaque-bench-token-0123456789 bash "$here/callgrind.sh" "$binary --config $dir/introspection.toml" | sed "s|$dir/|with an opaque token: |"
# A browser session on the session route, and a JWT on the same route:
# compare both with `shipped` above.
HEADER="Cookie: $session_cookie" bash "$here/callgrind.sh" "$binary --config $dir/session.toml" | sed "s|$dir/|with a session: |"
bash "$here/callgrind.sh" "$binary --config $dir/session.toml" | sed "s|$dir/|with a JWT: |"
# A token bound to its sender: DPoP with a proof each request (and its
# signature check alone), and a certificate-bound token over mutual TLS.
bash "$here/sender.sh" "$binary"
