//! An Azure Key Vault emulator (wiremock) speaking the REST wire format the official SDK
//! (`azure_security_keyvault_secrets`) expects, with its Entra ID token endpoint.
//!
//! - `GET /secrets/{name}[/{version}]?api-version=...`: without `Authorization: Bearer` it
//!   answers 401 with Key Vault's challenge
//!   (`WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/{tenant}",
//!   resource="https://vault.azure.net"`); with a token this emulator issued, the secret
//!   (`{"value", "id", "attributes"}`) or a `{"error": {"code", "message"}}` body (404
//!   `SecretNotFound`, 403 `Forbidden`, 429 `Throttled` with `Retry-After`, 503, ...).
//! - `POST /{tenant}/oauth2/v2.0/token` (client credentials): `{"token_type": "Bearer",
//!   "expires_in": 3599, "access_token": ...}` for [`CLIENT_ID`] / [`CLIENT_SECRET`], else
//!   Entra's `invalid_client` error.
//!
//! Faults apply to authenticated requests, as the real service checks the token first. The
//! SDK is pointed here by [`EmulatorTransport`](super::azure_transport::EmulatorTransport),
//! which keeps the real `https://NAME.vault.azure.net` URLs and passes the original host in
//! `x-forwarded-host`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::json;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The emulator's Entra tenant.
pub const TENANT_ID: &str = "8a1f0e5c-0000-4000-8000-0000000c0de5";
/// The application (client) id the token endpoint accepts.
pub const CLIENT_ID: &str = "3c6e9a4b-0000-4000-8000-00000000a11d";
/// The client secret the token endpoint accepts.
pub const CLIENT_SECRET: &str = "emulator-client-secret";
/// The vault [`KeyVaultEmulator::start`] pretends to be (secret ids name it).
pub const DEFAULT_VAULT_URL: &str = "https://conformance.vault.azure.net";
/// The `Retry-After` (seconds) of a 429.
pub const RETRY_AFTER_SECS: u64 = 1;

/// One request the emulator saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A secret request without a bearer token (answered with the 401 challenge).
    Unauthenticated {
        /// The secret name.
        name: String,
    },
    /// A token request to `/{tenant}/oauth2/v2.0/token`.
    Token {
        /// The tenant in the path.
        tenant: String,
        /// The `scope` form field.
        scope: String,
        /// The host the client meant (`x-forwarded-host`), e.g. `login.microsoftonline.com`.
        host: String,
    },
    /// A secret request with a token this emulator issued.
    Authenticated {
        /// The secret name.
        name: String,
        /// The `api-version` query parameter.
        api_version: String,
        /// The host the client meant (`x-forwarded-host`), e.g. `NAME.vault.azure.net`.
        host: String,
    },
    /// A secret request with a bearer token this emulator did not issue.
    BadToken {
        /// The secret name.
        name: String,
    },
    /// Anything else.
    Other {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
}

#[derive(Debug, Clone)]
enum Fault {
    /// Answer `status` with this error code, `remaining` more times (`None`: for ever).
    Fail {
        status: u16,
        code: String,
        remaining: Option<u32>,
    },
    /// Answer after this delay.
    Slow(Duration),
    /// Answer 200 with a body that does not fit the secret model.
    Malformed,
}

#[derive(Debug, Default)]
struct State {
    secrets: HashMap<String, String>,
    faults: HashMap<String, Fault>,
    token_fault: Option<(u16, String)>,
    issued: Vec<String>,
    log: Vec<Observed>,
}

/// A running Key Vault emulator.
#[derive(Debug)]
pub struct KeyVaultEmulator {
    server: MockServer,
    state: Arc<Mutex<State>>,
    vault_url: String,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic elsewhere in a test must not hide what the emulator recorded.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeyVaultEmulator {
    /// Starts an emulator of [`DEFAULT_VAULT_URL`].
    pub async fn start() -> Self {
        Self::start_as(DEFAULT_VAULT_URL).await
    }

    /// Starts an emulator of `vault_url` (`https://NAME.vault.azure.net`, named in secret ids).
    pub async fn start_as(vault_url: &str) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        let vault_url = vault_url.trim_end_matches('/').to_string();
        Mock::given(any())
            .respond_with(Responder {
                state: Arc::clone(&state),
                vault_url: vault_url.clone(),
            })
            .mount(&server)
            .await;
        Self {
            server,
            state,
            vault_url,
        }
    }

    /// The emulator's address, `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The vault it pretends to be.
    pub fn vault_url(&self) -> &str {
        &self.vault_url
    }

