"""A sign-in with a one-time code, checked by authlib (a client no one here
wrote): authlib makes the authorization request (PKCE S256, a nonce,
acr_values), redeems the code and validates the ID token's claims, its
`acr` among them; pyotp computes the codes. tests/second_factor.rs runs
this. Each check prints one line, `ok <name>`; the first failure raises.

Env: PORTERO_URL (the gateway's public_url), CLIENT_ID and CALLBACK (a
public client and its redirect URI), USERNAME and PASSWORD.
"""

import html
import os
import re
import warnings

import pyotp
import requests

# authlib.jose says on import that joserfc replaces it; it still validates.
warnings.simplefilter("ignore", DeprecationWarning)
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402
from authlib.jose import JsonWebKey, jwt  # noqa: E402
from authlib.oidc.core import CodeIDToken  # noqa: E402

issuer = os.environ["PORTERO_URL"] + "/oauth2/app"
meta = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
assert "urn:portero:acr:mfa" in meta["acr_values_supported"], meta


def ok(name):
    print(f"ok {name}", flush=True)


def form(page):
    """The page's form: its action and hidden fields."""
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page).group(1))
    fields = {
        html.unescape(n): html.unescape(v)
        for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', page)
    }
    return action, fields


def post(browser, page, extra):
    action, fields = form(page)
    fields.update(extra)
    return browser.post(action, data=fields, allow_redirects=False, timeout=10)


client = OAuth2Session(
    os.environ["CLIENT_ID"],
    redirect_uri=os.environ["CALLBACK"],
    scope="openid",
    code_challenge_method="S256",
    token_endpoint_auth_method="none",
)
verifier = "v" * 20 + os.urandom(16).hex()
nonce = os.urandom(8).hex()
url, state = client.create_authorization_url(
    meta["authorization_endpoint"],
    code_verifier=verifier,
    nonce=nonce,
    acr_values="urn:portero:acr:mfa",
)
browser = requests.Session()
page = browser.get(url, timeout=10).text
r = post(browser, page, {"username": os.environ["USERNAME"], "password": os.environ["PASSWORD"]})
assert r.status_code == 200 and "Set up two-step verification" in r.text, r.text
secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', r.text).group(1)
r = post(browser, r.text, {"code": pyotp.TOTP(secret).now()})
assert "Save your recovery codes" in r.text, r.text
r = post(browser, r.text, {"continue": "1"})
assert r.status_code == 303, r.text
callback = r.headers["location"]
ok("signed in with pyotp's code")

token = client.fetch_token(
    meta["token_endpoint"], authorization_response=callback, code_verifier=verifier, state=state
)
keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
params = {"nonce": nonce, "client_id": os.environ["CLIENT_ID"], "access_token": token["access_token"]}
levels = ["urn:portero:acr:mfa", "urn:portero:acr:phr"]
claims = jwt.decode(
    token["id_token"],
    keys,
    claims_cls=CodeIDToken,
    claims_options={"iss": {"value": issuer}, "acr": {"essential": True, "values": levels}},
    claims_params=params,
)
claims.validate(leeway=5)
assert claims["amr"] == ["pwd", "otp", "mfa"], claims
ok("authlib validated the ID token with acr among " + " ".join(levels))

strict = jwt.decode(
    token["id_token"],
    keys,
    claims_cls=CodeIDToken,
    claims_options={"acr": {"essential": True, "values": ["urn:portero:acr:phr"]}},
    claims_params=params,
)
try:
    strict.validate(leeway=5)
    raise AssertionError("a code is not a passkey")
except Exception as e:  # authlib's own, or joserfc's where authlib hands over
    assert type(e).__name__ == "InvalidClaimError" and "acr" in str(e), e
ok("authlib refused it where a passkey is required")
