//! Settings from the environment (and `.env` through dotenvy in `main`).
//!
//! Every variable is read in one place; a bad value becomes a [`ConfigError`] that names the
//! variable, so start-up can stop with one readable line.

use std::num::NonZeroU32;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub const DEFAULT_SCOPES: &str = "openid profile email offline_access roles identities";
const MIN_SESSION_SECRET_BYTES: usize = 64;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Public base URL of Logto, as the browser reaches it (issuer = this + `/oidc`).
    pub logto_endpoint: Url,
    /// Base URL for server-to-server calls to Logto, when it differs from the public one.
    pub logto_internal_endpoint: Option<Url>,
    /// Plain-http Logto endpoints beyond localhost (a private network such as Docker's).
    pub logto_allow_http: bool,
    pub logto_app_id: String,
    pub logto_app_secret: SecretString,
    pub logto_scopes: Vec<String>,
    /// Logto API resources (RFC 8707 indicators) requested at sign-in, with their scopes; the
    /// only resources `/api/access-token?resource=` mints tokens for.
    pub logto_resources: Vec<ApiResource>,
    /// Public base URL of this app; the redirect URI is `APP_BASE_URL/callback`.
    pub app_base_url: Url,
    pub host: String,
    pub port: u16,
    pub database_url: SecretString,
    /// A direct Postgres connection for LISTEN (the session cache's invalidations) when
    /// `DATABASE_URL` goes through a transaction-mode pooler such as PgBouncer.
    pub database_listen_url: Option<SecretString>,
    pub session_secret: SecretString,
    pub session_idle_timeout: Duration,
    pub session_max_lifetime: Duration,
    /// Minimum time between two JWKS fetches triggered by an unknown `kid`.
    pub jwks_refetch_cooldown: Duration,
    /// A fetched JWKS is trusted this long; then it is fetched again and keys Logto no longer
    /// publishes are dropped.
    pub jwks_max_age: Duration,
    /// Users whose Logto `roles` claim contains this role are admins.
    pub admin_role: String,
    /// Logto user ids (`sub`) that are admins regardless of roles (bootstrap).
    pub admin_subjects: Vec<String>,
    /// A session is checked against Logto again (refresh grant or userinfo) when it was last
    /// checked longer ago than this: before an admin request, and in the background after use.
    pub session_revalidate_after: Duration,
    /// Admin actions need a sign-in (`auth_time`) at most this old; older ones step up with
    /// `max_age`.
    pub admin_max_auth_age: Duration,
    /// Send `Server-Timing: app;dur=…` on every response (for benchmarks).
    pub server_timing: bool,
    /// Keep loaded sessions in memory, invalidated by Postgres LISTEN/NOTIFY.
    pub session_cache: bool,
    /// At most this many sessions, and this many users, are cached (each).
    pub session_cache_entries: u64,
    /// Sign-in starts and callbacks allowed per client IP per minute.
    pub sign_in_rate_limit: NonZeroU32,
    /// Back-channel logout requests allowed per client IP per minute.
    pub backchannel_rate_limit: NonZeroU32,
    /// `/api/access-token` requests allowed per signed-in session per minute.
    pub access_token_rate_limit: NonZeroU32,
    /// How many reverse proxies of the deployment append to `X-Forwarded-For` (0: use the peer
    /// address). `TRUSTED_PROXY_HOPS`, or `TRUST_FORWARDED_FOR=true` for one.
    pub trusted_proxy_hops: usize,
}

/// One Logto API resource: its indicator and the resource scopes to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResource {
    pub indicator: String,
    pub scopes: Vec<String>,
}

