#!/usr/bin/env bash
# The hot path's instruction budget: counts instructions per authenticated
# proxied request under callgrind (callgrind.sh, benches/peers.toml, trace
# context on as by default) RUNS times and fails when the median exceeds
# the budget in benches/budget.txt by more than 3%; the same for the
# access log on (the default: text, to stderr, kept in a file). Instruction counts of
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
[ -x "$binary" ] || { echo "no portero binary at $binary: cargo build --release first" >&2; exit 2; }

# check NAME CONFIG KEY: the median of RUNS counts on CONFIG against
# budget.txt's KEY + 3%; prints the figures, returns 1 past the limit.
check() {
  local name=$1 config=$2 key=$3 budget commands=() counts median limit
  budget=$(awk -v key="$key" '$1 == key {print $2}' "$here/budget.txt")
  for _ in $(seq "$runs"); do commands+=("$binary --config $config"); done
  counts=$(bash "$here/callgrind.sh" "${commands[@]}" | awk '{print $(NF-1)}')
  median=$(sort -n <<< "$counts" | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  limit=$((budget * 103 / 100))
  echo "$name: instructions per request: $(tr '\n' ' ' <<< "$counts")(median $median); budget $budget, limit $limit (+3%)"
  if [ "$median" -gt "$limit" ]; then
    echo "FAIL: $name costs $((median - budget)) instructions more than benches/budget.txt allows." >&2
    echo "Cut them, or raise the budget in the same commit with the reason in BENCHMARKS.md." >&2
    return 1
  fi
}

# The access log as shipped (on, text), to a file as an operator keeps it.
logged=$(mktemp --suffix=.toml)
trap 'rm -f "$logged"' EXIT
sed 's/^access_log = false$/access_log = true/' "$config" > "$logged"

failed=0
check "hot path" "$config" instructions_per_request || failed=1
check "with the access log" "$logged" access_log_instructions_per_request || failed=1
[ "$failed" = 0 ] || exit 1
echo "within budget"
