// A real OpenID provider (panva's certified oidc-provider) on an ephemeral
// loopback port: client-credentials grant, access tokens for one resource
// (JWTs, or opaque ones with ACCESS_TOKEN_FORMAT=opaque), with the claims
// of EXTRA_CLAIMS added, and an introspection endpoint (RFC 7662) that
// the `portero-gateway` client may ask. Prints the issuer URL on its
// first line of output.
import http from 'node:http';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const alg = process.env.TOKEN_ALG || 'RS256';
const resource = process.env.RESOURCE || 'https://api.example.test';
const accessTokenFormat = process.env.ACCESS_TOKEN_FORMAT || 'jwt';

async function signingKey(alg, kid) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}

const server = http.createServer();
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'orders-service',
    client_secret: 'orders-service-secret-0123456789',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
    // The client's own default (RS256) must be a key the provider holds.
    id_token_signed_response_alg: alg,
    scope: 'orders:read orders:write',
  }, {
    // The gateway, asking about tokens (client_secret_basic).
    client_id: 'portero-gateway',
    client_secret: 'portero-introspects-0123456789',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: alg,
  }],
  scopes: ['orders:read', 'orders:write'],
  // Claims an identity provider adds to its access tokens (roles, groups,
  // namespaced claims), as JSON in EXTRA_CLAIMS.
  extraTokenClaims: () => JSON.parse(process.env.EXTRA_CLAIMS || '{}'),
  jwks: { keys: [await signingKey(alg, `${alg.toLowerCase()}-1`)] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'orders:read orders:write',
        audience: resource,
        accessTokenFormat,
        accessTokenTTL: 300,
        jwt: { sign: { alg } },
      }),
    },
  },
});
server.on('request', provider.callback());
console.log(issuer);
