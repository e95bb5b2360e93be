//! An in-process OpenID provider shaped like Logto (issuer `BASE/oidc`, ES384 keys, `iss` in
//! authorization responses, `client_secret_basic`, PKCE S256), able to misbehave on demand.
//! It is for the hostile cases a real provider cannot produce; the browser tests use the real
//! `oidc-provider` engine instead.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "test-client";
/// Contains characters that must be form-urlencoded inside the Basic header (RFC 6749 §2.3.1).
pub const CLIENT_SECRET: &str = "s3cr:et%+/=";

type Tamper = Arc<dyn Fn(&mut Header, &mut Map<String, Value>) + Send + Sync>;
type Finish = Arc<dyn Fn(String) -> String + Send + Sync>;

/// A signing key of the fake provider.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
    pub public_pem: Vec<u8>,
}

impl TestKey {
    pub fn load(name: &str, kid: &str, alg: Algorithm) -> Self {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let pem = std::fs::read(format!("{dir}/{name}.pem")).expect("fixture key");
        let public_pem = std::fs::read(format!("{dir}/{name}.pub.pem")).expect("fixture public key");
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            _ => EncodingKey::from_ec_pem(&pem),
        }
        .expect("encoding key");
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("jwk");
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        if alg == Algorithm::RS256 {
            // Logto publishes RSA keys without `alg`.
            jwk.common.key_algorithm = None;
        } else {
            jwk.common.key_algorithm = Some(match alg {
                Algorithm::ES256 => KeyAlgorithm::ES256,
                _ => KeyAlgorithm::ES384,
            });
        }
        Self { kid: kid.to_owned(), alg, encoding, jwk, public_pem }
    }

    pub fn es384_a() -> Self {
        Self::load("es384-a", "key-a", Algorithm::ES384)
    }
    pub fn es384_b() -> Self {
        Self::load("es384-b", "key-b", Algorithm::ES384)
    }
    pub fn rs256() -> Self {
        Self::load("rs256", "key-rsa", Algorithm::RS256)
    }
    pub fn es256() -> Self {
        Self::load("es256", "key-p256", Algorithm::ES256)
    }
}

/// A user of the fake provider.
#[derive(Clone)]
pub struct TestUser {
    pub sub: String,
    /// Claims in the ID token (besides the protocol ones).
    pub claims: Map<String, Value>,
    /// Claims only in userinfo (e.g. `identities`).
    pub userinfo_only: Map<String, Value>,
    pub sid: Option<String>,
}

impl TestUser {
    pub fn alice() -> Self {
        Self {
            sub: "alice0000001".into(),
            claims: obj(json!({
                "name": "Alice Example", "username": "alice", "email": "alice@example.com",
                "email_verified": true, "picture": "https://avatars.example.com/alice.png",
                "roles": ["admin"], "created_at": 1_764_000_000_000_i64, "updated_at": 1_764_000_000_000_i64
            })),
            userinfo_only: Map::new(),
            sid: Some("sid-alice-1".into()),
        }
    }

    pub fn hugging_face_user() -> Self {
        Self {
            sub: "hfuser000001".into(),
            claims: obj(json!({"name": "Hugo Face", "username": null, "email": "hugo@example.com",
                "email_verified": true, "picture": null, "roles": []})),
            userinfo_only: obj(json!({"identities": {"huggingface": {"userId": "hf-42",
                "details": {"id": "hf-42", "name": "Hugo Face", "avatar": "https://cdn-avatars.huggingface.co/hugo.png",
                "rawData": {"sub": "hf-42", "preferred_username": "hugo-hf", "picture": "https://cdn-avatars.huggingface.co/hugo.png"}}}}})),
            sid: None,
        }
    }

    pub fn named(sub: &str, name: &str) -> Self {
        let mut user = Self::alice();
        user.sub = sub.into();
        user.claims.insert("name".into(), Value::String(name.into()));
        user.claims.insert("username".into(), Value::String(sub.into()));
        user.claims.insert("roles".into(), json!([]));
        user.sid = None;
        user
    }
}

pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