/// Logto's reserved resource for organization tokens; requested with the organizations scope,
/// as Logto's own SDKs do.
pub const ORGANIZATIONS_RESOURCE: &str = "urn:logto:resource:organizations";
const ORGANIZATIONS_SCOPE: &str = "urn:logto:scope:organizations";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self { var, problem: problem.into() }
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or_else(|| ConfigError::new(name, "is required but not set"));

        let logto_endpoint = parse_base_url("LOGTO_ENDPOINT", &required("LOGTO_ENDPOINT")?)?;
        let logto_internal_endpoint =
            get("LOGTO_INTERNAL_ENDPOINT").map(|v| parse_base_url("LOGTO_INTERNAL_ENDPOINT", &v)).transpose()?;
        let logto_allow_http = parse_bool("LOGTO_ALLOW_HTTP", get("LOGTO_ALLOW_HTTP"), false)?;
        for (var, url) in
            [("LOGTO_ENDPOINT", Some(&logto_endpoint)), ("LOGTO_INTERNAL_ENDPOINT", logto_internal_endpoint.as_ref())]
        {
            if let Some(url) = url
                && !(url.scheme() == "https" || is_loopback(url) || logto_allow_http)
            {
                return Err(ConfigError::new(
                    var,
                    "must be an https:// URL (plain http is accepted for localhost, or with LOGTO_ALLOW_HTTP=true on a private network)",
                ));
            }
        }
        let logto_app_id = required("LOGTO_APP_ID")?;
        let logto_app_secret = SecretString::from(required("LOGTO_APP_SECRET")?);
        let logto_scopes = parse_scopes(&get("LOGTO_SCOPES").unwrap_or(DEFAULT_SCOPES.into()))?;
        let logto_resources = parse_resources(get("LOGTO_RESOURCES").as_deref().unwrap_or(""))?;
        let app_base_url =
            parse_base_url("APP_BASE_URL", &get("APP_BASE_URL").unwrap_or("http://localhost:3000".into()))?;
        let host = get("HOST").unwrap_or("127.0.0.1".into());
        let port = match get("PORT") {
            None => 3000,
            Some(v) => v
                .parse::<u16>()
                .map_err(|_| ConfigError::new("PORT", format!("`{v}` is not a port number (0-65535)")))?,
        };
        let database_url = required("DATABASE_URL")?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(ConfigError::new("DATABASE_URL", "must start with postgres:// or postgresql://"));
        }
        let database_listen_url = get("DATABASE_LISTEN_URL");
        if let Some(url) = &database_listen_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new("DATABASE_LISTEN_URL", "must start with postgres:// or postgresql://"));
        }
        let session_secret = required("SESSION_SECRET").map_err(|_| {
            ConfigError::new(
                "SESSION_SECRET",
                "is required: generate one with `logto-signin generate-secret` (at least 64 bytes)",
            )
        })?;
        if session_secret.len() < MIN_SESSION_SECRET_BYTES {
            return Err(ConfigError::new(
                "SESSION_SECRET",
                format!(
                    "is {} bytes; it must be at least {MIN_SESSION_SECRET_BYTES} (generate one with `logto-signin generate-secret`)",
                    session_secret.len()
                ),
            ));
        }
        let session_idle_timeout = match get("SESSION_IDLE_TIMEOUT") {
            None => Duration::from_secs(7 * 86_400),
            Some(v) => parse_duration("SESSION_IDLE_TIMEOUT", &v)?,
        };
        let session_max_lifetime = match get("SESSION_MAX_LIFETIME") {
            None => Duration::from_secs(30 * 86_400),
            Some(v) => parse_duration("SESSION_MAX_LIFETIME", &v)?,
        };
        let jwks_refetch_cooldown = match get("JWKS_REFETCH_COOLDOWN") {
            None => Duration::from_secs(30),
            Some(v) => parse_duration("JWKS_REFETCH_COOLDOWN", &v)?,
        };
        let jwks_max_age = match get("JWKS_MAX_AGE") {
            None => Duration::from_secs(600),
            Some(v) => parse_duration("JWKS_MAX_AGE", &v)?,
        };
        let admin_role = get("ADMIN_ROLE").unwrap_or("admin".into());
        let admin_subjects: Vec<String> = get("ADMIN_SUBJECTS")
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        if let Some(bad) = admin_subjects.iter().find(|s| s.len() > 255 || s.chars().any(char::is_whitespace)) {
            return Err(ConfigError::new("ADMIN_SUBJECTS", format!("`{bad}` is not a Logto user id")));
        }
        let session_revalidate_after = match get("SESSION_REVALIDATE_AFTER") {
            None => Duration::from_secs(300),
            Some(v) => parse_duration("SESSION_REVALIDATE_AFTER", &v)?,
        };
        let admin_max_auth_age = match get("ADMIN_MAX_AUTH_AGE") {
            None => Duration::from_secs(30 * 60),
            Some(v) => parse_duration("ADMIN_MAX_AUTH_AGE", &v)?,
        };
        let server_timing = parse_bool("SERVER_TIMING", get("SERVER_TIMING"), false)?;
        let session_cache = parse_bool("SESSION_CACHE", get("SESSION_CACHE"), true)?;
        let session_cache_entries = match get("SESSION_CACHE_ENTRIES") {
            None => 100_000,
            Some(v) => v.parse::<u64>().ok().filter(|n| (1..=100_000_000).contains(n)).ok_or_else(|| {
                ConfigError::new("SESSION_CACHE_ENTRIES", format!("`{v}` is not a number of entries (1-100000000)"))
            })?,
        };
        let sign_in_rate_limit = parse_rate("SIGN_IN_RATE_LIMIT", get("SIGN_IN_RATE_LIMIT"), 30)?;
        let backchannel_rate_limit = parse_rate("BACKCHANNEL_RATE_LIMIT", get("BACKCHANNEL_RATE_LIMIT"), 600)?;
        let access_token_rate_limit = parse_rate("ACCESS_TOKEN_RATE_LIMIT", get("ACCESS_TOKEN_RATE_LIMIT"), 60)?;
        let trust_forwarded_for = parse_bool("TRUST_FORWARDED_FOR", get("TRUST_FORWARDED_FOR"), false)?;
        let trusted_proxy_hops = match get("TRUSTED_PROXY_HOPS") {
            None => usize::from(trust_forwarded_for),
            Some(v) => v.parse::<usize>().ok().filter(|h| *h <= 10).ok_or_else(|| {
                ConfigError::new("TRUSTED_PROXY_HOPS", format!("`{v}` is not a number of proxies (0-10)"))
            })?,
        };
        if session_idle_timeout > session_max_lifetime {
            return Err(ConfigError::new("SESSION_IDLE_TIMEOUT", "must not be longer than SESSION_MAX_LIFETIME"));
        }

        Ok(Self {
            logto_endpoint,
            logto_internal_endpoint,
            logto_allow_http,
            logto_app_id,
            logto_app_secret,
            logto_scopes,
            logto_resources,
            app_base_url,
            host,
            port,
            database_url: SecretString::from(database_url),
            database_listen_url: database_listen_url.map(SecretString::from),
            session_secret: SecretString::from(session_secret),
            session_idle_timeout,
            session_max_lifetime,
            jwks_refetch_cooldown,
            jwks_max_age,
            admin_role,
            admin_subjects,
            session_revalidate_after,
            admin_max_auth_age,
            server_timing,
            session_cache,
            session_cache_entries,
            sign_in_rate_limit,
            backchannel_rate_limit,
            access_token_rate_limit,
            trusted_proxy_hops,
        })
    }

    /// The issuer Logto must present, exactly: `${LOGTO_ENDPOINT}/oidc`.
    pub fn issuer(&self) -> String {
        format!("{}/oidc", self.logto_endpoint.as_str().trim_end_matches('/'))
    }

    /// Where discovery is fetched from (through the internal endpoint when set).
    pub fn discovery_url(&self) -> String {
        let base = self.logto_internal_endpoint.as_ref().unwrap_or(&self.logto_endpoint);
        format!("{}/oidc/.well-known/openid-configuration", base.as_str().trim_end_matches('/'))
    }

    pub fn redirect_uri(&self) -> String {
        self.app_url("/callback")
    }

    pub fn post_logout_redirect_uri(&self) -> String {
        self.app_url("/")
    }

    /// An absolute URL of this app for a path that starts with `/`.
    pub fn app_url(&self, path: &str) -> String {
        format!("{}{path}", self.app_base_url.as_str().trim_end_matches('/'))
    }

    pub fn uses_https(&self) -> bool {
        self.app_base_url.scheme() == "https"
    }

    /// Every scope of the authorization request: `LOGTO_SCOPES`, then the resources' scopes.
    pub fn requested_scopes(&self) -> Vec<&str> {
        let mut scopes: Vec<&str> = self.logto_scopes.iter().map(String::as_str).collect();
        for scope in self.logto_resources.iter().flat_map(|r| &r.scopes) {
            if !scopes.contains(&scope.as_str()) {
                scopes.push(scope);
            }
        }
        scopes
    }

    /// The `resource` parameters of the authorization request: the configured API resources,
    /// and Logto's organizations resource when organization tokens are asked for.
    pub fn requested_resources(&self) -> Vec<&str> {
        let mut resources: Vec<&str> = self.logto_resources.iter().map(|r| r.indicator.as_str()).collect();
        if self.logto_scopes.iter().any(|s| s == ORGANIZATIONS_SCOPE) {
            resources.push(ORGANIZATIONS_RESOURCE);
        }
        resources
    }

    /// Whether `/api/access-token?resource=` may ask Logto for this resource.
    pub fn is_configured_resource(&self, indicator: &str) -> bool {
        self.logto_resources.iter().any(|r| r.indicator == indicator)
    }

    pub fn wants_refresh_token(&self) -> bool {
        self.logto_scopes.iter().any(|s| s == "offline_access")
    }

    pub fn session_secret_bytes(&self) -> &[u8] {
        self.session_secret.expose_secret().as_bytes()
    }
}

