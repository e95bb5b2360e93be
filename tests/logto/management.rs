//! Logto's Management API, as the tests use it to provision what each scenario needs
//! (applications, users, roles, API resources, organizations, the Hugging Face connector, the
//! sign-in experience, signing keys). Credentials are those of the machine-to-machine app that
//! `../shared/logto/bootstrap.sh` creates (or any M2M app with the "Logto Management API access"
//! role).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Where the real Logto is, from the environment (the export lines bootstrap.sh prints).
#[derive(Clone, Debug)]
pub struct LogtoEnv {
    /// `LOGTO_ENDPOINT`: Logto's public base URL (issuer = this + `/oidc`).
    pub endpoint: String,
    /// `LOGTO_MANAGEMENT_ENDPOINT` (default: the endpoint).
    pub management_endpoint: String,
    pub m2m_id: String,
    pub m2m_secret: String,
    /// `LOGTO_MANAGEMENT_RESOURCE` (OSS: `https://default.logto.app/api`).
    pub management_resource: String,
}

impl LogtoEnv {
    /// Reads the environment; the tier is never silently skipped: without it, every scenario
    /// fails with this message (scripts/test.sh does not run the tier then, and says so).
    pub fn from_env() -> Self {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let (Some(endpoint), Some(m2m_id), Some(m2m_secret)) =
            (get("LOGTO_ENDPOINT"), get("LOGTO_M2M_ID"), get("LOGTO_M2M_SECRET"))
        else {
            panic!(
                "the real-Logto tier needs LOGTO_ENDPOINT, LOGTO_M2M_ID and LOGTO_M2M_SECRET \
                 (eval \"$(../shared/logto/bootstrap.sh)\"; see README, \"Tests against real Logto\")"
            );
        };
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        Self {
            management_endpoint: get("LOGTO_MANAGEMENT_ENDPOINT")
                .map(|e| e.trim_end_matches('/').to_owned())
                .unwrap_or_else(|| endpoint.clone()),
            endpoint,
            m2m_id,
            m2m_secret,
            management_resource: get("LOGTO_MANAGEMENT_RESOURCE")
                .unwrap_or_else(|| "https://default.logto.app/api".into()),
        }
    }

    pub fn issuer(&self) -> String {
        format!("{}/oidc", self.endpoint)
    }
}

/// A Management API client with its access token cached until a minute before expiry.
pub struct Management {
    pub env: LogtoEnv,
    http: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
}

impl Management {
    pub fn new(env: LogtoEnv) -> Self {
        // Scenarios run on their own tokio runtimes, which end with them: a pooled connection
        // would belong to a runtime that is gone ("dispatch task is gone"), so none are kept.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(0)
            .build()
            .expect("http client");
        Self { env, http, token: Mutex::new(None) }
    }

