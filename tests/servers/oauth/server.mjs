// oauth2-mock-server on 127.0.0.1 (port from PORT, 0 = any free one) that checks client secrets
// and user passwords, and (REQUIRE_SCOPE=1) refuses requests without a scope.
// Prints "listening <port>" once ready. Env CLIENTS / USERS: JSON objects id -> secret.
import { OAuth2Server } from 'oauth2-mock-server';

const CLIENTS = JSON.parse(process.env.CLIENTS || '{"sync-client":"sync-secret"}');
const USERS = JSON.parse(process.env.USERS || '{}');
const REQUIRE_SCOPE = process.env.REQUIRE_SCOPE === '1';
const TTL = Number(process.env.TOKEN_TTL || 3600);

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');

function clientOf(req) {
  const h = req.headers.authorization || '';
  if (h.startsWith('Basic ')) {
    const [id, s] = Buffer.from(h.slice(6), 'base64').toString().split(':');
    return { id: decodeURIComponent(id), secret: decodeURIComponent(s ?? '') };
  }
  return { id: req.body?.client_id, secret: req.body?.client_secret };
}

server.service.on('beforeTokenSigning', (token, req) => {
  const { id } = clientOf(req);
  token.payload.client_id = id;
  token.payload.aud = req.body?.resource || req.body?.scope || 'none';
  token.payload.exp = token.payload.iat + TTL;
});

server.service.on('beforeResponse', (res, req) => {
  const { id, secret } = clientOf(req);
  const body = req.body || {};
  const refuse = (status, error) => { res.statusCode = status; res.body = { error, error_description: error }; };
  if (!(id in CLIENTS) || CLIENTS[id] !== secret) return refuse(401, 'invalid_client');
  if (body.grant_type === 'password' && (!(body.username in USERS) || USERS[body.username] !== body.password)) {
    return refuse(400, 'invalid_grant');
  }
  if (REQUIRE_SCOPE && !body.scope) return refuse(400, 'invalid_scope');
  if (res.statusCode === 200) res.body.expires_in = TTL;
});

await server.start(Number(process.env.PORT || 0), '127.0.0.1');
const { port } = server.address();
server.issuer.url = `http://127.0.0.1:${port}`;
console.log(`listening ${port}`);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, async () => { await server.stop(); process.exit(0); });
