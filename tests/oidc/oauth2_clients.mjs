// portero's OAuth 2.0 endpoints through panva's oauth4webapi, a strict
// client no one here wrote (tests/oauth2_clients.rs runs it). Each check
// prints one line, `ok <name>`; the first failure throws and exits non-zero.
//
// Env: PORTERO_URL (the gateway's public_url), CLIENT_ID and CLIENT_SECRET
// (client-flat), APP_ID and APP_SECRET (login-refresh's client), USERNAME
// and PASSWORD (a login-refresh user), LEGACY_TOKEN (a legacy JWT of that user).
import * as oauth from 'oauth4webapi'

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}
const insecure = { [oauth.allowInsecureRequests]: true }
const ok = (name) => console.log(`ok ${name}`)
const check = (cond, what) => {
  if (!cond) throw new Error(`check failed: ${what}`)
}

// RFC 8414 discovery with the library's issuer check, both doors.
async function discover(name, algorithm) {
  const issuer = new URL(`${env('PORTERO_URL')}/oauth2/${name}`)
  const response = await oauth.discoveryRequest(issuer, { algorithm, ...insecure })
  return oauth.processDiscoveryResponse(issuer, response)
}

const flat = await discover('client-flat', 'oauth2')
ok('discovery oauth2 (RFC 8414 path insertion), issuer checked')
const flatOidc = await discover('client-flat', 'oidc')
check(flatOidc.token_endpoint === flat.token_endpoint, 'both metadata documents agree')
ok('discovery oidc-style, issuer checked')

// client_credentials, Basic then post.
const client = { client_id: env('CLIENT_ID') }
const basic = oauth.ClientSecretBasic(env('CLIENT_SECRET'))
const post = oauth.ClientSecretPost(env('CLIENT_SECRET'))
let tokens = {}
for (const [name, auth] of [['client_secret_basic', basic], ['client_secret_post', post]]) {
  const response = await oauth.clientCredentialsGrantRequest(
    flat, client, auth, new URLSearchParams({ scope: 'documents:read' }), insecure)
  const result = await oauth.processClientCredentialsResponse(flat, client, response)
  check(result.token_type === 'bearer', `token_type bearer (${result.token_type})`)
  check(result.scope === 'documents:read', 'the scope asked for')
  tokens[name] = result.access_token
  ok(`client_credentials with ${name}`)
}

// A wrong secret over Basic: 401 with the Basic challenge (RFC 6749
// §5.2), which the library reports as such, and the invalid_client body.
try {
  const response = await oauth.clientCredentialsGrantRequest(
    flat, client, oauth.ClientSecretBasic('wrong'), new URLSearchParams(), insecure)
  check((await response.clone().json()).error === 'invalid_client', 'an invalid_client body')
  await oauth.processClientCredentialsResponse(flat, client, response)
  throw new Error('a wrong secret was accepted')
} catch (e) {
  check(e instanceof oauth.WWWAuthenticateChallengeError, `a challenge (${e})`)
  check(e.status === 401 && e.cause[0].scheme === 'basic', 'a 401 Basic challenge')
}
ok('a wrong secret is invalid_client')

// Introspection, then revocation, then introspection again.
const introspect = async (as, c, auth, token) =>
  oauth.processIntrospectionResponse(as, c, await oauth.introspectionRequest(as, c, auth, token, insecure))
let claims = await introspect(flat, client, basic, tokens.client_secret_basic)
check(claims.active === true && claims.client_id === client.client_id, 'active, with its client_id')
ok('introspection of a live token')
await oauth.processRevocationResponse(
  await oauth.revocationRequest(flat, client, basic, tokens.client_secret_basic, insecure))
ok('revocation')
claims = await introspect(flat, client, basic, tokens.client_secret_basic)
check(claims.active === false, 'inactive once revoked')
ok('introspection of a revoked token')

// The users' issuer: the password grant (a generic grant to the library),
// refresh with rotation, and token exchange of a legacy token.
const users = await discover('login-refresh', 'oauth2')
const app = { client_id: env('APP_ID') }
const appAuth = oauth.ClientSecretBasic(env('APP_SECRET'))
let response = await oauth.genericTokenEndpointRequest(users, app, appAuth, 'password',
  new URLSearchParams({ username: env('USERNAME'), password: env('PASSWORD') }), insecure)
let result = await oauth.processGenericTokenEndpointResponse(users, app, response)
check(typeof result.refresh_token === 'string', 'a refresh token')
ok('password grant')
response = await oauth.refreshTokenGrantRequest(users, app, appAuth, result.refresh_token, insecure)
const refreshed = await oauth.processRefreshTokenResponse(users, app, response)
check(refreshed.refresh_token && refreshed.refresh_token !== result.refresh_token, 'rotated')
ok('refresh_token grant, rotated')
response = await oauth.genericTokenEndpointRequest(users, app, appAuth,
  'urn:ietf:params:oauth:grant-type:token-exchange',
  new URLSearchParams({
    subject_token: env('LEGACY_TOKEN'),
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
  }), insecure)
result = await oauth.processGenericTokenEndpointResponse(users, app, response)
check(result.issued_token_type === 'urn:ietf:params:oauth:token-type:access_token', 'issued_token_type')
claims = await introspect(users, app, appAuth, result.access_token)
check(claims.active === true, 'the exchanged token is live')
ok('token exchange of a legacy token')

// DPoP (RFC 9449) with the library's own handle: a key pair, a token
// request that the issuer (dpop_nonce = true) first answers with its
// nonce, a DPoP-bound token, then a route opened with a proof of the key.
const keyPair = await oauth.generateKeyPair('ES256')
const DPoP = oauth.DPoP(client, keyPair)
const boundRequest = async () => oauth.processClientCredentialsResponse(flat, client,
  await oauth.clientCredentialsGrantRequest(flat, client, basic,
    new URLSearchParams({ scope: 'documents:read' }), { DPoP, ...insecure }))
let asked = false
let bound
try {
  bound = await boundRequest()
} catch (e) {
  if (!oauth.isDPoPNonceError(e)) throw e
  asked = true
  bound = await boundRequest()
}
check(asked, 'the issuer asked for its nonce')
check(bound.token_type === 'dpop', `token_type DPoP (${bound.token_type})`)
const { calculateJwkThumbprint, exportJWK } = await import('jose')
const thumbprint = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey))
claims = await introspect(flat, client, basic, bound.access_token)
check(claims.active === true && claims.cnf?.jkt === thumbprint, 'cnf.jkt is the key\'s thumbprint')
ok('DPoP-bound client_credentials after the nonce retry, cnf.jkt introspected')
const api = new URL(`${env('PORTERO_URL')}/api/v1/documents`)
const opened = await oauth.protectedResourceRequest(
  bound.access_token, 'GET', api, new Headers(), null, { DPoP, ...insecure })
check(opened.status === 200, `the route opened (${opened.status})`)
const asBearer = await fetch(api, { headers: { authorization: `Bearer ${bound.access_token}` } })
check(asBearer.status === 401, `refused as a bearer token (${asBearer.status})`)
ok('the bound token opens a route with its proof, not as a bearer token')