    async fn token(&self) -> anyhow::Result<String> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let response: Value = self
            .http
            .post(format!("{}/oidc/token", self.env.endpoint))
            .basic_auth(&self.env.m2m_id, Some(&self.env.m2m_secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", self.env.management_resource.as_str()),
                ("scope", "all"),
            ])
            .send()
            .await?
            .json()
            .await?;
        let token = response["access_token"].as_str().with_context(|| format!("management token: {response}"))?;
        let ttl = response["expires_in"].as_u64().unwrap_or(3600).saturating_sub(60);
        *cached = Some((token.to_owned(), Instant::now() + Duration::from_secs(ttl)));
        Ok(token.to_owned())
    }

    /// One Management API call; a non-2xx answer is an error carrying Logto's body. A 401 drops
    /// the cached token and tries once more (the token is signed with Logto's OIDC keys, which a
    /// scenario rotates).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}/api{path}", self.env.management_endpoint);
        let mut attempt = 0;
        let response = loop {
            let mut request = self.http.request(method.clone(), &url).bearer_auth(self.token().await?);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.with_context(|| format!("{method} {path}"))?;
            attempt += 1;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 1 {
                *self.token.lock().await = None;
                continue;
            }
            break response;
        };
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status} {text}");
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// A Traditional web application for one test app; returns (App ID, App secret).
    pub async fn create_application(
        &self,
        name: &str,
        redirect_uri: &str,
        post_logout_redirect_uri: &str,
        backchannel_logout_uri: &str,
    ) -> anyhow::Result<(String, String)> {
        let app = self
            .post(
                "/applications",
                json!({
                    "name": name,
                    "type": "Traditional",
                    "oidcClientMetadata": {
                        "redirectUris": [redirect_uri],
                        "postLogoutRedirectUris": [post_logout_redirect_uri],
                        "backchannelLogoutUri": backchannel_logout_uri,
                        "backchannelLogoutSessionRequired": true,
                    },
                }),
            )
            .await?;
        let id = app["id"].as_str().context("application id")?.to_owned();
        let secrets = self.get(&format!("/applications/{id}/secrets")).await?;
        let secret = secrets[0]["value"].as_str().context("application secret")?.to_owned();
        Ok((id, secret))
    }

    /// A user with a username and password; returns the Logto user id.
    pub async fn create_user(&self, username: &str, password: &str, name: &str) -> anyhow::Result<String> {
        let user = self.post("/users", json!({ "username": username, "password": password, "name": name })).await?;
        Ok(user["id"].as_str().context("user id")?.to_owned())
    }

    /// A user role (with these API-resource scope ids); returns its id.
    pub async fn create_role(&self, name: &str, scope_ids: &[String]) -> anyhow::Result<String> {
        let mut body = json!({ "name": name, "description": "created by the logto-signin tests", "type": "User" });
        if !scope_ids.is_empty() {
            body["scopeIds"] = json!(scope_ids);
        }
        let role = self.post("/roles", body).await?;
        Ok(role["id"].as_str().context("role id")?.to_owned())
    }

    pub async fn assign_roles(&self, user_id: &str, role_ids: &[String]) -> anyhow::Result<()> {
        self.post(&format!("/users/{user_id}/roles"), json!({ "roleIds": role_ids })).await?;
        Ok(())
    }

    pub async fn remove_role(&self, user_id: &str, role_id: &str) -> anyhow::Result<()> {
        self.delete(&format!("/users/{user_id}/roles/{role_id}")).await?;
        Ok(())
    }

    /// An API resource with `scopes`; returns (resource id, scope ids in order).
    pub async fn create_resource(
        &self,
        name: &str,
        indicator: &str,
        access_token_ttl: u64,
        scopes: &[&str],
    ) -> anyhow::Result<(String, Vec<String>)> {
        let resource = self
            .post("/resources", json!({ "name": name, "indicator": indicator, "accessTokenTtl": access_token_ttl }))
            .await?;
        let id = resource["id"].as_str().context("resource id")?.to_owned();
        let mut scope_ids = Vec::new();
        for scope in scopes {
            let created = self.post(&format!("/resources/{id}/scopes"), json!({ "name": scope })).await?;
            scope_ids.push(created["id"].as_str().context("scope id")?.to_owned());
        }
        Ok((id, scope_ids))
    }

    /// An organization with these members; returns its id.
    pub async fn create_organization(&self, name: &str, members: &[&str]) -> anyhow::Result<String> {
        let organization = self.post("/organizations", json!({ "name": name })).await?;
        let id = organization["id"].as_str().context("organization id")?.to_owned();
        if !members.is_empty() {
            self.post(&format!("/organizations/{id}/users"), json!({ "userIds": members })).await?;
        }
        Ok(id)
    }

    pub async fn set_suspended(&self, user_id: &str, suspended: bool) -> anyhow::Result<()> {
        self.patch(&format!("/users/{user_id}/is-suspended"), json!({ "isSuspended": suspended })).await?;
        Ok(())
    }

    /// Rotates the OIDC signing keys (the new key signs at once; the old one stays published as
    /// "previous" until the next rotation drops it). Returns the published key ids.
    pub async fn rotate_signing_keys(&self) -> anyhow::Result<Vec<String>> {
        let keys = self.post("/configs/oidc/private-keys/rotate", json!({ "signingKeyAlgorithm": "EC" })).await?;
        Ok(keys.as_array().into_iter().flatten().filter_map(|k| k["id"].as_str().map(str::to_owned)).collect())
    }
}

impl Management {
    /// Logto's own Hugging Face connector (`huggingface-universal`) with this OAuth client, and
    /// Hugging Face on the sign-in experience (the tenant has one such connector: it is created
    /// once and re-configured after). Returns the connector's id (its Logto callback is
    /// `ENDPOINT/callback/<id>`).
    pub async fn configure_hugging_face(&self, client_id: &str, client_secret: &str) -> anyhow::Result<String> {
        let config = json!({ "clientId": client_id, "clientSecret": client_secret, "scope": "profile email" });
        let connectors = self.get("/connectors").await?;
        let existing =
            connectors.as_array().into_iter().flatten().find(|c| c["connectorId"] == "huggingface-universal");
        let id = match existing {
            Some(connector) => {
                let id = connector["id"].as_str().context("connector id")?.to_owned();
                self.patch(&format!("/connectors/{id}"), json!({ "config": config })).await?;
                id
            }
            None => {
                let created = self
                    .post("/connectors", json!({ "connectorId": "huggingface-universal", "config": config }))
                    .await?;
                created["id"].as_str().context("connector id")?.to_owned()
            }
        };
        let experience = self.get("/sign-in-exp").await?;
        let mut targets: Vec<Value> =
            experience["socialSignInConnectorTargets"].as_array().cloned().unwrap_or_default();
        if !targets.contains(&json!("huggingface")) {
            targets.push(json!("huggingface"));
            self.patch("/sign-in-exp", json!({ "socialSignInConnectorTargets": targets })).await?;
        }
        Ok(id)
    }
}

pub fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A name no other test (or earlier run) uses: Logto usernames are `[A-Za-z_][A-Za-z0-9_]*`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}