    /// Stores (or replaces) a secret.
    pub fn put(&self, name: &str, value: &str) {
        lock(&self.state)
            .secrets
            .insert(name.to_string(), value.to_string());
    }

    /// Answers every request for `name` with `status` and a Key Vault error body carrying
    /// `code` (429 adds `Retry-After`).
    pub fn fail_with(&self, name: &str, status: u16, code: &str) {
        self.fault(
            name,
            Fault::Fail {
                status,
                code: code.to_string(),
                remaining: None,
            },
        );
    }

    /// Answers the next `times` requests for `name` with `status` / `code`, then normally.
    pub fn fail_then_succeed(&self, name: &str, status: u16, code: &str, times: u32) {
        self.fault(
            name,
            Fault::Fail {
                status,
                code: code.to_string(),
                remaining: Some(times),
            },
        );
    }

    /// Answers the next `times` requests for `name` with 429 `Throttled`, then normally.
    pub fn throttle_then_succeed(&self, name: &str, times: u32) {
        self.fail_then_succeed(name, 429, "Throttled", times);
    }

    /// Answers requests for `name` only after `delay`.
    pub fn slow(&self, name: &str, delay: Duration) {
        self.fault(name, Fault::Slow(delay));
    }

    /// Answers requests for `name` with 200 and a body that is not a Key Vault secret: it
    /// holds the stored value where a parser would quote it in its error (a redaction trap).
    pub fn malformed(&self, name: &str) {
        self.fault(name, Fault::Malformed);
    }

    /// Makes the token endpoint answer `status` with Entra error `error` (`invalid_client`,
    /// `temporarily_unavailable`, ...).
    pub fn fail_token(&self, status: u16, error: &str) {
        lock(&self.state).token_fault = Some((status, error.to_string()));
    }

    /// Removes every fault (secrets stay).
    pub fn heal(&self) {
        let mut state = lock(&self.state);
        state.faults.clear();
        state.token_fault = None;
    }

    /// Every request seen, in order.
    pub fn requests(&self) -> Vec<Observed> {
        lock(&self.state).log.clone()
    }

    /// Authenticated requests for the secret `name`.
    pub fn secret_requests(&self, name: &str) -> usize {
        lock(&self.state)
            .log
            .iter()
            .filter(|o| matches!(o, Observed::Authenticated { name: n, .. } if n == name))
            .count()
    }

    /// Token requests.
    pub fn token_requests(&self) -> usize {
        lock(&self.state)
            .log
            .iter()
            .filter(|o| matches!(o, Observed::Token { .. }))
            .count()
    }

    fn fault(&self, name: &str, fault: Fault) {
        lock(&self.state).faults.insert(name.to_string(), fault);
    }
}

struct Responder {
    state: Arc<Mutex<State>>,
    vault_url: String,
}

fn error_body(code: &str, message: &str) -> serde_json::Value {
    json!({"error": {"code": code, "message": message}})
}

