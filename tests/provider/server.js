// A Logto-shaped OpenID provider for end-to-end tests, built on oidc-provider (the engine inside
// Logto) and configured the way Logto configures it (../../../shared/docs/logto.md):
// issuer BASE/oidc; /oidc/auth, /oidc/token, /oidc/me, /oidc/jwks, /oidc/session/end,
// /oidc/token/revocation; ES384 signing keys (RS256 with SIGNING_ALG=RS256); PKCE S256 (not
// required for client_secret_basic); offline_access only with prompt=consent; roles in the ID
// token, identities only from userinfo; millisecond created_at/updated_at; RFC 9207 `iss`;
// back-channel logout with `sid`; a login page with a username field; and
// `direct_sign_in=social:huggingface` signing in a user that has a Hugging Face identity.
//
// Test-only admin hooks (never part of a real provider):
//   POST /__test/users         {username, name?, email?, roles?}   adds a user
//   POST /__test/rotate-keys                                       new signing key, old kept
//   POST /__test/end-session   {username}                          ends the user's provider
//                                                                  sessions + back-channel logout
//
// Configuration (environment): CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, POST_LOGOUT_REDIRECT_URI,
// BACKCHANNEL_LOGOUT_URI, PORT (0 = any), SIGNING_ALG (ES384 | RS256).
// Prints `LISTENING <port>` on stdout once ready.

import http from 'node:http';
import { randomBytes, createHash } from 'node:crypto';

import Provider from 'oidc-provider';
import * as jose from 'jose';

const env = process.env;
const required = (name) => {
  if (!env[name]) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return env[name];
};

const CLIENT_ID = required('CLIENT_ID');
const CLIENT_SECRET = required('CLIENT_SECRET');
const REDIRECT_URI = required('REDIRECT_URI');
const POST_LOGOUT_REDIRECT_URI = required('POST_LOGOUT_REDIRECT_URI');
const BACKCHANNEL_LOGOUT_URI = env.BACKCHANNEL_LOGOUT_URI;
const SIGNING_ALG = env.SIGNING_ALG || 'ES384';
const COOKIE_KEYS = [randomBytes(32).toString('hex')];

// ---- users -----------------------------------------------------------------------------------

const users = new Map(); // username -> account
const accountsById = new Map(); // sub -> account
const nowMs = Date.now();

function logtoId() {
  // Logto user ids: 12 lowercase alphanumerics.
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(12), (b) => alphabet[b % alphabet.length]).join('');
}

function addUser({ username, name = null, email = null, roles = [], picture = null, identities = {} }) {
  const account = {
    sub: logtoId(),
    username,
    name,
    email,
    picture,
    roles,
    identities,
    created_at: nowMs,
    updated_at: nowMs,
  };
  users.set(username, account);
  accountsById.set(account.sub, account);
  return account;
}

addUser({ username: 'alice', name: 'Alice Liddell', email: 'alice@example.com', roles: ['admin'], picture: 'https://avatars.example.com/alice.png' });
addUser({ username: 'bob', name: 'Bob Builder', email: 'bob@example.com' });
// Signed in through Logto's Hugging Face connector: a Logto user without a username whose
// `identities.huggingface` holds the connector's SocialUserInfo (rawData = HF userinfo).
const HUGGING_FACE_USER = addUser({
  username: null,
  name: 'Hugo Face',
  email: 'hugo@example.com',
  picture: 'https://cdn-avatars.huggingface.co/v1/hugo.png',
  identities: {
    huggingface: {
      userId: 'hf-6650a1',
      details: {
        id: 'hf-6650a1',
        name: 'Hugo Face',
        email: 'hugo@example.com',
        avatar: 'https://cdn-avatars.huggingface.co/v1/hugo.png',
        rawData: {
          sub: 'hf-6650a1',
          name: 'Hugo Face',
          preferred_username: 'hugo-hf',
          picture: 'https://cdn-avatars.huggingface.co/v1/hugo.png',
          email: 'hugo@example.com',
          email_verified: true,
        },
      },
    },
  },
});
users.delete(null);

