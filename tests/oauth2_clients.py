"""portero's OAuth 2.0 endpoints through two Python clients no one here
wrote: authlib and requests-oauthlib (tests/oauth2_clients.rs runs this).
Each check prints one line, `ok <name>`; the first failure raises.

Env: PORTERO_URL (the gateway's public_url), CLIENT_ID and CLIENT_SECRET
(client-flat), ODD_ID and ODD_SECRET (a client-flat client whose secret
has `+`, `%`, `:` and a space), APP_ID and APP_SECRET (login-refresh's
client), USERNAME and PASSWORD (a login-refresh user).
"""

import os

import requests
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session as OAuthlibSession


def env(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set")
    return value


def ok(name):
    print(f"ok {name}", flush=True)


def metadata(issuer):
    doc = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    assert doc["issuer"] == issuer, doc
    return doc


base = env("PORTERO_URL")
flat = metadata(f"{base}/oauth2/client-flat")
users = metadata(f"{base}/oauth2/login-refresh")

# authlib: client_credentials with each method, introspection, revocation.
for method in ("client_secret_basic", "client_secret_post"):
    session = AuthlibSession(
        env("CLIENT_ID"),
        env("CLIENT_SECRET"),
        token_endpoint_auth_method=method,
        scope="documents:read",
    )
    token = session.fetch_token(flat["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "documents:read", token
    ok(f"authlib client_credentials with {method}")
session = AuthlibSession(env("CLIENT_ID"), env("CLIENT_SECRET"))
token = session.fetch_token(flat["token_endpoint"], grant_type="client_credentials")
answer = session.introspect_token(flat["introspection_endpoint"], token=token["access_token"])
assert answer.status_code == 200 and answer.json()["active"] is True, answer.text
ok("authlib introspection")
answer = session.revoke_token(
    flat["revocation_endpoint"], token["access_token"], token_type_hint="access_token"
)
assert answer.status_code == 200, answer.text
answer = session.introspect_token(flat["introspection_endpoint"], token=token["access_token"])
assert answer.json() == {"active": False}, answer.text
ok("authlib revocation")

# authlib: the password grant, then refresh (rotated).
session = AuthlibSession(env("APP_ID"), env("APP_SECRET"))
token = session.fetch_token(
    users["token_endpoint"], username=env("USERNAME"), password=env("PASSWORD")
)
assert "refresh_token" in token, token
ok("authlib password grant")
refreshed = session.refresh_token(users["token_endpoint"], refresh_token=token["refresh_token"])
assert refreshed["refresh_token"] != token["refresh_token"], refreshed
ok("authlib refresh_token grant, rotated")

# authlib form-encodes Basic credentials; requests-oauthlib sends them as
# they are (HTTPBasicAuth): a secret with `+`, `%`, `:` and a space works
# from both.
session = AuthlibSession(env("ODD_ID"), env("ODD_SECRET"))
token = session.fetch_token(flat["token_endpoint"], grant_type="client_credentials")
ok("authlib Basic with an odd secret")
client = BackendApplicationClient(client_id=env("ODD_ID"))
session = OAuthlibSession(client=client)
token = session.fetch_token(
    token_url=flat["token_endpoint"], auth=HTTPBasicAuth(env("ODD_ID"), env("ODD_SECRET"))
)
assert token["token_type"] == "Bearer", token
ok("requests-oauthlib Basic (not form-encoded) with an odd secret")

# requests-oauthlib: client_credentials and a protected request with its token.
client = BackendApplicationClient(client_id=env("CLIENT_ID"))
session = OAuthlibSession(client=client)
token = session.fetch_token(
    token_url=flat["token_endpoint"],
    client_id=env("CLIENT_ID"),
    client_secret=env("CLIENT_SECRET"),
)
answer = session.get(f"{base}/orders/7", timeout=10)
assert answer.status_code == 200, answer.text
ok("requests-oauthlib client_credentials, then a protected route")
