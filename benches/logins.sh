#!/usr/bin/env bash
# Login throughput per password format, one gateway, one run: a config
# principal (argon2id) beside user-store rows in PostgreSQL holding one
# password hashed by each library with its own defaults (argon2-cffi
# argon2id, bcrypt cost 12, Django pbkdf2_sha256 1,000,000, passlib
# pbkdf2-sha256 29,000 and scrypt ln=16). Session dialect, one worker,
# `wrk -t1 -c4 -d8s` per user, ROUNDS rounds interleaved (default 2).
# Needs wrk, psql on a PostgreSQL where root may create a database, and
# python3 with argon2-cffi, bcrypt, passlib and django.
#
#   cargo build --release && bash benches/logins.sh [binary]
set -euo pipefail
binary=${1:-target/release/portero}
binary=$(realpath "$binary")
pg=${PORTERO_TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432}
work=$(mktemp -d)
trap 'kill "$gateway" 2>/dev/null || true; psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS portero_logins" >/dev/null; rm -rf "$work"' EXIT
cd "$work"
PGOPTIONS=--client-min-messages=warning psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS portero_logins" -c "CREATE DATABASE portero_logins" >/dev/null
PG="$pg" python3 - <<'PY'
import json, os, subprocess, warnings
warnings.filterwarnings("ignore")
import argon2, bcrypt
from passlib import hash as passlib
from django.conf import settings
settings.configure(PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"])
from django.contrib.auth.hashers import make_password
password = "Secr3t pässword+%"
hashes = {
    "argon2id": argon2.PasswordHasher().hash(password),
    "bcrypt": bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode(),
    "django": make_password(password),
    "passlib-pbkdf2": passlib.pbkdf2_sha256.hash(password),
    "scrypt": passlib.scrypt.hash(password),
}
sql = "CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, id INTEGER, nombre TEXT);\n"
for i, (user, h) in enumerate(hashes.items()):
    sql += f"INSERT INTO users VALUES ('{user}', '{h}', {i}, '{user}');\n"
subprocess.run(["psql", os.environ["PG"] + "/portero_logins", "-q"], input=sql.encode(), check=True)
with open("gw.toml", "w") as f:
    f.write(f'''[server]
threads = 1
access_log = false
data_dir = "data"

[[listen]]
addr = "127.0.0.1:18181"

[admin]
listen = "127.0.0.1:18182"

[issuers.people]
dialect = "session"
max_failures = 1000
ip_max_failures = 100000

[[issuers.people.principals]]
username = "config-argon2id"
secret_hash = "{hashes['argon2id']}"
id = 99
nombre = "config"

[issuers.people.user_store]
url = "{os.environ['PG']}/portero_logins"
query = "SELECT username, password_hash AS secret_hash, id, nombre FROM users WHERE username = $1"

[upstreams.echo]
builtin = "echo"

[[routes]]
path = "/"
upstream = "echo"
''')
for user in ["config-argon2id", *hashes]:
    body = json.dumps({"username": user, "password": password}, ensure_ascii=False)
    with open(f"{user}.lua", "w", encoding="utf-8") as f:
        f.write(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[{body}]]\n')
PY
PORTERO_ADMIN_TOKEN=x "$binary" --config gw.toml > gateway.log 2>&1 &
gateway=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18182/readyz >/dev/null && break; sleep 0.1; done
for round in $(seq "${ROUNDS:-2}"); do
  for user in config-argon2id argon2id bcrypt django passlib-pbkdf2 scrypt; do
    out=$(wrk -t1 -c4 -d8s -s "$user.lua" http://127.0.0.1:18181/api/Session/GetToken)
    printf 'round %s %-16s %8s logins/s %s\n' "$round" "$user" \
      "$(awk '/Requests\/sec/ {print $2}' <<< "$out")" \
      "$(grep -o 'Non-2xx or 3xx responses: [0-9]*' <<< "$out" || true)"
  done
done