fn service_message(code: &str, name: &str, vault: &str) -> String {
    match code {
        "SecretNotFound" => format!(
            "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
        "Forbidden" | "ForbiddenByRbac" => format!(
            "Caller is not authorized to perform action on resource. Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action' Resource: '{vault}/secrets/{name}'"
        ),
        "Throttled" => "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached".to_string(),
        "ServiceUnavailable" => "The service is temporarily unavailable. Please retry later.".to_string(),
        "Unauthorized" => "AKV10032: Invalid issuer.".to_string(),
        other => format!("Emulated {other} error."),
    }
}

impl Responder {
    fn token(&self, request: &Request, tenant: &str) -> ResponseTemplate {
        let form: HashMap<String, String> = request
            .url
            .query_pairs()
            .into_owned()
            .chain(form_pairs(&request.body))
            .collect();
        let mut state = lock(&self.state);
        state.log.push(Observed::Token {
            tenant: tenant.to_string(),
            scope: form.get("scope").cloned().unwrap_or_default(),
            host: forwarded_host(request),
        });
        if let Some((status, error)) = state.token_fault.clone() {
            let (code, description) = match error.as_str() {
                "invalid_client" => (
                    7_000_215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                ),
                "unauthorized_client" => (700_016, "Application was not found in the directory."),
                "temporarily_unavailable" => (
                    50_196,
                    "The server is temporarily unavailable. Please retry.",
                ),
                _ => (90_000, "Emulated token endpoint failure."),
            };
            return ResponseTemplate::new(status).set_body_json(json!({
                "error": error,
                "error_description": format!("AADSTS{code}: {description} Trace ID: 00000000-0000-0000-0000-000000000000"),
                "error_codes": [code],
                "timestamp": "2025-01-01 00:00:00Z",
                "trace_id": "00000000-0000-0000-0000-000000000000",
                "correlation_id": "00000000-0000-0000-0000-000000000000"
            }));
        }
        let valid = tenant == TENANT_ID
            && form.get("grant_type").map(String::as_str) == Some("client_credentials")
            && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
        if !valid {
            return ResponseTemplate::new(401).set_body_json(json!({
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                "error_codes": [7000215]
            }));
        }
        let token = format!("emulator-access-token-{}", state.issued.len() + 1);
        state.issued.push(token.clone());
        ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token
        }))
    }

    fn secret(&self, request: &Request, name: &str) -> ResponseTemplate {
        let mut state = lock(&self.state);
        let bearer = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let challenge = ResponseTemplate::new(401)
            .insert_header(
                "WWW-Authenticate",
                format!(
                    "Bearer authorization=\"https://login.microsoftonline.com/{TENANT_ID}\", resource=\"https://vault.azure.net\""
                )
                .as_str(),
            )
            .set_body_json(error_body(
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
            ));
        let Some(token) = bearer else {
            state.log.push(Observed::Unauthenticated {
                name: name.to_string(),
            });
            return challenge;
        };
        if !state.issued.contains(&token) {
            state.log.push(Observed::BadToken {
                name: name.to_string(),
            });
            return challenge;
        }
        let api_version = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "api-version")
            .map(|(_, v)| v.into_owned());
        state.log.push(Observed::Authenticated {
            name: name.to_string(),
            api_version: api_version.clone().unwrap_or_default(),
            host: forwarded_host(request),
        });
        if api_version.is_none() {
            return ResponseTemplate::new(400).set_body_json(error_body(
                "BadParameter",
                "The request URI contains an invalid api-version parameter: missing.",
            ));
        }
        let value = state.secrets.get(name).cloned();
        let mut delay = None;
        match state.faults.get_mut(name) {
            Some(Fault::Fail {
                status,
                code,
                remaining,
            }) if remaining.is_none_or(|n| n > 0) => {
                if let Some(n) = remaining {
                    *n -= 1;
                }
                let (status, code) = (*status, code.clone());
                let mut answer = ResponseTemplate::new(status).set_body_json(error_body(
                    &code,
                    &service_message(&code, name, &self.vault_url),
                ));
                if status == 429 {
                    answer =
                        answer.insert_header("Retry-After", RETRY_AFTER_SECS.to_string().as_str());
                }
                return answer;
            }
            Some(Fault::Malformed) => {
                let value = value.unwrap_or_default();
                return ResponseTemplate::new(200).set_body_json(json!({
                    "value": value,
                    "id": format!("{}/secrets/{name}/{}", self.vault_url, VERSION),
                    "attributes": {"enabled": value, "created": "yesterday"}
                }));
            }
            Some(Fault::Slow(d)) => delay = Some(*d),
            _ => {}
        }
        let answer = match value {
            None => ResponseTemplate::new(404).set_body_json(error_body(
                "SecretNotFound",
                &service_message("SecretNotFound", name, &self.vault_url),
            )),
            Some(value) => ResponseTemplate::new(200).set_body_json(json!({
                "value": value,
                "id": format!("{}/secrets/{name}/{}", self.vault_url, VERSION),
                "attributes": {
                    "enabled": true,
                    "created": 1_735_689_600,
                    "updated": 1_735_689_600,
                    "recoveryLevel": "Recoverable+Purgeable",
                    "recoverableDays": 90
                },
                "tags": {}
            })),
        };
        match delay {
            Some(d) => answer.set_delay(d),
            None => answer,
        }
    }
}

/// The version id every emulated secret has.
const VERSION: &str = "4387e9f3d6e14c459867679a90fd0f79";

fn forwarded_host(request: &Request) -> String {
    request
        .headers
        .get("x-forwarded-host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    wiremock::http::Url::parse(&format!("http://form/?{}", String::from_utf8_lossy(body)))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path().to_string();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = request.method.as_str();
        match (method, segments.as_slice()) {
            ("GET", ["secrets", name]) | ("GET", ["secrets", name, _]) => {
                self.secret(request, name)
            }
            ("POST", [tenant, "oauth2", "v2.0", "token"]) => self.token(request, tenant),
            _ => {
                lock(&self.state).log.push(Observed::Other {
                    method: method.to_string(),
                    path,
                });
                ResponseTemplate::new(400).set_body_json(error_body(
                    "BadParameter",
                    "The emulator does not serve this request.",
                ))
            }
        }
    }
}
