// A client of the provider (provider.mjs) that asks for a DPoP-bound
// access token (RFC 9449): the client-credentials grant with a DPoP proof
// of a key made here. Prints the token response as JSON.
// ISSUER, CLIENT_ID, CLIENT_SECRET, SCOPE from the environment.
import { generateKeyPair, exportJWK, SignJWT } from 'jose';
import { randomUUID } from 'node:crypto';

const { ISSUER, CLIENT_ID, CLIENT_SECRET, SCOPE } = process.env;
const tokenEndpoint = `${ISSUER}/token`;
const { publicKey, privateKey } = await generateKeyPair('ES256');
const proof = await new SignJWT({ htm: 'POST', htu: tokenEndpoint, jti: randomUUID() })
  .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: await exportJWK(publicKey) })
  .setIssuedAt()
  .sign(privateKey);
const response = await fetch(tokenEndpoint, {
  method: 'POST',
  headers: { DPoP: proof, 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    scope: SCOPE,
  }),
});
console.log(JSON.stringify({ status: response.status, body: await response.json() }));
