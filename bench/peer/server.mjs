// The peer for custos's side-by-side HTTP benchmark (bench/run.sh --peer):
// node-oidc-provider, one process, in-memory adapter (the default), with one
// confidential client that uses client_credentials + client_secret_basic and
// gets ES256-signed JWT access tokens (RFC 9068) through resource
// indicators (RFC 8707) -- the same work custos does per token request.
// A second client, PEER_CLIENT_ID + "-dpop", is the same with
// dpop_bound_access_tokens (DPoP is enabled, without nonces; proofs' jtis
// are checked for replay in the in-memory adapter).
//
// Environment:
//   PORT                 listen port on 127.0.0.1 (default 3000)
//   PEER_CLIENT_ID       client_id (default "bench"; the DPoP-bound one adds "-dpop")
//   PEER_CLIENT_SECRET   client_secret (required, >= 32 characters)
//
// Start with NODE_ENV=production (as a deployment would run it).
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 3000);
const clientId = process.env.PEER_CLIENT_ID || 'bench';
const clientSecret = process.env.PEER_CLIENT_SECRET || '';
if (clientSecret.length < 32) {
  console.error('set PEER_CLIENT_SECRET (at least 32 characters)');
  process.exit(2);
}

const issuer = `http://127.0.0.1:${port}`;
// The audience of the issued tokens, as custos's default audience is its issuer.
const resource = 'https://api.bench.test';

// Signing keys made at start, like custos's first key. ES256 signs access
// tokens; an RS256 key is present because OpenID Connect requires one for
// ID tokens (none are issued here).
const jwk = (type, options) =>
  generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' });
const ecKey = { ...jwk('ec', { namedCurve: 'P-256' }), alg: 'ES256', use: 'sig', kid: 'es256-1' };
const rsaKey = { ...jwk('rsa', { modulusLength: 2048 }), alg: 'RS256', use: 'sig', kid: 'rs256-1' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'read write',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    // The same client bound to DPoP (RFC 9449 section 5.2) for
    // bench/run.sh --scenario dpop: a token request without a proof is
    // refused, and every access token carries cnf.jkt.
    {
      client_id: `${clientId}-dpop`,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'read write',
      token_endpoint_auth_method: 'client_secret_basic',
      dpop_bound_access_tokens: true,
    },
  ],
  scopes: ['read', 'write'],
  jwks: { keys: [ecKey, rsaKey] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    dPoP: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read write',
        audience: resource,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.error(`peer listening on ${issuer} (oidc-provider, node ${process.version})`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
