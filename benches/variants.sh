# Sourced by features.sh and pgo.sh: copies of benches/peers.toml with one
# feature turned on or off, as $dir/NAME.toml, for $binary. Sets api_key (a
# key imported into the api-key variant's store) and session_cookie (a
# bench user signed in on the session variant). Needs $here, $dir, $binary,
# python3 and curl; uses 127.0.0.1:18085 while it signs in.

# variant NAME SED-SCRIPT [TEXT TO APPEND]: peers.toml edited into NAME.toml.
variant() {
  sed -e "$2" "$here/peers.toml" > "$dir/$1.toml"
  if [ -n "${3:-}" ]; then printf '\n%s\n' "$3" >> "$dir/$1.toml"; fi
}
variant shipped ''
variant trace-context-off 's/^\[server\]$/[server]\ntrace_context = false/'
variant access-log 's/^access_log = false$/access_log = true/'
variant json-logs 's/^access_log = false$/access_log = true\nlog_format = "json"/'
# The nginx origin answers the export's POST like any request.
variant span-export '' '[tracing]
otlp_endpoint = "http://127.0.0.1:18081/v1/traces"'
variant rate-limit 's/^upstream = "origin"$/upstream = "origin"\nrate_limit = { requests = 1000000000, per = "1s", by = "sub" }/'
variant cors 's/^upstream = "origin"$/upstream = "origin"\ncors = "app"/' '[cors.app]
allow_origins = ["https://app.example.com"]'
# A two-clause rule (CEL) on the route.
variant rule "s/^upstream = \"origin\"$/upstream = \"origin\"\nrule = 'claims.sub.startsWith(\"bench-\") \&\& request.method == \"GET\"'/"
variant claims-none '/^x-auth-sub = "sub"$/d'
variant claims-four 's/^x-auth-sub = "sub"$/x-auth-sub = "sub"\nx-auth-iss = "iss"\nx-auth-exp = "exp"\nx-auth-iat = "iat"/'

# TLS on the listener (a P-256 certificate made here).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2> /dev/null
variant tls 's|^addr = "127.0.0.1:18085"$|addr = "127.0.0.1:18085"\ntls_cert = "'"$dir"'/cert.pem"\ntls_key = "'"$dir"'/key.pem"|'

# API keys: the route takes a key of an `api_key` issuer instead of a
# token; the key is imported into the variant's own store first.
variant api-key 's/^upstream = "origin"$/upstream = "origin"\nissuers = ["bench-keys"]/; s|^data_dir = .*|data_dir = "'"$dir"'/api-key-store"|' '[issuers.bench-keys]
kind = "api_key"'
api_key="prt_$(printf 'bench%.0s' $(seq 9))keys"
printf '{"consumer": "bench-consumer", "key": "%s"}\n' "$api_key" > "$dir/keys.jsonl"
"$binary" --config "$dir/api-key.toml" import --issuer bench-keys "$dir/keys.jsonl" > /dev/null

# Opaque tokens: the route's issuer asks the origin's /introspect once,
# then answers from its kept answer.
variant introspection 's/^upstream = "origin"$/upstream = "origin"\nissuers = ["bench-opaque"]/' '[issuers.bench-opaque]
introspection_url = "http://127.0.0.1:18081/introspect"
client_id = "bench"
client_secret_env = "JWT_SECRET"
introspection_cache_ttl = "1h"'

# Browser sessions: the route also signs people in at portero's own issuer
# (the bench user below; password "bench-password"). A user signs in once,
# with the gateway running outside callgrind; its session is in the
# variant's store when callgrind's gateway starts, and is then read from
# memory like a token.
variant session 's/^upstream = "origin"$/upstream = "origin"\nlogin = "bench-own"\nissuers = ["bench-issuer"]/; s|^data_dir = .*|data_dir = "'"$dir"'/session-store"\npublic_url = "http:\/\/127.0.0.1:18085"|' '[issuers.bench-own]
kind = "oauth2"
login_client_id = "bench-web"

[[issuers.bench-own.users]]
username = "bench-user"
secret_hash = "'"$(printf 'bench-password' | "$binary" hash-secret | tr -d '\n')"'"

[[issuers.bench-own.clients]]
client_id = "bench-web"
redirect_uris = ["http://127.0.0.1:18085/.portero/callback"]'
# The secret origin.sh gives the bench issuer, which callgrind.sh sources later.
JWT_SECRET=${JWT_SECRET:-peers-bench-hs256-secret-0123456789abcdef} \
  "$binary" --config "$dir/session.toml" > "$dir/session.log" 2>&1 &
signing_in=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18085/ && break; sleep 0.1; done
session_cookie=$(python3 "$here/session_sign_in.py" http://127.0.0.1:18085/ bench-user bench-password)
kill "$signing_in"; wait "$signing_in" 2>/dev/null || true
