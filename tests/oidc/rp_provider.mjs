// A real OpenID provider (panva's certified oidc-provider) on an ephemeral
// loopback port, for a relying party that signs browsers in: one
// confidential client (client_secret_basic) with the authorization code
// grant (PKCE S256 required) and refresh tokens, a sign-in page that takes
// any login (it becomes `sub`) and any password, consent granted without a
// page, RP-initiated logout with a confirmation page of its own, and
// Back-Channel Logout 1.0 to the client's `backchannel_logout_uri`.
//
// Env:
//   REDIRECT_URI              the client's redirect URI (required)
//   POST_LOGOUT_REDIRECT_URI  where end_session may send the browser back to
//   BACKCHANNEL_LOGOUT_URI    the client's back-channel logout URI (optional)
//   CLIENT_ID                 default portero-web
//   CLIENT_SECRET             default portero-web-secret-0123456789abcdef
//   TOKEN_ALG                 the ID and logout tokens' algorithm, default RS256
//   ACCESS_TOKEN_TTL          seconds, default 300
//   EXTRA_CLAIMS              a JSON object every account's ID token and
//                             userinfo carry besides its own claims
//
// An account's claims: `sub` = the login, `name` = the login with its
// first letter upper-cased, `email` = `<login>@example.test`
// (`email_verified` true), then EXTRA_CLAIMS.
//
// The pages, for a browser test:
//   sign-in: form#login-form, input#login, input#password, button#sign-in
//   logout:  button#logout-yes (sign out), button#logout-no (stay)
//   after a logout without a post_logout_redirect_uri: h1#signed-out
//   errors:  h1#error, pre#error-detail
//
// A test that needs a provider gone wrong posts `{"header": {...},
// "claims": {...}}` to /test/next-id-token: the next ID token the token
// endpoint issues has them merged into its JOSE header and its claims,
// and is signed again with the provider's key.
//
// Prints one line of JSON on stdout when ready: the issuer and the signing
// key, `{"issuer", "private_jwk", "private_pem"}` (PKCS#8), so that a test
// can sign logout tokens with the provider's own key. Its notices go to
// stderr, with each back-channel logout's outcome.
import crypto from 'node:crypto';
import http from 'node:http';
import { SignJWT, exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

// oidc-provider writes its notices with console.info: stdout is the JSON's.
console.info = console.error;
console.log = console.error;

const required = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const alg = process.env.TOKEN_ALG || 'RS256';
const clientId = process.env.CLIENT_ID || 'portero-web';
const clientSecret = process.env.CLIENT_SECRET || 'portero-web-secret-0123456789abcdef';
const accessTokenTtl = Number(process.env.ACCESS_TOKEN_TTL || 300);
const extraClaims = JSON.parse(process.env.EXTRA_CLAIMS || '{}');
const redirectUri = required('REDIRECT_URI');
const postLogoutRedirectUri = process.env.POST_LOGOUT_REDIRECT_URI;
const backchannelLogoutUri = process.env.BACKCHANNEL_LOGOUT_URI;

const { privateKey } = await generateKeyPair(alg, { extractable: true });
const privateJwk = { ...(await exportJWK(privateKey)), kid: `${alg.toLowerCase()}-1`, alg, use: 'sig' };
const privatePem = await exportPKCS8(privateKey);

const server = http.createServer();
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const issuer = `http://127.0.0.1:${server.address().port}`;

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body>${body}</body></html>`;

function account(login) {
  return {
    accountId: login,
    async claims() {
      return {
        sub: login,
        name: login.charAt(0).toUpperCase() + login.slice(1),
        email: `${login}@example.test`,
        email_verified: true,
        ...extraClaims,
      };
    },
  };
}

// Consent without a page: the session's grant for the client, given every
// scope and claim the request asks for.
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
  const grant = (grantId && await oidc.provider.Grant.find(grantId))
    || new oidc.provider.Grant({ accountId: oidc.session.accountId, clientId: oidc.client.clientId });
  grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
  grant.addOIDCClaims([...oidc.requestParamClaims]);
  await grant.save();
  return grant;
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: postLogoutRedirectUri ? [postLogoutRedirectUri] : [],
    id_token_signed_response_alg: alg,
    scope: 'openid profile email offline_access',
    ...(backchannelLogoutUri ? {
      backchannel_logout_uri: backchannelLogoutUri,
      backchannel_logout_session_required: true,
    } : {}),
  }],
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  claims: {
    openid: ['sub', ...Object.keys(extraClaims)],
    profile: ['name'],
    email: ['email', 'email_verified'],
  },
  // The scopes' claims in the ID token too, not only at userinfo.
  conformIdTokenClaims: false,
  findAccount: (_ctx, sub) => account(sub),
  loadExistingGrant,
  // A refresh token whether or not offline_access was asked for (without
  // it, one that ends with the sign-in session).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  pkce: { required: () => true },
  ttl: { AccessToken: accessTokenTtl },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  jwks: { keys: [privateJwk] },
  // The library refuses outgoing requests to loopback addresses (its SSRF
  // guard); the back-channel logout goes to a relying party on loopback.
  fetch: (url, options) => {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  features: {
    devInteractions: { enabled: false },
    claimsParameter: { enabled: true },
    userinfo: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = page('Sign out', `<h1 id="logout">Sign out of ${escape(ctx.host)}?</h1>${form}
<button id="logout-yes" type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Yes, sign me out</button>
<button id="logout-no" type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.body = page('Signed out', '<h1 id="signed-out">Signed out</h1>');
      },
    },
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1 id="error">${escape(out.error)}</h1>
<pre id="error-detail">${escape(out.error_description || '')}</pre>`);
  },
});

// What the next ID token is changed by, if a test asked (see the header).
let nextIdToken = null;
provider.use(async (ctx, next) => {
  await next();
  const change = nextIdToken;
  if (!change || ctx.path !== '/token' || ctx.status !== 200 || !ctx.body?.id_token) return;
  nextIdToken = null;
  const [header, claims] = ctx.body.id_token.split('.').slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()));
  ctx.body.id_token = await new SignJWT({ ...claims, ...change.claims })
    .setProtectedHeader({ ...header, ...change.header })
    .sign(privateKey);
  console.error(`the next ID token was changed: ${JSON.stringify(change)}`);
});

// Every client's ID tokens carry `sid`, with or without a back-channel URI.
provider.Client.prototype.includeSid = () => true;

provider.on('backchannel.success', (_ctx, client, accountId, sid) => {
  console.error(`backchannel logout sent to ${client.clientId}: sub=${accountId} sid=${sid}`);
});
provider.on('backchannel.error', (_ctx, err, client, accountId, sid) => {
  console.error(`backchannel logout to ${client.clientId} failed: sub=${accountId} sid=${sid}: ${err.message}`);
});
provider.on('server_error', (_ctx, err) => console.error('server error:', err));

const signInPage = (uid, login, error) => page('Sign in', `<h1>Sign in</h1>
${error ? `<p id="sign-in-error" role="alert">${escape(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${escape(uid)}/login">
<label for="login">Login</label> <input id="login" name="login" value="${escape(login)}" autofocus>
<label for="password">Password</label> <input id="password" name="password" type="password">
<button id="sign-in" type="submit">Sign in</button>
</form>`);