function claimsOf(account, use) {
  const claims = {
    sub: account.sub,
    name: account.name,
    username: account.username,
    preferred_username: account.username ?? undefined,
    picture: account.picture,
    created_at: account.created_at,
    updated_at: account.updated_at,
    email: account.email,
    email_verified: Boolean(account.email),
    roles: account.roles,
  };
  // Logto keeps `identities` out of ID tokens by default (userinfo only).
  if (use !== 'id_token') claims.identities = account.identities;
  return claims;
}

// ---- keys ------------------------------------------------------------------------------------

async function signingKey(alg) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const jwk = await jose.exportJWK(privateKey);
  const publicPart = alg.startsWith('ES') ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { e: jwk.e, kty: jwk.kty, n: jwk.n };
  // Logto's kid: base64url(SHA-256(JSON of the public parameters)).
  jwk.kid = createHash('sha256').update(JSON.stringify(publicPart)).digest('base64url');
  jwk.use = 'sig';
  if (alg.startsWith('ES')) jwk.alg = alg; // Logto publishes RSA keys without `alg`.
  return jwk;
}

let keys = [await signingKey(SIGNING_ALG)];

// ---- the provider ----------------------------------------------------------------------------

const sessionsByAccount = new Map(); // sub -> Map(sessionUid -> sid)
let provider;
let issuer;

