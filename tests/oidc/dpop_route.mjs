// panva's oauth4webapi as a DPoP client (RFC 9449) of the provider
// (provider.mjs) and of portero's routes: a key pair, a DPoP-bound token
// by the client-credentials grant, then requests to two gateways that
// share one store, each with a proof the library makes (retried once
// when a route asks for a nonce). Prints what each request was answered,
// as JSON; tests/oidc.rs checks it.
// ISSUER, CLIENT_ID, CLIENT_SECRET, SCOPE, A and B (the gateways' base URLs).
import * as oauth from 'oauth4webapi'
import http from 'node:http'

const { ISSUER, CLIENT_ID, CLIENT_SECRET, SCOPE, A, B } = process.env
const insecure = { [oauth.allowInsecureRequests]: true }
const issuer = new URL(ISSUER)
const as = await oauth.processDiscoveryResponse(
  issuer, await oauth.discoveryRequest(issuer, insecure))
const client = { client_id: CLIENT_ID }
const auth = oauth.ClientSecretPost(CLIENT_SECRET)
const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'))

// The last request the library sent, to send again as it was.
let sent
const capture = {
  [oauth.customFetch]: (url, options) => {
    sent = { url, headers: new Headers(options.headers) }
    return fetch(url, options)
  },
}

// A call, and once more if the server asked for a nonce (the handle has
// kept the one it was given); with what the first answer said.
async function retried(call) {
  try {
    return { first: 'ok', result: await call() }
  } catch (e) {
    if (!oauth.isDPoPNonceError(e)) throw e
    return { first: 'use_dpop_nonce', result: await call() }
  }
}

const grant = await retried(async () => oauth.processClientCredentialsResponse(as, client,
  await oauth.clientCredentialsGrantRequest(as, client, auth,
    new URLSearchParams({ scope: SCOPE }), { DPoP, ...insecure })))
const token = grant.result

async function request(base, path) {
  // The library throws on a challenge; a nonce's it retries.
  const call = async () => (await oauth.protectedResourceRequest(token.access_token, 'GET',
    new URL(`${base}${path}`), new Headers(), null, { DPoP, ...insecure, ...capture })).status
  return retried(call)
}

// A request sent again as it was, to `base` (another instance behind the
// same name: its Host is the first's, as a load balancer's would be).
function again(url, headers, base = A) {
  const target = new URL(url)
  const host = target.host
  const to = new URL(target.pathname, base)
  return new Promise((resolve, reject) => {
    const request = http.request(to, { headers: { ...Object.fromEntries(headers), host } }, (r) => {
      r.resume()
      resolve({ status: r.statusCode, challenge: r.headers['www-authenticate'] ?? null })
    })
    request.on('error', reject)
    request.end()
  })
}

const out = { token_type: token.token_type }
out.orders_a = await request(A, '/orders')
const proof = sent
out.replayed_on_a = await again(proof.url, proof.headers)
out.replayed_on_b = await again(proof.url, proof.headers, B)
const bearer = new Headers({ authorization: `Bearer ${token.access_token}` })
out.as_bearer = await again(`${A}/orders`, bearer)
out.orders_b = await request(B, '/orders')
out.vault_a = await request(A, '/vault')
const vault = sent
out.vault_proof_at_orders = await again(`${A}/orders`, vault.headers)
console.log(JSON.stringify(out))
