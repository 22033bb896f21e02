#!/usr/bin/env bash
# The hot path's instruction budget: counts instructions per authenticated
# proxied request under callgrind (callgrind.sh, benches/peers.toml, trace
# context on as by default) RUNS times and fails when the median exceeds
# the budget in benches/budget.txt by more than 3%. Instruction counts of
# one binary stay within about 1-3% between runs on these machines; wall
# clock does not, so it stays out of CI. A change that costs the hot path
# raises the budget in the same commit and says why in BENCHMARKS.md.
# Needs valgrind, nginx, wrk, python3.
#
#   cargo build --release && bash benches/budget.sh [path/to/portero]
set -euo pipefail
here=$(dirname "$0")
binary=${1:-${CARGO_TARGET_DIR:-$here/../target}/release/portero}
runs=${RUNS:-3}
config="$here/peers.toml"
budget=$(awk '$1 == "instructions_per_request" {print $2}' "$here/budget.txt")
[ -x "$binary" ] || { echo "no portero binary at $binary: cargo build --release first" >&2; exit 2; }

commands=()
for _ in $(seq "$runs"); do commands+=("$binary --config $config"); done
counts=$(bash "$here/callgrind.sh" "${commands[@]}" | awk '{print $(NF-1)}')
median=$(sort -n <<< "$counts" | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
limit=$((budget * 103 / 100))
echo "instructions per request: $(tr '\n' ' ' <<< "$counts")(median $median); budget $budget, limit $limit (+3%)"
if [ "$median" -gt "$limit" ]; then
  echo "FAIL: the hot path costs $((median - budget)) instructions more than benches/budget.txt allows." >&2
  echo "Cut them, or raise the budget in the same commit with the reason in BENCHMARKS.md." >&2
  exit 1
fi
echo "within budget"
