// A user signs in to portero's OAuth 2.1 authorization server through
// panva's oauth4webapi, a strict client no one here wrote
// (tests/sign_in_clients.rs runs it): discovery, the authorization code
// flow with PKCE, state and nonce, the sign-in page posted as a browser
// would, the RFC 9207 `iss` of the response, the ID token (its claims by
// oauth4webapi, its ES256 signature by jose against the issuer's JWKS),
// userinfo and refresh. Each check prints `ok <name>`; the first failure
// throws and exits non-zero.
//
// Env: PORTERO_URL (the gateway's public_url), ISSUER (the issuer's name),
// CLIENT_ID and REDIRECT_URI (a public client), USERNAME and PASSWORD.
import * as oauth from 'oauth4webapi'
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { Browser } from './browser.mjs'

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
// The error a call throws, or a failure if it throws none.
const thrown = async (call, what) => {
  try {
    await call()
  } catch (e) {
    return e
  }
  throw new Error(`not rejected: ${what}`)
}

const issuer = new URL(`${env('PORTERO_URL')}/oauth2/${env('ISSUER')}`)
const as = await oauth.processDiscoveryResponse(
  issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }))
check(as.code_challenge_methods_supported?.includes('S256'), 'S256 advertised')
check(as.authorization_response_iss_parameter_supported === true, 'iss advertised (RFC 9207)')
ok('discovery, issuer checked')
check(as.id_token_signing_alg_values_supported?.includes('ES256'), `ES256 (${as.id_token_signing_alg_values_supported})`)
check(as.jwks_uri === `${env('PORTERO_URL')}/.well-known/jwks.json`, `jwks_uri ${as.jwks_uri}`)
ok('ES256 ID tokens, the JWKS named')

const client = { client_id: env('CLIENT_ID') }
const redirectUri = env('REDIRECT_URI')
const browser = new Browser()

// One authorization request: its URL and what the client keeps to check the answer.
async function authorizationRequest() {
  const codeVerifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const nonce = oauth.generateRandomNonce()
  const url = new URL(as.authorization_endpoint)
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: redirectUri,
    scope: 'openid offline_access',
    state,
    nonce,
    code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
  })
  return { url, codeVerifier, state, nonce }
}

const first = await authorizationRequest()
ok('authorization URL with PKCE S256, state and nonce')
const location = await browser.signIn(first.url.href, env('USERNAME'), env('PASSWORD'))
const callback = new URL(location)
check(callback.href.startsWith(redirectUri + '?'), `back at the callback (${location})`)
ok('signed in on the page, 303 to the callback')

// RFC 9207: the response names its issuer; one naming another, or none,
// is a mix-up the client must refuse.
const changed = new URL(callback)
changed.searchParams.set('iss', 'http://attacker.example/oauth2/app')
let e = await thrown(() => oauth.validateAuthResponse(as, client, changed, first.state), 'another iss')
check(e.code === oauth.INVALID_RESPONSE && /"iss"/.test(e.message), `the iss refused (${e})`)
const dropped = new URL(callback)
dropped.searchParams.delete('iss')
e = await thrown(() => oauth.validateAuthResponse(as, client, dropped, first.state), 'no iss')
check(/"iss"/.test(e.message), `a missing iss refused (${e})`)
ok('a callback whose iss was changed or dropped is rejected')
e = await thrown(() => oauth.validateAuthResponse(as, client, callback, 'another state'), 'another state')
check(/"state"/.test(e.message), `the state refused (${e})`)
const params = oauth.validateAuthResponse(as, client, callback, first.state)
ok('validateAuthResponse: iss and state checked')

let response = await oauth.authorizationCodeGrantRequest(
  as, client, oauth.None(), params, redirectUri, first.codeVerifier, insecure)
const tokens = await oauth.processAuthorizationCodeResponse(
  as, client, response, { expectedNonce: first.nonce, requireIdToken: true })
const claims = oauth.getValidatedIdTokenClaims(tokens)
check(claims.sub === env('USERNAME') && claims.aud === client.client_id, 'the ID token is for the user and client')
check(claims.nonce === first.nonce && claims.iss === as.issuer, 'its nonce and issuer')
check(typeof tokens.refresh_token === 'string', 'a refresh token')
ok('code redeemed with the verifier, ID token claims validated with the nonce')

// oauth4webapi takes the ID token's signature on trust from the token
// endpoint (over TLS); the issuer's published keys must verify it too.
const jwks = createRemoteJWKSet(new URL(as.jwks_uri))
check(decodeProtectedHeader(tokens.id_token).alg === 'ES256', 'signed ES256')
const verified = await jwtVerify(tokens.id_token, jwks, {
  issuer: as.issuer, audience: client.client_id, algorithms: ['ES256'],
})
check(verified.payload.sub === claims.sub, 'the verified token is the one validated')
ok('ID token signature verified against the JWKS (ES256)')

response = await oauth.userInfoRequest(as, client, tokens.access_token, insecure)
const info = await oauth.processUserInfoResponse(as, client, claims.sub, response)
check(info.sub === claims.sub, 'userinfo for the ID token subject')
ok('userinfo for the ID token subject')

response = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token, insecure)
const refreshed = await oauth.processRefreshTokenResponse(as, client, response)
check(refreshed.access_token && refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token,
  'a new access token, the refresh token rotated')
ok('refresh_token grant, rotated')

// The sign-on session answers the next request at once; a client that
// expects another nonce refuses the ID token it is given.
const second = await authorizationRequest()
const again = await browser.get(second.url.href)
check(again.status === 303, `the session gives a code at once (${again.status})`)
const secondParams = oauth.validateAuthResponse(as, client, new URL(again.headers.get('location')), second.state)
response = await oauth.authorizationCodeGrantRequest(
  as, client, oauth.None(), secondParams, redirectUri, second.codeVerifier, insecure)
e = await thrown(() => oauth.processAuthorizationCodeResponse(
  as, client, response, { expectedNonce: first.nonce, requireIdToken: true }), 'another nonce')
check(/nonce/.test(e.message), `the nonce refused (${e})`)
ok('the sign-on session answers at once; an ID token with another nonce is rejected')
