"""A client authenticating by private_key_jwt (RFC 7523 §2.2) through
authlib, a client no one here wrote (tests/client_assertions.rs runs
this). Each check prints one line, `ok <name>`; the first failure raises.

Env: TOKEN_ENDPOINT (where to post), AUDIENCE (the issuer's token
endpoint as its metadata names it: the assertion's `aud`), ROUTE (a route
of the issuer that tells the upstream the token's `sub` as `x-client`),
CLIENT_ID, KEY_FILE (the client's RSA private key, PEM).
"""

import os

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT


def env(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set")
    return value


def ok(name):
    print(f"ok {name}", flush=True)


with open(env("KEY_FILE")) as f:
    private_key = f.read()

session = OAuth2Session(
    env("CLIENT_ID"),
    private_key,
    token_endpoint_auth_method="private_key_jwt",
)
# The assertion's audience is the token endpoint the metadata names.
session.register_client_auth_method(PrivateKeyJWT(env("AUDIENCE")))
token = session.fetch_token(env("TOKEN_ENDPOINT"), grant_type="client_credentials")
assert token["token_type"] == "Bearer", token
ok("authlib private_key_jwt client_credentials")

seen = requests.get(
    env("ROUTE"),
    headers={"Authorization": f"Bearer {token['access_token']}"},
    timeout=10,
)
assert seen.status_code == 200, seen.text
assert seen.json()["headers"]["x-client"] == env("CLIENT_ID"), seen.text
ok("the token opens the route as the client")

# Each fetch signs a new assertion (a new jti): taken again.
again = session.fetch_token(env("TOKEN_ENDPOINT"), grant_type="client_credentials")
assert again["access_token"] != token["access_token"], again
ok("a second assertion, a second token")