fn parse_bool(var: &'static str, value: Option<String>, default: bool) -> Result<bool, ConfigError> {
    match value.as_deref() {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(ConfigError::new(var, format!("`{other}` is not true or false"))),
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`: traffic that never leaves the machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse_rate(var: &'static str, value: Option<String>, default: u32) -> Result<NonZeroU32, ConfigError> {
    let Some(value) = value else {
        return Ok(NonZeroU32::new(default).unwrap_or(NonZeroU32::MIN));
    };
    value
        .parse::<NonZeroU32>()
        .map_err(|_| ConfigError::new(var, format!("`{value}` is not a positive number of requests per minute")))
}

fn parse_base_url(var: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::new(var, format!("`{value}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(var, "must be an http:// or https:// URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(var, "must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(var, "must not contain credentials"));
    }
    Ok(url)
}

fn parse_scopes(value: &str) -> Result<Vec<String>, ConfigError> {
    let scopes: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    if !scopes.iter().any(|s| s == "openid") {
        return Err(ConfigError::new("LOGTO_SCOPES", "must include `openid`"));
    }
    if let Some(bad) = scopes.iter().find(|s| !s.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')) {
        return Err(ConfigError::new("LOGTO_SCOPES", format!("`{bad}` is not a valid scope")));
    }
    Ok(scopes)
}

