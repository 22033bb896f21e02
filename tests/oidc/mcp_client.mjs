// The MCP TypeScript SDK's client against an MCP server behind portero
// (tests/sign_in_clients.rs runs it): the SDK meets portero's 401, reads
// the route's protected resource metadata (RFC 9728) and the issuer's
// authorization server metadata (RFC 8414), registers itself (RFC 7591),
// sends the user to the sign-in page (a scripted browser signs in there),
// redeems the code with PKCE for a token of the MCP resource (RFC 8707),
// and calls the server's tool. Every request it sends is printed as
// `log <METHOD> <path> <status>`, every check as `ok <name>`; the first
// failure throws and exits non-zero.
//
// Env: PORTERO_URL (the gateway's public_url, whose /mcp is the server),
// ISSUER (the issuer's name), USERNAME and PASSWORD; CLIENT_METADATA_URL,
// when set: the client is named by its metadata document at that URL
// (a client ID metadata document, which the test serves) instead of
// registering; STEP_UP, when set: once done, the script says `waiting for
// a step up` and waits for a line on stdin (the test makes the route ask
// for more scope meanwhile), then steps up: portero's 403, the page asking
// only for what is new, a token with both.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js'
import { Browser } from './browser.mjs'

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}
const ok = (name) => console.log(`ok ${name}`)
const check = (cond, what) => {
  if (!cond) throw new Error(`check failed: ${what}`)
}

// Every request the SDK (and the browser) sends, as its answer's head
// arrives (a stream's before its end).
const log = []
const logged = async (input, init) => {
  const response = await fetch(input, init)
  const method = init?.method ?? (input instanceof Request ? input.method : 'GET')
  const url = new URL(input instanceof Request ? input.url : input)
  log.push(`${method} ${url.pathname} ${response.status}`)
  console.log(`log ${log.at(-1)}`)
  return response
}
// Waits (5 s at most) for `line` in the log from index `from` on.
const logs = async (line, from) => {
  for (let waited = 0; waited < 5000; waited += 20) {
    if (log.slice(from).includes(line)) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return false
}

const serverUrl = new URL(`${env('PORTERO_URL')}/mcp`)
const issuer = `${env('PORTERO_URL')}/oauth2/${env('ISSUER')}`
const browser = new Browser(logged)
const metadataUrl = process.env.CLIENT_METADATA_URL

// The in-memory provider a command-line client would keep; its "browser"
// is the scripted one, and the callback is read from the redirect.
class Provider {
  constructor() {
    this.saved = {}
    this.callback = undefined
  }

  get clientMetadataUrl() {
    return metadataUrl
  }

  get redirectUrl() {
    return 'http://127.0.0.1:8976/callback'
  }

  get clientMetadata() {
    return {
      client_name: 'portero MCP test client',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }
  }

  state() {
    this.saved.state = crypto.randomUUID()
    return this.saved.state
  }

  clientInformation() { return this.saved.client }
  saveClientInformation(info) { this.saved.client = info }
  tokens() { return this.saved.tokens }
  saveTokens(tokens) { this.saved.tokens = tokens }
  codeVerifier() { return this.saved.verifier }
  saveCodeVerifier(verifier) { this.saved.verifier = verifier }
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'client') delete this.saved.client
    if (scope === 'all' || scope === 'tokens') delete this.saved.tokens
  }

  async redirectToAuthorization(url) {
    this.authorizationUrl = url
    if (this.consenting) {
      const { html, location } = await browser.allow(url.href)
      this.consentPage = html
      this.callback = new URL(location)
      return
    }
    this.callback = new URL(await browser.signIn(url.href, env('USERNAME'), env('PASSWORD')))
  }
}

const provider = new Provider()
const transport = () => new StreamableHTTPClientTransport(serverUrl, { authProvider: provider, fetch: logged })

// First contact: portero refuses, and the SDK goes through discovery,
// registration and the authorization request.
let client = new Client({ name: 'portero-test', version: '1.0.0' })
try {
  await client.connect(transport())
  throw new Error('connected without a token')
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e
}
ok('portero refused the first request; the SDK went to authorize')

const registered = provider.saved.client
if (metadataUrl) {
  check(registered?.client_id === metadataUrl, `named by its document (${JSON.stringify(registered)})`)
  ok('named by its client ID metadata document, without registering')
} else {
  check(registered?.client_id?.startsWith('reg-'), `registered (${JSON.stringify(registered)})`)
  check(registered.token_endpoint_auth_method === 'none', 'a public client')
  ok('registered (RFC 7591) as a public client')
}

const asked = provider.authorizationUrl
check(asked.href.startsWith(`${issuer}/authorize?`), `the issuer's authorize (${asked})`)
check(asked.searchParams.get('code_challenge_method') === 'S256', 'PKCE S256')
check(asked.searchParams.get('resource') === serverUrl.href, `the resource asked (${asked.searchParams.get('resource')})`)
check(asked.searchParams.get('client_id') === registered.client_id, 'for its client id')
ok('authorization request with PKCE S256 and the MCP server as resource (RFC 8707)')