function buildProvider() {
  const client = {
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    post_logout_redirect_uris: [POST_LOGOUT_REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: SIGNING_ALG,
  };
  if (BACKCHANNEL_LOGOUT_URI) {
    client.backchannel_logout_uri = BACKCHANNEL_LOGOUT_URI;
    client.backchannel_logout_session_required = true;
  }
  const p = new Provider(issuer, {
    clients: [client],
    jwks: { keys },
    cookies: { keys: COOKIE_KEYS },
    findAccount: async (ctx, id) => {
      const account = accountsById.get(id);
      if (!account) return undefined;
      return { accountId: id, claims: async (use) => claimsOf(account, use) };
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'roles', 'identities'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'username', 'preferred_username', 'picture', 'created_at', 'updated_at'],
      email: ['email', 'email_verified'],
      roles: ['roles'],
      identities: ['identities'],
    },
    conformIdTokenClaims: false,
    enabledJWA: { idTokenSigningAlgValues: [SIGNING_ALG] },
    extraParams: ['direct_sign_in', 'first_screen', 'identifier', 'interaction_mode', 'organization_id'],
    pkce: { required: (ctx, c) => c.clientAuthMethod !== 'client_secret_basic' },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: false },
      userinfo: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        // Like Logto's logout.html: submit the confirmation form at once, with logout=yes.
        logoutSource: async (ctx, form) => {
          ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Signing out</title></head><body>
            ${form}<button type="submit" form="op.logoutForm" value="yes" name="logout" id="logout">Sign out</button>
            <script>document.getElementById('logout').click();</script></body></html>`;
        },
      },
    },
    ttl: { AccessToken: 3600, IdToken: 3600, Session: 14 * 24 * 3600, Grant: 180 * 24 * 3600 },
    // Logto >= 1.42 with OIDC_PROVIDER_SSRF_PROTECTION_DISABLED=true: back-channel logout may
    // reach an app on a loopback or private address.
    fetch: (url, options) => {
      delete options.dispatcher;
      return globalThis.fetch(url, options);
    },
  });
  p.on('authorization.success', (ctx) => {
    const session = ctx.oidc.session;
    if (!session?.accountId) return;
    if (!sessionsByAccount.has(session.accountId)) sessionsByAccount.set(session.accountId, new Map());
    sessionsByAccount.get(session.accountId).set(session.uid, session.sidFor(CLIENT_ID));
  });
  p.on('backchannel.error', (ctx, error) => console.error('back-channel logout failed:', error.message));
  p.on('server_error', (ctx, error) => console.error('server error:', error));
  return p;
}

// ---- pages -----------------------------------------------------------------------------------

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, error) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign in to Logto (test)</title></head><body>
    <h1>Sign in</h1>${error ? `<p id="error">${escapeHtml(error)}</p>` : ''}
    <form method="post" action="/interaction/${uid}/login">
      <label>Username <input id="username" name="username" autocomplete="username" autofocus></label>
      <button type="submit" id="submit">Continue</button>
    </form></body></html>`;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

async function finishConsent(req, res, details) {
  // Logto auto-consents first-party applications.
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'interaction mismatch');
  if (req.method === 'GET' && details.prompt.name === 'login') {
    if (details.params.direct_sign_in === 'social:huggingface') {
      // As if Hugging Face had answered Logto's connector.
      return provider.interactionFinished(req, res, { login: { accountId: HUGGING_FACE_USER.sub } }, { mergeWithLastSubmission: false });
    }
    return send(res, 200, loginPage(uid));
  }
  if (req.method === 'GET' && details.prompt.name === 'consent') return finishConsent(req, res, details);
  if (req.method === 'POST' && action === 'login') {
    const form = new URLSearchParams(await readBody(req));
    const account = users.get(form.get('username') ?? '');
    if (!account) return send(res, 200, loginPage(uid, 'Unknown username'));
    return provider.interactionFinished(req, res, { login: { accountId: account.sub } }, { mergeWithLastSubmission: false });
  }
  return send(res, 400, 'unexpected interaction step');
}

async function testHook(req, res, name) {
  const body = req.method === 'POST' ? JSON.parse((await readBody(req)) || '{}') : {};
  if (name === 'users') {
    const account = addUser(body);
    return send(res, 200, JSON.stringify({ sub: account.sub }), 'application/json');
  }
  if (name === 'rotate-keys') {
    // Logto's rotation without grace period: new key current, old one kept as previous.
    keys = [await signingKey(SIGNING_ALG), keys[0]];
    provider = buildProvider();
    return send(res, 200, JSON.stringify({ kids: keys.map((k) => k.kid) }), 'application/json');
  }
  if (name === 'end-session') {
    const account = users.get(body.username);
    if (!account) return send(res, 404, '{}', 'application/json');
    const sessions = sessionsByAccount.get(account.sub) ?? new Map();
    const client = await provider.Client.find(CLIENT_ID);
    let ended = 0;
    for (const [uid, sid] of sessions) {
      const session = await provider.Session.findByUid(uid);
      if (session) await session.destroy();
      if (client.backchannelLogoutUri) await client.backchannelLogout(account.sub, sid);
      ended += 1;
    }
    sessionsByAccount.delete(account.sub);
    return send(res, 200, JSON.stringify({ ended }), 'application/json');
  }
  if (name === 'accounts') {
    return send(res, 200, JSON.stringify(Object.fromEntries([...users].map(([u, a]) => [u, a.sub]))), 'application/json');
  }
  return send(res, 404, '{}', 'application/json');
}

const server = http.createServer(async (req, res) => {
  try {
    const { pathname } = new URL(req.url, 'http://localhost');
    if (pathname === '/oidc' || pathname.startsWith('/oidc/')) {
      // Mount at /oidc the way Express does (oidc-provider reads originalUrl).
      req.originalUrl = req.url;
      req.url = req.url.slice('/oidc'.length) || '/';
      return provider.callback()(req, res);
    }
    const step = pathname.match(/^\/interaction\/([\w-]+)(?:\/(login))?$/);
    if (step) return await interaction(req, res, step[1], step[2]);
    const hook = pathname.match(/^\/__test\/([\w-]+)$/);
    if (hook) return await testHook(req, res, hook[1]);
    return send(res, 404, 'not found');
  } catch (error) {
    console.error(error);
    if (!res.headersSent) send(res, 500, String(error.message ?? error));
  }
});

server.listen(Number(env.PORT || 0), '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}/oidc`;
  provider = buildProvider();
  console.log(`LISTENING ${port}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
