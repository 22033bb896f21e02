"""A Keycloak realm export whose users all have one password, in the shape
`kc.sh export` writes (tests/import.rs imports it). Keycloak derives keys
with Java's PBKDF2WithHmacSHA* and Bouncy Castle's argon2; the same
functions here are Python's hashlib.pbkdf2_hmac and argon2-cffi's
hash_secret_raw, with Keycloak's default parameters.

Usage: python3 tests/keycloak_export.py PASSWORD
"""

import base64
import hashlib
import json
import os
import sys

from argon2.low_level import Type, hash_secret_raw

password = sys.argv[1].encode()
b64 = lambda b: base64.b64encode(b).decode()


def pbkdf2(digest, iterations, key_bytes):
    salt = os.urandom(16)
    key = hashlib.pbkdf2_hmac(digest, password, salt, iterations, key_bytes)
    return salt, key


def credential(algorithm, iterations, salt, key, extra=None):
    """The form since Keycloak 11: two JSON documents in strings."""
    return {
        "id": "c0ffee00-0000-4000-8000-" + os.urandom(6).hex(),
        "type": "password",
        "createdDate": 1732500000000,
        "secretData": json.dumps(
            {"value": b64(key), "salt": b64(salt), "additionalParameters": {}}
        ),
        "credentialData": json.dumps(
            {
                "hashIterations": iterations,
                "algorithm": algorithm,
                "additionalParameters": extra or {},
            }
        ),
    }


def user(username, credentials, enabled=True, **more):
    return {
        "id": "5eed0000-0000-4000-8000-" + os.urandom(6).hex(),
        "createdTimestamp": 1732500000000,
        "username": username,
        "enabled": enabled,
        "totp": False,
        "emailVerified": True,
        "credentials": credentials,
        "disableableCredentialTypes": [],
        "requiredActions": [],
        "realmRoles": ["default-roles-demo"],
        "notBefore": 0,
        "groups": [],
        **more,
    }


argon2_salt = os.urandom(16)
argon2_key = hash_secret_raw(
    password, argon2_salt, time_cost=5, memory_cost=7168, parallelism=1,
    hash_len=32, type=Type.ID, version=19,
)
argon2_params = {
    "hashLength": ["32"], "memory": ["7168"], "type": ["id"],
    "version": ["1.3"], "parallelism": ["1"],
}
legacy_salt, legacy_key = pbkdf2("sha256", 27500, 64)
users = [
    # Keycloak 24 and later: 256-bit keys, 27,500 rounds.
    user("kc-pbkdf2-sha256", [credential("pbkdf2-sha256", 27500, *pbkdf2("sha256", 27500, 32))],
         firstName="Ana", lastName="Gil", attributes={"role": ["admin"]}),
    user("kc-pbkdf2-sha512", [credential("pbkdf2-sha512", 30000, *pbkdf2("sha512", 30000, 64))]),
    user("kc-pbkdf2", [credential("pbkdf2", 20000, *pbkdf2("sha1", 20000, 64))]),
    user("kc-argon2", [credential("argon2", 5, argon2_salt, argon2_key, argon2_params)]),
    # Before Keycloak 11: the hash's fields on the credential itself.
    user("kc-legacy", [{
        "type": "password", "hashedSaltedValue": b64(legacy_key),
        "salt": b64(legacy_salt), "hashIterations": 27500, "algorithm": "pbkdf2-sha256",
    }]),
    user("kc-disabled", [credential("pbkdf2-sha256", 27500, *pbkdf2("sha256", 27500, 32))],
         enabled=False),
]
print(json.dumps({"id": "demo", "realm": "demo", "enabled": True, "users": users}, indent=2))
