"""Hashes of one password in every format portero checks, each made by the
library that writes it in the wild (tests/password_formats.rs reads them):
bcrypt (the `bcrypt` package for $2a$ and $2b$; PHP's $2y$ from passlib's
own bcrypt, as passlib cannot drive bcrypt 5),
argon2-cffi (argon2id, argon2i), Django's own hasher (pbkdf2_sha256,
pbkdf2_sha1) and passlib (pbkdf2-sha256, pbkdf2-sha512, pbkdf2-sha1,
scrypt). Prints one JSON object: format -> hash.

Usage: python3 tests/password_formats.py PASSWORD
"""

import json
import os
import sys
import warnings

os.environ["PASSLIB_BUILTIN_BCRYPT"] = "enabled"

warnings.filterwarnings("ignore")

import argon2
import bcrypt
from django.conf import settings
from passlib import hash as passlib

settings.configure(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    ]
)
from django.contrib.auth.hashers import (  # noqa: E402
    PBKDF2PasswordHasher,
    PBKDF2SHA1PasswordHasher,
)

passlib.bcrypt.set_backend("builtin")
two_y = passlib.bcrypt.using(ident="2y", rounds=5)
password = sys.argv[1]


def django_hash(hasher):
    return hasher.encode(password, hasher.salt(), iterations=10000)


raw = password.encode()
low_cost = dict(time_cost=2, memory_cost=19456, parallelism=1)
hashes = {
    "bcrypt-2a": bcrypt.hashpw(raw, bcrypt.gensalt(rounds=6, prefix=b"2a")).decode(),
    "bcrypt-2b": bcrypt.hashpw(raw, bcrypt.gensalt(rounds=6, prefix=b"2b")).decode(),
    "bcrypt-2y": two_y.hash(password),
    "argon2id": argon2.PasswordHasher(type=argon2.Type.ID, **low_cost).hash(password),
    "argon2i": argon2.PasswordHasher(type=argon2.Type.I, **low_cost).hash(password),
    # Django's own hashers, with fewer rounds than its 1,000,000 so the test
    # stays quick: the format is the same.
    "django-pbkdf2-sha256": django_hash(PBKDF2PasswordHasher()),
    "django-pbkdf2-sha1": django_hash(PBKDF2SHA1PasswordHasher()),
    "passlib-pbkdf2-sha256": passlib.pbkdf2_sha256.using(rounds=10000).hash(password),
    "passlib-pbkdf2-sha512": passlib.pbkdf2_sha512.using(rounds=10000).hash(password),
    "passlib-pbkdf2-sha1": passlib.pbkdf2_sha1.using(rounds=10000).hash(password),
    "passlib-scrypt": passlib.scrypt.using(rounds=10).hash(password),
}
print(json.dumps(hashes))