async function formOf(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

// The consent prompt, when asked for anyway (prompt=consent): granted.
async function consent(req, res, details) {
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  const missing = details.prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('the interaction is not this page\'s');
  if (details.prompt.name === 'consent') {
    await consent(req, res, details);
    return;
  }
  if (req.method === 'POST' && action === '/login') {
    const login = ((await formOf(req)).get('login') || '').trim();
    if (login) {
      await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(signInPage(uid, '', 'Type a login.'));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(signInPage(uid, details.params.login_hint || ''));
}

const callback = provider.callback();
server.on('request', (req, res) => {
  const { pathname } = new URL(req.url, issuer);
  if (pathname === '/test/next-id-token' && req.method === 'POST') {
    (async () => {
      let body = '';
      for await (const chunk of req) body += chunk;
      const { header = {}, claims = {} } = JSON.parse(body);
      nextIdToken = { header, claims };
      res.writeHead(204).end();
    })().catch((err) => res.writeHead(400).end(err.message));
    return;
  }
  const match = pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) {
    callback(req, res);
    return;
  }
  interaction(req, res, match[1], match[2]).catch((err) => {
    console.error('interaction failed:', err);
    res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page('Error', `<h1 id="error">interaction failed</h1><pre id="error-detail">${escape(err.message)}</pre>`));
  });
});

process.stdout.write(`${JSON.stringify({ issuer, private_jwk: privateJwk, private_pem: privatePem })}\n`);