struct Grant {
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    scope: String,
    prompt: Option<String>,
    max_age: Option<u64>,
    /// RFC 8707 `resource` parameters of the authorization request.
    resources: Vec<String>,
    user: TestUser,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenMode {
    Normal,
    Hang,
    Status(u16),
    Html,
    Garbage,
    NoIdToken,
    OddCaseTokenType,
    NoExpiresIn,
    MacTokenType,
    /// No `token_type` at all.
    NoTokenType,
    Redirect,
    Huge,
}

/// The `auth_time` claim of ID tokens from the code grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthTime {
    /// As Logto: present (the user authenticated just now) only when `max_age` was requested.
    LikeLogto,
    /// Never present, even when `max_age` was requested.
    Omit,
    /// Always present, this many seconds from now (negative: in the past).
    Offset(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserinfoMode {
    Normal,
    OtherSub,
    Status(u16),
    NotJson,
    WrongContentType,
    Hang,
}

/// What the provider does; tests flip these switches.
#[derive(Clone)]
pub struct Behaviour {
    pub discovery_up: bool,
    pub discovery_issuer: Option<String>,
    pub advertised_algs: Vec<String>,
    pub iss_parameter_supported: bool,
    pub tamper: Option<Tamper>,
    pub finish: Option<Finish>,
    /// Sign with this key instead of the current one (e.g. an HMAC key).
    pub sign_with: Option<(Algorithm, EncodingKey, Option<String>)>,
    pub token: TokenMode,
    pub userinfo: UserinfoMode,
    pub jwks_up: bool,
    /// Refresh grants answer `invalid_grant`.
    pub refresh_invalid_grant: bool,
    /// Refreshed ID tokens carry this `sub` instead of the user's.
    pub refresh_sub: Option<String>,
    /// Refreshed ID tokens carry this `iss` / `aud` instead of the real ones.
    pub refresh_iss: Option<String>,
    pub refresh_aud: Option<String>,
    /// Refresh grants with a `resource` answer `invalid_target` even for a resource of the
    /// authorization request (one that was deleted at Logto since).
    pub refuse_resources: bool,
    /// Refresh grants take this long (widens race windows in concurrency tests).
    pub refresh_delay: Duration,
    /// Access tokens live this long.
    pub access_token_ttl: u64,
    /// Put `at_hash` in ID tokens: `Some(true)` the right one, `Some(false)` a wrong one.
    pub at_hash: Option<bool>,
    pub auth_time: AuthTime,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            discovery_up: true,
            discovery_issuer: None,
            advertised_algs: vec!["ES384".into()],
            iss_parameter_supported: true,
            tamper: None,
            finish: None,
            sign_with: None,
            token: TokenMode::Normal,
            userinfo: UserinfoMode::Normal,
            jwks_up: true,
            refresh_invalid_grant: false,
            refresh_sub: None,
            refresh_iss: None,
            refresh_aud: None,
            refuse_resources: false,
            refresh_delay: Duration::ZERO,
            access_token_ttl: 3600,
            at_hash: None,
            auth_time: AuthTime::LikeLogto,
        }
    }
}

#[derive(Default, Debug, Clone)]
pub struct Counters {
    pub discovery: usize,
    pub jwks: usize,
    pub token: usize,
    pub userinfo: usize,
    pub revoked: Vec<String>,
    pub last_token_auth: Option<String>,
    pub last_token_form: HashMap<String, String>,
    pub userinfo_auth: Vec<String>,
    /// Refresh-token grants received (each use of a refresh token).
    pub refresh_grants: usize,
    /// Refresh tokens presented after they were rotated away (reuse).
    pub refresh_reuse: usize,
    pub refresh_resources: Vec<String>,
}

#[derive(Clone)]
struct RefreshGrant {
    user: TestUser,
    nonce: Option<String>,
    scope: String,
    resources: Vec<String>,
}

struct OpState {
    refresh_tokens: HashMap<String, RefreshGrant>,
    used_refresh_tokens: std::collections::HashSet<String>,
    keys: Vec<TestKey>,
    current: usize,
    grants: HashMap<String, Grant>,
    access_tokens: HashMap<String, TestUser>,
    behaviour: Behaviour,
    counters: Counters,
}