const callback = provider.callback
check(callback.searchParams.get('state') === provider.saved.state, 'the state came back')
check(callback.searchParams.get('iss') === issuer, `the issuer named (RFC 9207): ${callback.searchParams.get('iss')}`)
const code = callback.searchParams.get('code')
check(code, `a code (${callback})`)
ok('signed in on the page; the callback has the code, state and iss')

// The callback's code, redeemed by the transport as an application would.
const first = transport()
await first.finishAuth(code)
const tokens = provider.saved.tokens
check(tokens?.access_token && tokens.refresh_token, 'an access and a refresh token')
const claims = JSON.parse(Buffer.from(tokens.access_token.split('.')[1], 'base64url'))
check(claims.aud === serverUrl.href, `the token's audience is the MCP server (${claims.aud})`)
check(claims.sub === env('USERNAME'), `for the user (${claims.sub})`)
ok('code redeemed for a token of the MCP server')

client = new Client({ name: 'portero-test', version: '1.0.0' })
const connected = log.length
let session = transport()
await client.connect(session)
check(session.sessionId, 'the server gave a session')
const { tools } = await client.listTools()
check(tools.some((t) => t.name === 'add'), `the add tool is listed (${tools.map((t) => t.name)})`)
ok('connected; tools listed')
let result = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })
check(!result.isError && result.content[0]?.text === '5', `add(2, 3) (${JSON.stringify(result)})`)
console.log(`result ${result.content[0].text}`)
ok('tool called: add(2, 3) = 5')
// The SDK opens the server's stream with a GET once initialized; its head
// arrives through portero while the stream stays open.
check(await logs('GET /mcp 200', connected), 'the GET stream answered')
ok("the server's event stream (GET) passes through portero")
await session.terminateSession()
check(log.at(-1) === 'DELETE /mcp 200', `the session ended (${log.at(-1)})`)
ok('the session ended with DELETE')
await client.close()

// A stale access token: the SDK refreshes it at the token endpoint (the
// resource again) and goes on, with no second sign-in.
provider.saveTokens({ ...provider.saved.tokens, access_token: 'stale' })
const before = provider.saved.tokens.refresh_token
client = new Client({ name: 'portero-test', version: '1.0.0' })
await client.connect(transport())
check(provider.saved.tokens.access_token !== 'stale', 'a new access token')
check(provider.saved.tokens.refresh_token !== before, 'the refresh token rotated')
result = await client.callTool({ name: 'add', arguments: { a: 40, b: 2 } })
check(result.content[0]?.text === '42', `add(40, 2) (${JSON.stringify(result)})`)
ok('a stale token refreshed without signing in again')
await client.close()

if (process.env.STEP_UP) {
  console.log('waiting for a step up')
  await new Promise((resolve) => process.stdin.once('data', resolve))
  process.stdin.pause()
  // The route now asks for mcp:write too: portero answers 403
  // insufficient_scope, and the SDK asks for the larger scope. (Holding a
  // refresh token, SDK 1.32.2 refreshes instead, which cannot widen the
  // scope (RFC 6749 §6), and gives up: the step up is tried without one.)
  provider.saveTokens({ ...provider.saved.tokens, refresh_token: undefined })
  provider.consenting = true
  client = new Client({ name: 'portero-test', version: '1.0.0' })
  const before = log.length
  try {
    await client.connect(transport())
    throw new Error('connected without the larger scope')
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e
  }
  check(log.slice(before).includes('POST /mcp 403'), `portero's 403 (${log.slice(before)})`)
  const wider = provider.authorizationUrl.searchParams.get('scope')
  check(wider === 'mcp:read mcp:write', `the larger scope asked (${wider})`)
  const [asked, allowedBefore] = provider.consentPage.split('You allowed it before to:')
  check(asked.includes('Change your notes') && !asked.includes('Read your notes'), 'only what is new is asked')
  check(allowedBefore?.includes('Read your notes'), 'what was allowed is named as such')
  ok('403 insufficient_scope; the page asked only for mcp:write')
  await transport().finishAuth(provider.callback.searchParams.get('code'))
  const stepped = JSON.parse(Buffer.from(provider.saved.tokens.access_token.split('.')[1], 'base64url'))
  check(stepped.scope === 'mcp:read mcp:write', `a token with both (${stepped.scope})`)
  client = new Client({ name: 'portero-test', version: '1.0.0' })
  await client.connect(transport())
  result = await client.callTool({ name: 'add', arguments: { a: 1, b: 1 } })
  check(result.content[0]?.text === '2', `add(1, 1) (${JSON.stringify(result)})`)
  ok('stepped up: the token holds mcp:read and mcp:write, and the tool is called')
  await client.close()
}
