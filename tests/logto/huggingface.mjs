// A stand-in for huggingface.co's OAuth endpoints, as Logto's Hugging Face connector calls them
// (../shared/logto/README.md): the browser's authorization page (a sign-in and consent screen),
// the token endpoint (client_secret_basic) and userinfo. HTTPS with a certificate from the test
// suite's own CA; huggingface.co is mapped to loopback for Logto (/etc/hosts) and Chromium
// (--host-resolver-rules). No dependencies beyond Node itself.
//
// env: HF_CERT, HF_KEY (PEM files), HF_CLIENT_ID, HF_CLIENT_SECRET, HF_REDIRECT_URI (the one
// registered at "Hugging Face" for Logto's connector), HF_PORT (443), HF_HOST (127.0.0.1).
// Prints `LISTENING <port>` when ready.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const env = (name, fallback) => process.env[name] ?? fallback ?? (() => { throw new Error(`${name} is required`); })();
const clientId = env('HF_CLIENT_ID');
const clientSecret = env('HF_CLIENT_SECRET');
const redirectUri = env('HF_REDIRECT_URI');
const codes = new Map(); // code -> { username, redirectUri, expires }
const tokens = new Map(); // access token -> username

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const hfId = (username) => createHash('sha256').update(username).digest('hex').slice(0, 24);
const profile = (username) => ({
  sub: hfId(username),
  name: `HF ${username}`,
  preferred_username: username,
  profile: `https://huggingface.co/${username}`,
  picture: `https://huggingface.co/avatars/${hfId(username)}.svg`,
  email: `${username}@hf.example`,
  email_verified: true,
  isPro: false,
  orgs: [],
});

const send = (res, status, body, headers = {}) => {
  res.writeHead(status, { 'cache-control': 'no-store', ...headers });
  res.end(body);
};
const json = (res, status, body) => send(res, status, JSON.stringify(body), { 'content-type': 'application/json' });
const readBody = (req) =>
  new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; if (data.length > 65536) req.destroy(); });
    req.on('end', () => resolve(new URLSearchParams(data)));
    req.on('error', reject);
  });

const authorizePage = (q) => `<!doctype html><html><head><title>Hugging Face – Authorize</title></head><body>
<h1>Sign in to Hugging Face</h1>
<p id="client">An application (${escape(q.get('client_id'))}) asks for: <span id="scope">${escape(q.get('scope') ?? '')}</span></p>
<form method="post" action="/oauth/authorize">
  <input type="hidden" name="state" value="${escape(q.get('state') ?? '')}">
  <input type="hidden" name="redirect_uri" value="${escape(q.get('redirect_uri'))}">
  <label>Username <input id="hf-username" name="username" autocomplete="off"></label>
  <button id="hf-allow" name="decision" value="allow">Authorize</button>
  <button id="hf-deny" name="decision" value="deny">Cancel</button>
</form></body></html>`;

const server = createServer({ cert: readFileSync(env('HF_CERT')), key: readFileSync(env('HF_KEY')) }, async (req, res) => {
  try {
    const url = new URL(req.url, 'https://huggingface.co');
    if (req.method === 'GET' && url.pathname === '/oauth/authorize') {
      const q = url.searchParams;
      if (q.get('client_id') !== clientId || q.get('redirect_uri') !== redirectUri || q.get('response_type') !== 'code') {
        return send(res, 400, 'invalid authorization request', { 'content-type': 'text/plain' });
      }
      return send(res, 200, authorizePage(q), { 'content-type': 'text/html; charset=utf-8' });
    }
    if (req.method === 'POST' && url.pathname === '/oauth/authorize') {
      const form = await readBody(req);
      const back = new URL(form.get('redirect_uri'));
      if (back.href !== new URL(redirectUri).href) return send(res, 400, 'bad redirect_uri');
      if (form.get('decision') === 'allow' && /^[A-Za-z0-9_-]{1,64}$/.test(form.get('username') ?? '')) {
        const code = randomBytes(16).toString('hex');
        codes.set(code, { username: form.get('username'), redirectUri: back.href, expires: Date.now() + 60_000 });
        back.searchParams.set('code', code);
      } else {
        back.searchParams.set('error', 'access_denied');
        back.searchParams.set('error_description', 'The user denied the request');
      }
      back.searchParams.set('state', form.get('state') ?? '');
      return send(res, 302, '', { location: back.href });
    }
    if (req.method === 'POST' && url.pathname === '/oauth/token') {
      const [scheme, value] = (req.headers.authorization ?? '').split(' ');
      const [id, secret] = scheme === 'Basic' ? Buffer.from(value ?? '', 'base64').toString().split(':') : [];
      if (decodeURIComponent(id ?? '') !== clientId || decodeURIComponent(secret ?? '') !== clientSecret) {
        return json(res, 401, { error: 'invalid_client' });
      }
      const form = await readBody(req);
      const grant = codes.get(form.get('code'));
      codes.delete(form.get('code'));
      if (form.get('grant_type') !== 'authorization_code' || !grant || grant.expires < Date.now() ||
          new URL(form.get('redirect_uri') ?? 'x:').href !== grant.redirectUri) {
        return json(res, 400, { error: 'invalid_grant' });
      }
      const accessToken = `hf_oauth_${randomBytes(16).toString('hex')}`;
      tokens.set(accessToken, grant.username);
      return json(res, 200, { access_token: accessToken, token_type: 'bearer', expires_in: 28800, scope: 'openid profile email' });
    }
    if (req.method === 'GET' && url.pathname === '/oauth/userinfo') {
      const [scheme, token] = (req.headers.authorization ?? '').split(' ');
      const username = /^bearer$/i.test(scheme ?? '') ? tokens.get(token) : undefined;
      if (!username) return json(res, 401, { error: 'invalid_token' });
      return json(res, 200, profile(username));
    }
    if (req.method === 'GET' && url.pathname.startsWith('/avatars/')) {
      return send(res, 200, '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="#ffd21e"/></svg>',
        { 'content-type': 'image/svg+xml' });
    }
    return send(res, 404, 'not found');
  } catch (error) {
    console.error(error);
    return send(res, 500, 'stand-in error');
  }
});

server.listen(Number(env('HF_PORT', '443')), env('HF_HOST', '127.0.0.1'), () => {
  console.log(`LISTENING ${server.address().port}`);
});
