#!/usr/bin/env bash
# The gateway slot of peers.sh: portero on benches/peers.toml, with its
# access log on (the default text format, to stderr, which peers.sh keeps
# in a file as it keeps the peers' logs) when peers.sh runs with LOGS=1.
#
#   cargo build --release
#   GATEWAY_CMD='exec bash benches/gateway.sh target/release/portero' [LOGS=1] bash benches/peers.sh
set -euo pipefail
here=$(dirname "$0")
binary=${1:-${CARGO_TARGET_DIR:-$here/../target}/release/portero}
config="$here/peers.toml"
if [ "${LOGS:-0}" = 1 ]; then
  config=${TMPDIR:-/tmp}/portero-peers-logs.toml
  sed 's/^access_log = false$/access_log = true/' "$here/peers.toml" > "$config"
fi
exec "$binary" --config "$config"
