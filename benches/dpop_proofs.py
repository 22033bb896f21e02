"""DPoP proofs for the bench (benches/callgrind.sh with DPOP=1): an ES256
key, an HS256 token of the bench issuer bound to it (`cnf.jkt`), and COUNT
proofs of `GET URL`, each with its own `jti` and the token's `ath`.
Writes the token to OUT.token and one proof a line to OUT.proofs.

    JWT_SECRET=... python3 benches/dpop_proofs.py URL COUNT OUT
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


url, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
key = ec.generate_private_key(ec.SECP256R1())
numbers = key.public_key().public_numbers()
jwk = {"kty": "EC", "crv": "P-256",
       "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}
jkt = b64(hashlib.sha256(compact({k: jwk[k] for k in ("crv", "kty", "x", "y")})).digest())

now = int(time.time())
header = b64(compact({"alg": "HS256", "typ": "JWT"}))
payload = b64(compact({"iss": "bench-issuer", "sub": "bench-user-42", "iat": now,
                       "exp": now + 86400, "cnf": {"jkt": jkt}}))
signature = hmac.new(os.environ["JWT_SECRET"].encode(), f"{header}.{payload}".encode(),
                     hashlib.sha256).digest()
token = f"{header}.{payload}.{b64(signature)}"
ath = b64(hashlib.sha256(token.encode()).digest())

proof_header = b64(compact({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}))
with open(f"{out}.token", "w") as f:
    f.write(token)
with open(f"{out}.proofs", "w") as f:
    for i in range(count):
        claims = b64(compact({"jti": f"{i:x}-{os.urandom(6).hex()}", "htm": "GET", "htu": url,
                              "iat": now, "ath": ath}))
        message = f"{proof_header}.{claims}".encode()
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        f.write(f"{proof_header}.{claims}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}\n")