#[derive(Clone)]
pub struct FakeOp {
    pub base: String,
    pub issuer: String,
    state: Arc<Mutex<OpState>>,
    server: actix_web::dev::ServerHandle,
}

fn random() -> String {
    let bytes: [u8; 24] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

impl FakeOp {
    pub async fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("bind")).await
    }

    pub async fn start_on(listener: TcpListener) -> Self {
        let port = listener.local_addr().expect("addr").port();
        let base = format!("http://127.0.0.1:{port}");
        let issuer = format!("{base}/oidc");
        let state = Arc::new(Mutex::new(OpState {
            refresh_tokens: HashMap::new(),
            used_refresh_tokens: Default::default(),
            keys: vec![TestKey::es384_a()],
            current: 0,
            grants: HashMap::new(),
            access_tokens: HashMap::new(),
            behaviour: Behaviour::default(),
            counters: Counters::default(),
        }));
        let data = web::Data::new(Shared { state: state.clone(), base: base.clone(), issuer: issuer.clone() });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/oidc/.well-known/openid-configuration", web::get().to(discovery))
                .route("/oidc/jwks", web::get().to(jwks))
                .route("/oidc/token", web::post().to(token))
                .route("/oidc/me", web::get().to(userinfo))
                .route("/oidc/token/revocation", web::post().to(revocation))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { base, issuer, state, server: handle }
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }

    pub fn set(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.state.lock().expect("lock").behaviour);
    }

    pub fn tamper(&self, f: impl Fn(&mut Header, &mut Map<String, Value>) + Send + Sync + 'static) {
        self.set(|b| b.tamper = Some(Arc::new(f)));
    }

    pub fn finish(&self, f: impl Fn(String) -> String + Send + Sync + 'static) {
        self.set(|b| b.finish = Some(Arc::new(f)));
    }

    pub fn counters(&self) -> Counters {
        self.state.lock().expect("lock").counters.clone()
    }

    /// Publishes `key` and signs with it from now on (Logto's rotation with no grace period
    /// keeps the previous key published).
    pub fn rotate_to(&self, key: TestKey) {
        let mut s = self.state.lock().expect("lock");
        s.keys.insert(0, key);
        s.current = 0;
        s.keys.truncate(2);
    }

    /// Replaces the published keys (and signs with the first).
    pub fn set_keys(&self, keys: Vec<TestKey>) {
        let mut s = self.state.lock().expect("lock");
        s.keys = keys;
        s.current = 0;
    }

    /// The provider's half of the front channel: approves an authorization request URL for
    /// `user` and returns the code. Checks what Logto checks.
    pub fn authorize(&self, authorization_url: &str, user: &TestUser) -> String {
        let url = url::Url::parse(authorization_url).expect("authorization URL");
        assert_eq!(url.path(), "/oidc/auth", "authorization endpoint");
        let resources: Vec<String> =
            url.query_pairs().filter(|(k, _)| k == "resource").map(|(_, v)| v.into_owned()).collect();
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
        assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
        assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
        let code = random();
        self.state.lock().expect("lock").grants.insert(
            code.clone(),
            Grant {
                redirect_uri: q["redirect_uri"].clone(),
                code_challenge: q["code_challenge"].clone(),
                nonce: q.get("nonce").cloned(),
                scope: q.get("scope").cloned().unwrap_or_default(),
                prompt: q.get("prompt").cloned(),
                max_age: q.get("max_age").map(|m| m.parse().expect("max_age is a number")),
                resources,
                user: user.clone(),
            },
        );
        code
    }

    /// Changes the user behind every outstanding refresh token (a profile or role change at
    /// the provider).
    pub fn replace_user_in_grants(&self, user: &TestUser) {
        let mut s = self.state.lock().expect("lock");
        for grant in s.refresh_tokens.values_mut() {
            grant.user = user.clone();
        }
    }

    /// A logout token as Logto sends it (`typ: logout+jwt`, 120 s), changed by `change`.
    pub fn logout_token(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
        change: impl FnOnce(&mut Header, &mut Map<String, Value>),
    ) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = obj(json!({
            "iss": self.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120, "jti": random(),
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        }));
        if let Some(sub) = sub {
            claims.insert("sub".into(), json!(sub));
        }
        if let Some(sid) = sid {
            claims.insert("sid".into(), json!(sid));
        }
        let key = current_key(&self.state);
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        header.typ = Some("logout+jwt".into());
        change(&mut header, &mut claims);
        jsonwebtoken::encode(&header, &claims, &key.encoding).expect("sign")
    }
}

