// panva's oauth4webapi pushes an authorization request (RFC 9126) with a
// DPoP proof (RFC 9449 §10.1: the code is bound to the key), prints the
// request_uri, reads back the callback URL the test's sign-in reached,
// redeems the code with a proof of the same key, and calls a route with
// the bound token. tests/dpop.rs drives it.
// PORTERO_URL (the gateway's public_url), CLIENT_ID (public), REDIRECT_URI.
import * as oauth from 'oauth4webapi'
import readline from 'node:readline'

const { PORTERO_URL, CLIENT_ID, REDIRECT_URI } = process.env
const insecure = { [oauth.allowInsecureRequests]: true }
const issuer = new URL(`${PORTERO_URL}/oauth2/app`)
const as = await oauth.processDiscoveryResponse(
  issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }))
const client = { client_id: CLIENT_ID }
const auth = oauth.None()
const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'))
const verifier = oauth.generateRandomCodeVerifier()
const params = new URLSearchParams({
  response_type: 'code',
  redirect_uri: REDIRECT_URI,
  scope: 'openid offline_access notes:read',
  state: 's-123',
  nonce: 'n-456',
  code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
})
const pushed = await oauth.processPushedAuthorizationResponse(as, client,
  await oauth.pushedAuthorizationRequest(as, client, auth, params, { DPoP, ...insecure }))
console.log(JSON.stringify({
  request_uri: pushed.request_uri,
  expires_in: pushed.expires_in,
  endpoint: as.pushed_authorization_request_endpoint,
}))

const line = await new Promise((resolve) =>
  readline.createInterface({ input: process.stdin }).once('line', resolve))
const callback = oauth.validateAuthResponse(as, client, new URL(line), 's-123')
const tokens = await oauth.processAuthorizationCodeResponse(as, client,
  await oauth.authorizationCodeGrantRequest(as, client, auth, callback, REDIRECT_URI, verifier,
    { DPoP, ...insecure }),
  { expectedNonce: 'n-456', requireIdToken: true })
const api = await oauth.protectedResourceRequest(tokens.access_token, 'GET',
  new URL(`${PORTERO_URL}/notes`), new Headers(), null, { DPoP, ...insecure })
console.log(JSON.stringify({
  token_type: tokens.token_type,
  refresh_token: typeof tokens.refresh_token === 'string',
  api: api.status,
}))
