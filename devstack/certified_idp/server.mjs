// An OpenID Certified provider implementation (panva's oidc-provider, unmodified) on 127.0.0.1,
// for sipreg's consent tests. Configured as a deployment would be: WG2's endpoint paths (or the
// library's own with --default-routes), PKCE required, refresh tokens only for offline_access
// with prompt=consent (the library's rule, OIDC Core §11), revocation, client credentials. Its
// devInteractions pages stand in for the login and consent screens (any login, any password).
//
//   node server.mjs [--default-routes]     prints {"issuer": "http://127.0.0.1:PORT", "port": PORT}
//   POST /_admin/clients {client_id, client_secret, redirect_uris}   registers a client (test set-up)
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';
// The library's own in-memory adapter, named so the admin route can store clients in it.
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';

const WG2_ROUTES = {
  authorization: '/oauth2/auth',
  token: '/oauth2/token',
  userinfo: '/userinfo',
  revocation: '/oauth2/revoke',
  end_session: '/oauth2/sessions/logout',
  jwks: '/.well-known/jwks.json',
};
const SERVICE_SCOPES = ['call.control:answer_and_initiate', 'call.routing:write'];

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
}

function configuration(defaultRoutes) {
  return {
    ...(defaultRoutes ? {} : { routes: WG2_ROUTES }),
    adapter: MemoryAdapter,
    jwks: { keys: [signingKey()] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'offline_access', 'phone', ...SERVICE_SCOPES],
    claims: { openid: ['sub'], phone: ['phone_number', 'phone_number_verified'] },
    // The login typed on the devInteractions page is the subscriber's number.
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, phone_number: id, phone_number_verified: true };
        },
      };
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      clientCredentials: { enabled: true },
      userinfo: { enabled: true },
    },
  };
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString() || '{}');
}

const defaultRoutes = process.argv.includes('--default-routes');
const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration(defaultRoutes));
  const handle = provider.callback();
  server.on('request', async (req, res) => {
    if (req.method === 'POST' && req.url === '/_admin/clients') {
      try {
        const body = await readJson(req);
        const metadata = {
          client_id: body.client_id,
          client_secret: body.client_secret,
          redirect_uris: body.redirect_uris,
          grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
          scope: ['openid', 'offline_access', 'phone', ...SERVICE_SCOPES].join(' '),
        };
        await provider.Client.validate(metadata);
        await new MemoryAdapter('Client').upsert(metadata.client_id, metadata);
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ client_id: metadata.client_id }));
      } catch (error) {
        res.writeHead(400, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: error.error || 'invalid_client_metadata', error_description: error.error_description || String(error.message) }));
      }
      return;
    }
    handle(req, res);
  });
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