/// The key the provider signs with now.
fn current_key(state: &Mutex<OpState>) -> TestKey {
    let s = state.lock().expect("lock");
    s.keys[s.current].clone()
}

struct Shared {
    state: Arc<Mutex<OpState>>,
    base: String,
    issuer: String,
}

async fn discovery(data: web::Data<Shared>) -> HttpResponse {
    let (up, issuer, algs, iss_param) = {
        let mut s = data.state.lock().expect("lock");
        s.counters.discovery += 1;
        let b = &s.behaviour;
        (b.discovery_up, b.discovery_issuer.clone(), b.advertised_algs.clone(), b.iss_parameter_supported)
    };
    if !up {
        return HttpResponse::ServiceUnavailable().body("down");
    }
    let base = &data.base;
    HttpResponse::Ok().json(json!({
        "issuer": issuer.unwrap_or_else(|| data.issuer.clone()),
        "authorization_endpoint": format!("{base}/oidc/auth"),
        "token_endpoint": format!("{base}/oidc/token"),
        "userinfo_endpoint": format!("{base}/oidc/me"),
        "jwks_uri": format!("{base}/oidc/jwks"),
        "end_session_endpoint": format!("{base}/oidc/session/end"),
        "revocation_endpoint": format!("{base}/oidc/token/revocation"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": algs,
        "authorization_response_iss_parameter_supported": iss_param,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "scopes_supported": ["openid", "offline_access", "profile", "email", "roles", "identities"],
    }))
}

async fn jwks(data: web::Data<Shared>) -> HttpResponse {
    let mut s = data.state.lock().expect("lock");
    s.counters.jwks += 1;
    if !s.behaviour.jwks_up {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let set = JwkSet { keys: s.keys.iter().map(|k| k.jwk.clone()).collect() };
    HttpResponse::Ok().content_type("application/jwk-set+json; charset=utf-8").json(set)
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Decodes `Basic base64(urlencode(id):urlencode(secret))`.
fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let decoded = STANDARD.decode(value.strip_prefix("Basic ")?).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((decode(id)?, decode(secret)?))
}

fn token_error(error: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": error, "error_description": "<b>provider text</b>"}))
}

async fn token(req: HttpRequest, body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    let params = form(&body);
    let (mode, behaviour) = {
        let mut s = data.state.lock().expect("lock");
        s.counters.token += 1;
        s.counters.last_token_auth =
            req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        s.counters.last_token_form = params.clone();
        (s.behaviour.token, s.behaviour.clone())
    };
    match mode {
        TokenMode::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return HttpResponse::Ok().finish();
        }
        TokenMode::Status(code) => {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(code).expect("status"))
                .content_type("text/html")
                .body("<html>error</html>");
        }
        TokenMode::Html => {
            return HttpResponse::Ok().content_type("text/html").body("<html>hello</html>");
        }
        TokenMode::Garbage => {
            return HttpResponse::Ok().content_type("application/json").body("{not json");
        }
        TokenMode::Redirect => {
            return HttpResponse::Found().insert_header(("location", "http://127.0.0.1:9/steal")).finish();
        }
        TokenMode::Huge => {
            return HttpResponse::Ok()
                .content_type("application/json")
                .body(format!("{{\"x\":\"{}\"}}", "a".repeat(3 << 20)));
        }
        _ => {}
    }
    if basic_credentials(&req) != Some((CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned())) {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    }
    if params.get("grant_type").map(String::as_str) == Some("refresh_token") {
        return refresh_grant(&params, &data, &behaviour).await;
    }
    if params.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return token_error("unsupported_grant_type");
    }
    let grant = {
        let mut s = data.state.lock().expect("lock");
        params.get("code").and_then(|c| s.grants.remove(c))
    };
    let Some(grant) = grant else {
        return token_error("invalid_grant");
    };
    if params.get("redirect_uri") != Some(&grant.redirect_uri) {
        return token_error("invalid_grant");
    }
    let verifier = params.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.code_challenge {
        return token_error("invalid_grant");
    }

    let now = jsonwebtoken::get_current_timestamp();
    let mut claims =
        id_token_claims(&grant.user, &data.issuer, &grant.user.sub, CLIENT_ID, grant.nonce.as_deref(), now);
    let auth_time = match behaviour.auth_time {
        AuthTime::LikeLogto => grant.max_age.map(|_| now),
        AuthTime::Omit => None,
        AuthTime::Offset(offset) => Some(now.saturating_add_signed(offset)),
    };
    if let Some(auth_time) = auth_time {
        claims.insert("auth_time".into(), json!(auth_time));
    }
    let access_token = random();
    if let Some(right) = behaviour.at_hash {
        let digest = sha2::Sha384::digest(if right { access_token.as_bytes() } else { b"another token" });
        claims.insert("at_hash".into(), json!(URL_SAFE_NO_PAD.encode(&digest[..24])));
    }
    let key = current_key(&data.state);
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = None; // Logto >= 1.42 sends no `typ`.
    if let Some(tamper) = &behaviour.tamper {
        tamper(&mut header, &mut claims);
    }
    let mut id_token = match &behaviour.sign_with {
        Some((alg, encoding, kid)) => {
            header.alg = *alg;
            header.kid.clone_from(kid);
            jsonwebtoken::encode(&header, &claims, encoding).expect("sign")
        }
        None => jsonwebtoken::encode(&header, &claims, &key.encoding).expect("sign"),
    };
    if let Some(finish) = &behaviour.finish {
        id_token = finish(id_token);
    }

    data.state.lock().expect("lock").access_tokens.insert(access_token.clone(), grant.user.clone());
    let offline = grant.scope.split(' ').any(|s| s == "offline_access")
        && grant.prompt.as_deref().is_some_and(|p| p.split(' ').any(|p| p == "consent"));
    let mut response = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": behaviour.access_token_ttl,
        "scope": grant.scope,
        "id_token": id_token,
    });
    if offline {
        let refresh_token = random();
        data.state.lock().expect("lock").refresh_tokens.insert(
            refresh_token.clone(),
            RefreshGrant {
                user: grant.user.clone(),
                nonce: grant.nonce.clone(),
                scope: grant.scope.clone(),
                resources: grant.resources.clone(),
            },
        );
        response["refresh_token"] = json!(refresh_token);
    }
    match mode {
        TokenMode::NoIdToken => {
            response.as_object_mut().expect("object").remove("id_token");
        }
        TokenMode::OddCaseTokenType => response["token_type"] = json!("bEARER"),
        TokenMode::MacTokenType => response["token_type"] = json!("mac"),
        TokenMode::NoTokenType => drop(response.as_object_mut().expect("object").remove("token_type")),
        TokenMode::NoExpiresIn => {
            response.as_object_mut().expect("object").remove("expires_in");
        }
        _ => {}
    }
    HttpResponse::Ok().json(response)
}