/// `LOGTO_RESOURCES`: comma-separated entries, each an absolute URI (the resource indicator)
/// followed by that resource's scopes, separated by spaces:
/// `https://api.example.com read:items write:items, https://billing.example.com`.
fn parse_resources(value: &str) -> Result<Vec<ApiResource>, ConfigError> {
    let mut resources: Vec<ApiResource> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut words = entry.split_whitespace();
        let indicator = words.next().unwrap_or_default();
        let bad = |problem: String| ConfigError::new("LOGTO_RESOURCES", problem);
        let url = Url::parse(indicator).map_err(|_| bad(format!("`{indicator}` is not an absolute URI")))?;
        if url.fragment().is_some() {
            return Err(bad(format!("`{indicator}` must not have a fragment (RFC 8707)")));
        }
        if indicator.len() > 512 || resources.iter().any(|r| r.indicator == indicator) {
            return Err(bad(format!("`{indicator}` is too long or listed twice")));
        }
        let scopes: Vec<String> = words.map(str::to_owned).collect();
        if let Some(s) = scopes.iter().find(|s| !s.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')) {
            return Err(bad(format!("`{s}` is not a valid scope")));
        }
        resources.push(ApiResource { indicator: indicator.to_owned(), scopes });
    }
    Ok(resources)
}

