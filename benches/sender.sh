#!/usr/bin/env bash
# What binding a token to its sender costs a proxied request, in
# instructions (callgrind.sh, benches/peers.toml):
# - a DPoP-bound token with a fresh ES256 proof each request, over 50
#   connections kept open (benches/dpop_load.py), beside the shipped
#   bearer token, and the proof's signature check alone (the inclusive
#   count of dpop::key::ProofKey::verifies in the same profile), each per
#   proof the gateway checked;
#   the rest of it, and the part of that in dpop::Proofs::check (the rest
#   is carrying the token's proof: reading and forwarding its header), and
#   the part that is time alone: what 10 s with 50 idle connections cost
#   (callgrind.sh IDLE=1), spread over the DPoP count's few requests
#   less over the bearer count's many;
# - over TLS with a client certificate (client_ca_file), a bearer token
#   and one bound to the certificate (cnf x5t#S256), on the same kind of
#   kept-alive connection, RUNS times each (3 by default).
# Needs what callgrind.sh needs, openssl, and python3's cryptography.
#
#   cargo build --release && bash benches/sender.sh [path/to/portero]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=${1:-${CARGO_TARGET_DIR:-$here/../target}/release/portero}
[ -x "$binary" ] || { echo "no portero binary at $binary: cargo build --release first" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export JWT_SECRET=${JWT_SECRET:-peers-bench-hs256-secret-0123456789abcdef}

# Per request: the count callgrind.sh prints; and its requests.
per_request() { awk '{print $(NF-1)}'; }

bearer_count=$(bash "$here/callgrind.sh" "$binary --config $here/peers.toml")
bearer=$(per_request <<< "$bearer_count")
bearer_requests=$(awk '{print $(NF-3)}' <<< "$bearer_count")
KEEP=$dir/dpop DPOP=1 bash "$here/callgrind.sh" "$binary" > "$dir/dpop.out"
annotate() {
  callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$@" "$dir"/dpop/callgrind.* 2> /dev/null
}
# A function's inclusive count: the largest on a line naming it (its
# lines may be split by the source path they were built from).
inclusive() {
  annotate | awk -v name=":$1( |$)" '$0 ~ name {gsub(",", "", $1); if ($1 + 0 > max) max = $1 + 0} END {print max}'
}
verify=$(inclusive 'portero::dpop::key::ProofKey::verifies')
check=$(inclusive 'portero::dpop::Proofs::check')
# Requests: the proofs the gateway checked in the window, not the load's
# count of answers, which leaves out the requests in flight as it stops
# (up to one a connection: 50 of the ~5,500 a run under valgrind serves,
# each ~0.8 million instructions that its count would spread over the rest).
requests=$(annotate --tree=calling |
  awk '/>   .*:portero::dpop::Proofs::check \(/ && match($0, /\([0-9,]+x\)/) {
         n = substr($0, RSTART + 1, RLENGTH - 3); gsub(",", "", n); if (n + 0 > max) max = n + 0
       } END {print max}')
total=$(callgrind_annotate "$dir"/dpop/callgrind.* 2> /dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
dpop=$((total / requests))
signature=$((verify / requests))
printf '%-46s %8s instructions/request\n' "bearer token" "$bearer"
printf '%-46s %8s instructions/request\n' "DPoP-bound token, ES256 proof" "$dpop"
printf '%-46s %8s instructions/request\n' "  of which the proof's signature check" "$signature"
printf '%-46s %8s instructions/request\n' "  the rest of DPoP (proof - bearer - signature)" "$((dpop - bearer - signature))"
printf '%-46s %8s instructions/request\n' "  of which the proof's check beyond signature" "$(((check - verify) / requests))"

# Mutual TLS: a CA, the listener's certificate and a client's.
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
  -keyout ca.key -out ca.pem 2> /dev/null
for name in server client; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$name.key" -out "$name.csr" 2> /dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile "$name.ext" -out "$name.pem" 2> /dev/null
done
sed 's|^addr = "127.0.0.1:18085"$|addr = "127.0.0.1:18085"\ntls_cert = "'"$dir"'/server.pem"\ntls_key = "'"$dir"'/server.key"\nclient_ca_file = "'"$dir"'/ca.pem"|' \
  "$here/peers.toml" > mtls.toml
bound=$(python3 - <<'PY'
import base64, hashlib, hmac, json, os, time
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
def b64(d): return base64.urlsafe_b64encode(d).rstrip(b"=").decode()
der = x509.load_pem_x509_certificate(open("client.pem", "rb").read()).public_bytes(Encoding.DER)
now = int(time.time())
h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
p = b64(json.dumps({"iss": "bench-issuer", "sub": "bench-user-42", "iat": now, "exp": now + 86400,
                    "cnf": {"x5t#S256": b64(hashlib.sha256(der).digest())}}, separators=(",", ":")).encode())
s = b64(hmac.new(os.environ["JWT_SECRET"].encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
print(f"{h}.{p}.{s}")
PY
)
cd - > /dev/null
# Each count a few times, in turn: one run of the TLS load moves by about
# a hundred instructions a request, so the binding's cost is the median
# of the runs' differences.
costs=()
for _ in $(seq "${RUNS:-3}"); do
  tls_bearer=$(MTLS=$dir bash "$here/callgrind.sh" "$binary --config $dir/mtls.toml" | per_request)
  tls_bound=$(MTLS=$dir BEARER=$bound bash "$here/callgrind.sh" "$binary --config $dir/mtls.toml" | per_request)
  printf '%-46s %8s instructions/request\n' "TLS with a client certificate, bearer token" "$tls_bearer"
  printf '%-46s %8s instructions/request\n' "  the same, the token bound to the certificate" "$tls_bound"
  costs+=($((tls_bound - tls_bearer)))
done
median=$(printf '%s\n' "${costs[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
printf '%-46s %8s instructions/request (runs: %s)\n' "  the binding's cost, median" "$median" "${costs[*]}"

# What 10 s cost with no request at all: each count carries it, spread
# over its requests (under valgrind ~67,000 bearer ones and ~5,500 DPoP
# ones on an idle machine, fewer on a loaded one).
idle=$(IDLE=1 bash "$here/callgrind.sh" "$binary --config $here/peers.toml" |
  grep -o '[0-9]* instructions in 10 s' | cut -d' ' -f1)
printf '%-46s %8s instructions/request (%s in 10 s idle)\n' \
  "DPoP's rest that is time alone" "$((idle / requests - idle / bearer_requests))" "$idle"