/// The refresh-token grant, rotating on every use like a public client at Logto; a rotated-away
/// token presented again revokes the whole grant (Logto's reuse detection).
async fn refresh_grant(params: &HashMap<String, String>, data: &Shared, behaviour: &Behaviour) -> HttpResponse {
    let presented = params.get("refresh_token").cloned().unwrap_or_default();
    let resource = params.get("resource").cloned();
    let grant = {
        let mut s = data.state.lock().expect("lock");
        s.counters.refresh_grants += 1;
        if let Some(r) = &resource {
            s.counters.refresh_resources.push(r.clone());
        }
        if s.used_refresh_tokens.contains(&presented) {
            s.counters.refresh_reuse += 1;
            s.refresh_tokens.clear();
            None
        } else {
            s.refresh_tokens.remove(&presented)
        }
    };
    if !behaviour.refresh_delay.is_zero() {
        tokio::time::sleep(behaviour.refresh_delay).await;
    }
    let Some(grant) = grant else {
        return token_error("invalid_grant");
    };
    if behaviour.refresh_invalid_grant {
        return token_error("invalid_grant");
    }
    // Like Logto: a resource token only for a resource named in the authorization request.
    if let Some(r) = &resource
        && (behaviour.refuse_resources || !grant.resources.contains(r))
    {
        return token_error("invalid_target");
    }
    let now = jsonwebtoken::get_current_timestamp();
    let claims = id_token_claims(
        &grant.user,
        behaviour.refresh_iss.as_deref().unwrap_or(&data.issuer),
        behaviour.refresh_sub.as_deref().unwrap_or(&grant.user.sub),
        behaviour.refresh_aud.as_deref().unwrap_or(CLIENT_ID),
        grant.nonce.as_deref(),
        now,
    );
    let key = current_key(&data.state);
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = None;
    let id_token = jsonwebtoken::encode(&header, &claims, &key.encoding).expect("sign");
    let access_token = random();
    let rotated = random();
    {
        let mut s = data.state.lock().expect("lock");
        s.used_refresh_tokens.insert(presented);
        s.access_tokens.insert(access_token.clone(), grant.user.clone());
        s.refresh_tokens.insert(rotated.clone(), grant.clone());
    }
    let mut response = json!({
        "access_token": access_token, "token_type": "Bearer", "expires_in": behaviour.access_token_ttl,
        "refresh_token": rotated, "id_token": id_token, "scope": grant.scope,
    });
    match behaviour.token {
        TokenMode::MacTokenType => response["token_type"] = json!("mac"),
        TokenMode::NoTokenType => drop(response.as_object_mut().expect("object").remove("token_type")),
        _ => {}
    }
    HttpResponse::Ok().json(response)
}