/// Parses `90`, `90s`, `15m`, `12h` or `7d` into a duration of at least one second.
pub fn parse_duration(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let bad = || ConfigError::new(var, format!("`{value}` is not a duration (e.g. 3600, 90s, 15m, 12h, 7d)"));
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => value.split_at(i),
        None => (value, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(factor).filter(|s| *s > 0 && *s <= 10 * 365 * 86_400).ok_or_else(bad)?;
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn base() -> HashMap<&'static str, String> {
        HashMap::from([
            ("LOGTO_ENDPOINT", "http://localhost:3001".to_owned()),
            ("LOGTO_APP_ID", "app".to_owned()),
            ("LOGTO_APP_SECRET", "secret".to_owned()),
            ("DATABASE_URL", "postgres://postgres@127.0.0.1/app".to_owned()),
            ("SESSION_SECRET", "x".repeat(64)),
        ])
    }

    fn load(env: &HashMap<&'static str, String>) -> Result<Settings, ConfigError> {
        Settings::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn api_resources_are_requested_with_their_scopes() {
        let mut env = base();
        env.insert("LOGTO_SCOPES", "openid offline_access urn:logto:scope:organizations".into());
        env.insert(
            "LOGTO_RESOURCES",
            " https://api.example.com read:items write:items , https://b.example.com/ ,".into(),
        );
        let s = load(&env).unwrap();
        assert_eq!(
            s.logto_resources,
            vec![
                ApiResource {
                    indicator: "https://api.example.com".into(),
                    scopes: vec!["read:items".into(), "write:items".into()]
                },
                ApiResource { indicator: "https://b.example.com/".into(), scopes: vec![] },
            ]
        );
        assert_eq!(
            s.requested_scopes(),
            ["openid", "offline_access", "urn:logto:scope:organizations", "read:items", "write:items"]
        );
        assert_eq!(
            s.requested_resources(),
            ["https://api.example.com", "https://b.example.com/", ORGANIZATIONS_RESOURCE]
        );
        assert!(s.is_configured_resource("https://b.example.com/"));
        assert!(!s.is_configured_resource("https://b.example.com"));
        for bad in
            ["not-a-uri", "https://a.example#frag", "https://a.example, https://a.example", "https://a.example x\\y"]
        {
            env.insert("LOGTO_RESOURCES", bad.into());
            assert_eq!(load(&env).unwrap_err().var, "LOGTO_RESOURCES", "{bad}");
        }
        env.remove("LOGTO_RESOURCES");
        assert!(load(&env).unwrap().logto_resources.is_empty());
    }

    /// DISC-02: Logto is reached over https, except on this machine or where explicitly allowed.
    #[test]
    fn plain_http_logto_is_refused_beyond_localhost() {
        let with = |pairs: &[(&'static str, &str)]| {
            let mut env = base();
            for (k, v) in pairs {
                env.insert(k, (*v).to_owned());
            }
            load(&env)
        };
        let err = with(&[("LOGTO_ENDPOINT", "http://auth.example.com")]).unwrap_err();
        assert_eq!(err.var, "LOGTO_ENDPOINT");
        assert!(err.problem.contains("https"), "{err}");
        let err = with(&[("LOGTO_INTERNAL_ENDPOINT", "http://logto:3001")]).unwrap_err();
        assert_eq!(err.var, "LOGTO_INTERNAL_ENDPOINT");
        for ok in ["https://auth.example.com", "http://localhost:3001", "http://127.0.0.1:3001", "http://[::1]:3001"] {
            assert!(with(&[("LOGTO_ENDPOINT", ok)]).is_ok(), "{ok}");
        }
        let s =
            with(&[("LOGTO_INTERNAL_ENDPOINT", "http://logto:3001"), ("LOGTO_ALLOW_HTTP", "true")]).expect("allowed");
        assert!(s.logto_allow_http);
    }

    #[test]
    fn defaults_apply() {
        let s = load(&base()).expect("valid");
        assert_eq!(s.issuer(), "http://localhost:3001/oidc");
        assert_eq!(s.redirect_uri(), "http://localhost:3000/callback");
        assert_eq!(s.post_logout_redirect_uri(), "http://localhost:3000/");
        assert_eq!(s.port, 3000);
        assert_eq!(s.host, "127.0.0.1");
        assert_eq!(s.logto_scopes.join(" "), DEFAULT_SCOPES);
        assert_eq!(s.session_idle_timeout, Duration::from_secs(7 * 86_400));
        assert_eq!(s.session_max_lifetime, Duration::from_secs(30 * 86_400));
        assert!(!s.uses_https());
    }

    #[test]
    fn trailing_slash_on_endpoint_does_not_change_issuer() {
        let mut env = base();
        env.insert("LOGTO_ENDPOINT", "https://auth.example.com/".into());
        env.insert("LOGTO_INTERNAL_ENDPOINT", "http://logto:3001".into());
        env.insert("LOGTO_ALLOW_HTTP", "true".into());
        let s = load(&env).expect("valid");
        assert_eq!(s.issuer(), "https://auth.example.com/oidc");
        assert_eq!(s.discovery_url(), "http://logto:3001/oidc/.well-known/openid-configuration");
    }

    #[test]
    fn short_or_missing_session_secret_stops_start_up() {
        let mut env = base();
        env.insert("SESSION_SECRET", "short".into());
        assert_eq!(load(&env).unwrap_err().var, "SESSION_SECRET");
        env.remove("SESSION_SECRET");
        assert_eq!(load(&env).unwrap_err().var, "SESSION_SECRET");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PORT", "eighty"),
            ("PORT", "70000"),
            ("LOGTO_ENDPOINT", "not a url"),
            ("LOGTO_ENDPOINT", "ftp://x"),
            ("APP_BASE_URL", "http://x/?a=b"),
            ("LOGTO_SCOPES", "profile email"),
            ("SESSION_IDLE_TIMEOUT", "7 days"),
            ("SESSION_MAX_LIFETIME", "0"),
            ("ADMIN_SUBJECTS", "a b"),
            ("SERVER_TIMING", "maybe"),
            ("SESSION_CACHE", "yes"),
            ("DATABASE_URL", "mysql://x"),
        ] {
            let mut env = base();
            env.insert(var, value.into());
            let err = load(&env).expect_err(value);
            assert_eq!(err.var, var, "{value}: {err}");
        }
    }

    #[test]
    fn missing_required_variables_are_named() {
        for var in ["LOGTO_ENDPOINT", "LOGTO_APP_ID", "LOGTO_APP_SECRET", "DATABASE_URL"] {
            let mut env = base();
            env.remove(var);
            assert_eq!(load(&env).unwrap_err().var, var);
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("X", "90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("X", "15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("X", "2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("X", "7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_duration("X", "-1").is_err());
        assert!(parse_duration("X", "1w").is_err());
        assert!(parse_duration("X", "99999999999999999999d").is_err());
    }

    #[test]
    fn idle_longer_than_lifetime_is_refused() {
        let mut env = base();
        env.insert("SESSION_IDLE_TIMEOUT", "31d".into());
        assert_eq!(load(&env).unwrap_err().var, "SESSION_IDLE_TIMEOUT");
    }
}
