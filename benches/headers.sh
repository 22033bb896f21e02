#!/usr/bin/env bash
# What a rate-limited response's two headers cost in the header map, and
# the alternatives (benches/headers.rs), in instructions a response: each
# alternative runs under callgrind for N and 2N responses, and the
# difference over N, less the same for `none`, is its cost. Needs valgrind.
#
#   bash benches/headers.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
# In a target dir of its own: `cargo bench` builds the portero binary too,
# with the tests' tokio features (`test-util`), and would leave that build
# where the release one the other benches measure is.
export CARGO_TARGET_DIR=${HEADERS_TARGET_DIR:-target/bench-headers}
binary=$(cargo bench --bench headers --no-run --message-format=json |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "headers" and m.get("executable"):
        print(m["executable"])')
[ -x "$binary" ] || { echo "headers.sh: cargo bench built no headers binary" >&2; exit 1; }
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$binary" "$1" "$2" 2>&1 |
    awk '/Collected/ {print $4}'
}
per() { echo $(( ($(count "$1" $((2 * n))) - $(count "$1" "$n")) / n )); }
base=$(per none)
echo "none: $base instructions a response (an upstream's five headers, written and dropped)"
for alternative in insert append unsized prepared standard; do
  cost=$(per "$alternative")
  printf '%-9s +%s\n' "$alternative" "$((cost - base))"
done