/// The user's claims plus what every ID token carries (valid for an hour from `now`).
fn id_token_claims(
    user: &TestUser,
    iss: &str,
    sub: &str,
    aud: &str,
    nonce: Option<&str>,
    now: u64,
) -> Map<String, Value> {
    let mut claims = user.claims.clone();
    claims.insert("iss".into(), json!(iss));
    claims.insert("sub".into(), json!(sub));
    claims.insert("aud".into(), json!(aud));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + 3600));
    if let Some(nonce) = nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    if let Some(sid) = &user.sid {
        claims.insert("sid".into(), json!(sid));
    }
    claims
}

async fn userinfo(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (mode, user) = {
        let mut s = data.state.lock().expect("lock");
        s.counters.userinfo += 1;
        s.counters.userinfo_auth.push(auth.clone());
        let user = auth.strip_prefix("Bearer ").and_then(|t| s.access_tokens.get(t).cloned());
        (s.behaviour.userinfo, user)
    };
    let Some(user) = user else {
        return HttpResponse::Unauthorized().finish();
    };
    let mut claims = user.claims.clone();
    claims.insert("sub".into(), json!(user.sub));
    for (k, v) in &user.userinfo_only {
        claims.insert(k.clone(), v.clone());
    }
    match mode {
        UserinfoMode::Normal => HttpResponse::Ok().json(claims),
        UserinfoMode::OtherSub => {
            claims.insert("sub".into(), json!(format!("{}invalid", user.sub)));
            HttpResponse::Ok().json(claims)
        }
        UserinfoMode::Status(code) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).expect("status")).finish()
        }
        UserinfoMode::NotJson => HttpResponse::Ok().content_type("application/json").body("[1,2"),
        UserinfoMode::WrongContentType => {
            HttpResponse::Ok().content_type("text/html").body(serde_json::to_string(&claims).expect("json"))
        }
        UserinfoMode::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            HttpResponse::Ok().finish()
        }
    }
}

async fn revocation(req: HttpRequest, body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    if basic_credentials(&req) != Some((CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned())) {
        return HttpResponse::Unauthorized().finish();
    }
    let params = form(&body);
    if let Some(token) = params.get("token") {
        data.state.lock().expect("lock").counters.revoked.push(token.clone());
    }
    HttpResponse::Ok().finish()
}
