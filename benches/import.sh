#!/usr/bin/env bash
# `portero import` of a large CSV file (ROWS rows, default 100,000: distinct
# usernames, one argon2id hash shared by all, a name, a role and
# permissions), timed with its peak memory by GNU time: into the embedded
# store (then again, every row unchanged) and into Redis. Beside it, in the
# same run, PostgreSQL's own `\copy` of the same file into a table: what
# loading these rows costs a database. Then a gateway on the embedded store
# logs in the last row's user, to show the import is one that works.
# Needs psql on a PostgreSQL where root may create a database, redis-cli and
# a Redis at PORTERO_TEST_REDIS_URL (default redis://127.0.0.1:6379).
#
#   cargo build --release && bash benches/import.sh [binary]
set -euo pipefail
binary=$(realpath "${1:-target/release/portero}")
rows=${ROWS:-100000}
pg=${PORTERO_TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432}
redis_url=${PORTERO_TEST_REDIS_URL:-redis://127.0.0.1:6379}
prefix="portero-import-bench-$$"
work=$(mktemp -d)
cleanup() {
  kill "${gateway:-}" 2>/dev/null || true
  redis-cli -u "$redis_url" --scan --pattern "$prefix*" | xargs -r redis-cli -u "$redis_url" DEL >/dev/null
  psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS portero_import" >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

password="Secr3t pässword+%"
hash=$("$binary" hash-secret <<< "$password")
python3 - "$rows" "$hash" > users.csv <<'PY'
import sys
rows, hash = int(sys.argv[1]), sys.argv[2]
print("username,secret_hash,id,nombre,role,permissions")
for n in range(rows):
    print(f'user-{n},"{hash}",{n},User number {n},USER,"read write"')
PY
echo "users.csv: $rows rows, $(du -h users.csv | cut -f1)"

config() {  # $1: the [store] table
  cat <<EOF
[server]
threads = 1
data_dir = "data"

[[listen]]
addr = "127.0.0.1:18191"

[admin]
listen = "127.0.0.1:18192"

$1

[issuers.people]
dialect = "session"

[upstreams.echo]
builtin = "echo"

[[routes]]
path = "/"
upstream = "echo"
EOF
}
config "" > embedded.toml
config "[store]
backend = \"redis\"
url = \"$redis_url\"
key_prefix = \"$prefix:\"" > redis.toml

# Prints the command's output, then its wall time and peak RSS.
timed() {
  /usr/bin/time -f '%e s wall, %M KiB peak RSS' -o time.txt "$@"
  printf '  %s\n' "$(cat time.txt)"
}

echo "embedded store, first import:"
timed "$binary" --config embedded.toml import --issuer people users.csv
echo "embedded store, the same file again:"
timed "$binary" --config embedded.toml import --issuer people users.csv
echo "Redis:"
timed "$binary" --config redis.toml import --issuer people users.csv

PGOPTIONS=--client-min-messages=warning psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS portero_import" -c "CREATE DATABASE portero_import" >/dev/null
psql "$pg/portero_import" -qc "CREATE TABLE users (username TEXT PRIMARY KEY, secret_hash TEXT, id INTEGER, nombre TEXT, role TEXT, permissions TEXT)"
echo "PostgreSQL \\copy of the same file (the peer):"
timed psql "$pg/portero_import" -qc "\\copy users FROM 'users.csv' WITH (FORMAT csv, HEADER)"

PORTERO_ADMIN_TOKEN=x "$binary" --config embedded.toml > gateway.log 2>&1 &
gateway=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18192/readyz >/dev/null && break; sleep 0.1; done
last="user-$((rows - 1))"
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  --data "{\"username\":\"$last\",\"password\":\"$password\"}" http://127.0.0.1:18191/api/Session/GetToken)
echo "login as $last after the import: HTTP $status"
[ "$status" = 200 ]
