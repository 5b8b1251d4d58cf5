//! Azure token endpoint emulators (wiremock): Microsoft Entra ID's token endpoint and the two
//! managed-identity endpoints `azure_identity` 1.0 speaks, on one server, with faults.
//!
//! | endpoint | request | answer |
//! |---|---|---|
//! | Entra ID v2.0 | `POST /{tenant}/oauth2/v2.0/token`, form: `grant_type=client_credentials`, `client_id`, `scope` (`.../.default`), and `client_secret` or `client_assertion` + `client_assertion_type` (workload identity) | `{"token_type": "Bearer", "expires_in": N, "ext_expires_in": N, "access_token": ...}`; errors `{"error", "error_description": "AADSTS...", "error_codes": [...], ...}` |
//! | App Service (`IDENTITY_ENDPOINT`) | `GET /msi/token?api-version=2019-08-01&resource=...[&client_id=...]`, header `X-IDENTITY-HEADER` | `{"access_token", "expires_on": "<epoch seconds>", "resource", "token_type": "Bearer", "client_id"}` |
//! | IMDS (`169.254.169.254`) | `GET /metadata/identity/oauth2/token?api-version=...&resource=...[&client_id=...]`, header `Metadata: true` | as App Service, plus `expires_in`, `ext_expires_in`, `not_before` (strings) and an empty `refresh_token` |
//!
//! Every token is fresh (a counter and 128 random bits) and lives [`DEFAULT_LIFETIME`] unless
//! [`AzureTokenEmulator::set_lifetime`] says otherwise. Faults apply to every token endpoint,
//! before the caller's credentials are checked: a delay (changeable while running), an error
//! status (5xx) for the next N requests, an already-expired token, a body that is not JSON.
//! The SDK reaches the emulator through
//! [`EmulatorTransport`](super::azure_transport::EmulatorTransport), which keeps the real
//! `https://login.microsoftonline.com` and `http://169.254.169.254` URLs and passes the
//! original host in `x-forwarded-host`; the App Service endpoint is
//! [`AzureTokenEmulator::app_service_endpoint`], an `http://127.0.0.1` URL as on App Service.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub use super::azure::{CLIENT_ID, CLIENT_SECRET, TENANT_ID};

/// The client id of the user-assigned managed identity the managed-identity endpoints know
/// (a request without `client_id` gets the system-assigned identity).
pub const MANAGED_IDENTITY_CLIENT_ID: &str = "5e29463d-0000-4000-8000-00000000d1d1";
/// The `X-IDENTITY-HEADER` value the App Service endpoint expects (App Service puts it in
/// `IDENTITY_HEADER`).
pub const IDENTITY_HEADER: &str = "emulator-identity-header-4c1d";
/// The federated token (`AZURE_FEDERATED_TOKEN_FILE`'s content) the Entra endpoint accepts as
/// `client_assertion` for [`CLIENT_ID`].
pub const FEDERATED_TOKEN: &str = "emulator-federated-token-9e2b";
/// The App Service endpoint's path.
pub const APP_SERVICE_PATH: &str = "/msi/token";
/// The IMDS endpoint's path (on `169.254.169.254`).
pub const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
/// The only `api-version` the App Service endpoint accepts.
pub const APP_SERVICE_API_VERSION: &str = "2019-08-01";
/// How long a token lives unless [`AzureTokenEmulator::set_lifetime`] says otherwise (Entra's
/// usual `expires_in`).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3599);
/// How long ago an [`AzureTokenEmulator::expire_next`] token expired (Entra: `expires_in` is
/// minus this; managed identity: `expires_on` is this long before now).
pub const EXPIRED_BY: Duration = Duration::from_secs(60);

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Entra ID `POST /{tenant}/oauth2/v2.0/token`.
    Entra,
    /// App Service `GET /msi/token` (`IDENTITY_ENDPOINT`).
    AppService,
    /// IMDS `GET /metadata/identity/oauth2/token`.
    Imds,
}

/// One token request, as the emulator saw it (never the client secret, the assertion or the
/// identity header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The endpoint.
    pub protocol: Protocol,
    /// Entra: the tenant in the path.
    pub tenant: Option<String>,
    /// Entra: the `grant_type` form field.
    pub grant_type: Option<String>,
    /// Entra: the `scope` form field.
    pub scope: Option<String>,
    /// Managed identity: the `resource` query parameter.
    pub resource: Option<String>,
    /// Managed identity: the `api-version` query parameter.
    pub api_version: Option<String>,
    /// The `client_id` (Entra: form field; managed identity: query, user-assigned only).
    pub client_id: Option<String>,
    /// Entra: how the client authenticated (`client_secret`, `client_assertion`, or `none`).
    pub client_auth: Option<&'static str>,
    /// The host the client meant (`x-forwarded-host`, empty without it), e.g.
    /// `login.microsoftonline.com` or `169.254.169.254`.
    pub host: String,
}

impl TokenRequest {
    /// What the token is for: the Entra `scope`, or the managed identity's `resource`.
    pub fn audience(&self) -> Option<&str> {
        self.scope.as_deref().or(self.resource.as_deref())
    }
}

#[derive(Debug)]
struct State {
    lifetime: Duration,
    delay: Duration,
    /// (status, remaining)
    failures: Option<(u16, u32)>,
    expired: u32,
    malformed: u32,
    log: Vec<TokenRequest>,
    issued: Vec<(String, SystemTime)>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            lifetime: DEFAULT_LIFETIME,
            delay: Duration::ZERO,
            failures: None,
            expired: 0,
            malformed: 0,
            log: Vec::new(),
            issued: Vec::new(),
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic elsewhere in a test must not hide what the emulator recorded.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running emulator of the Entra ID token endpoint and the managed-identity endpoints.
#[derive(Debug)]
pub struct AzureTokenEmulator {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl AzureTokenEmulator {
    /// Starts an emulator on `127.0.0.1`.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        Mock::given(any())
            .respond_with(Responder {
                state: Arc::clone(&state),
                random: SystemRandom::new(),
            })
            .mount(&server)
            .await;
        Self { server, state }
    }

    /// The emulator's address, `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The App Service endpoint, for `IDENTITY_ENDPOINT`.
    pub fn app_service_endpoint(&self) -> String {
        format!("{}{APP_SERVICE_PATH}", self.server.uri())
    }

    /// How long the tokens issued from now on live.
    pub fn set_lifetime(&self, lifetime: Duration) {
        lock(&self.state).lifetime = lifetime;
    }

    /// Answers every request from now on after `delay` (`Duration::ZERO`: at once). Requests
    /// already waiting keep the delay they started with.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.state).delay = delay;
    }

    /// Answers the next `times` token requests with `status` (a 5xx, or any error status)
    /// and the endpoint's error body, then normally.
    pub fn fail_next(&self, times: u32, status: u16) {
        lock(&self.state).failures = Some((status, times));
    }

    /// Issues the next `times` tokens already expired (by [`EXPIRED_BY`]).
    pub fn expire_next(&self, times: u32) {
        lock(&self.state).expired = times;
    }

    /// Answers the next `times` token requests with 200 and a body that is not JSON (a
    /// truncated token answer: it holds a token, so that a parser error quoting it would show).
    pub fn malform_next(&self, times: u32) {
        lock(&self.state).malformed = times;
    }

    /// Removes every fault: no delay, no failures, no expired or malformed answers (the
    /// lifetime stays).
    pub fn heal(&self) {
        let mut state = lock(&self.state);
        state.delay = Duration::ZERO;
        state.failures = None;
        state.expired = 0;
        state.malformed = 0;
    }

    /// How many token requests the emulator has answered, on any token endpoint, faults and
    /// refusals included.
    pub fn requests(&self) -> usize {
        lock(&self.state).log.len()
    }

    /// Every token request, in order.
    pub fn request_log(&self) -> Vec<TokenRequest> {
        lock(&self.state).log.clone()
    }

    /// The latest token request.
    pub fn last_request(&self) -> Option<TokenRequest> {
        lock(&self.state).log.last().cloned()
    }

    /// How many tokens the emulator has issued (expired ones, and those sent in a malformed
    /// answer, included).
    pub fn issued(&self) -> usize {
        lock(&self.state).issued.len()
    }

    /// The latest token issued (possibly in a malformed answer).
    pub fn last_token(&self) -> Option<String> {
        lock(&self.state).issued.last().map(|(t, _)| t.clone())
    }

    /// When the latest token issued expires, by the emulator's clock.
    pub fn last_expiry(&self) -> Option<SystemTime> {
        lock(&self.state).issued.last().map(|(_, e)| *e)
    }
}

struct Responder {
    state: Arc<Mutex<State>>,
    random: SystemRandom,
}

/// What one request gets, decided under the lock.
enum Outcome {
    Fail(u16),
    Malformed(String),
    Refuse(ResponseTemplate),
    Issue {
        token: String,
        expires_at: SystemTime,
    },
}

fn entra_error(status: u16, error: &str, code: u32, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: 00000000-0000-0000-0000-000000000000 Correlation ID: 00000000-0000-0000-0000-000000000000 Timestamp: 2025-01-01 00:00:00Z"),
        "error_codes": [code],
        "timestamp": "2025-01-01 00:00:00Z",
        "trace_id": "00000000-0000-0000-0000-000000000000",
        "correlation_id": "00000000-0000-0000-0000-000000000000",
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}")
    }))
}

fn identity_error(status: u16, error: &str, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": error,
        "error_description": description
    }))
}

fn epoch_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

impl Responder {
    fn fresh_token(&self, protocol: Protocol, serial: usize) -> String {
        let mut bytes = [0u8; 16];
        // The system's random source does not fail on the platforms tests run on; a failure
        // would leave zeros, and the serial keeps the token unique anyway.
        let _ = self.random.fill(&mut bytes);
        let mut token = match protocol {
            Protocol::Entra => format!("emulator-entra-token-{serial}-"),
            Protocol::AppService | Protocol::Imds => format!("emulator-mi-token-{serial}-"),
        };
        for b in bytes {
            let _ = write!(token, "{b:02x}");
        }
        token
    }

    /// Logs the request, applies the faults and `check` (the caller's credentials: the
    /// refusal, if any), and issues a token when all pass.
    fn decide(
        &self,
        observed: TokenRequest,
        check: impl FnOnce() -> Option<ResponseTemplate>,
    ) -> (Outcome, Duration) {
        let protocol = observed.protocol;
        let mut state = lock(&self.state);
        state.log.push(observed);
        let delay = state.delay;
        if let Some((status, remaining)) = state.failures
            && remaining > 0
        {
            state.failures = Some((status, remaining - 1));
            return (Outcome::Fail(status), delay);
        }
        if let Some(refusal) = check() {
            return (Outcome::Refuse(refusal), delay);
        }
        let token = self.fresh_token(protocol, state.issued.len() + 1);
        let now = SystemTime::now();
        let expires_at = if state.expired > 0 {
            state.expired -= 1;
            now - EXPIRED_BY
        } else {
            now + state.lifetime
        };
        state.issued.push((token.clone(), expires_at));
        if state.malformed > 0 {
            state.malformed -= 1;
            return (Outcome::Malformed(token), delay);
        }
        (Outcome::Issue { token, expires_at }, delay)
    }

    fn entra(&self, request: &Request, tenant: &str) -> (Outcome, Duration) {
        let form: HashMap<String, String> = form_pairs(&request.body).into_iter().collect();
        let field = |name: &str| form.get(name).cloned();
        let client_auth = if form.contains_key("client_secret") {
            "client_secret"
        } else if form.contains_key("client_assertion") {
            "client_assertion"
        } else {
            "none"
        };
        let observed = TokenRequest {
            protocol: Protocol::Entra,
            tenant: Some(tenant.to_string()),
            grant_type: field("grant_type"),
            scope: field("scope"),
            resource: None,
            api_version: None,
            client_id: field("client_id"),
            client_auth: Some(client_auth),
            host: forwarded_host(request),
        };
        self.decide(observed, || {
            if tenant != TENANT_ID {
                return Some(entra_error(
                    400,
                    "invalid_request",
                    90_002,
                    &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
                ));
            }
            if field("grant_type").as_deref() != Some("client_credentials") {
                return Some(entra_error(
                    400,
                    "unsupported_grant_type",
                    70_003,
                    "The app requested an unsupported grant type.",
                ));
            }
            if field("client_id").as_deref() != Some(CLIENT_ID) {
                return Some(entra_error(
                    400,
                    "unauthorized_client",
                    700_016,
                    "Application was not found in the directory.",
                ));
            }
            let authenticated = match client_auth {
                "client_secret" => field("client_secret").as_deref() == Some(CLIENT_SECRET),
                "client_assertion" => {
                    field("client_assertion_type").as_deref()
                        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                        && field("client_assertion").as_deref() == Some(FEDERATED_TOKEN)
                }
                _ => false,
            };
            if !authenticated {
                return Some(entra_error(
                    401,
                    "invalid_client",
                    7_000_215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                ));
            }
            if !field("scope").is_some_and(|s| s.ends_with("/.default")) {
                return Some(entra_error(
                    400,
                    "invalid_scope",
                    1_002_012,
                    "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
                ));
            }
            None
        })
    }

    fn managed_identity(&self, request: &Request, protocol: Protocol) -> (Outcome, Duration) {
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let param = |name: &str| query.get(name).cloned();
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let observed = TokenRequest {
            protocol,
            tenant: None,
            grant_type: None,
            scope: None,
            resource: param("resource"),
            api_version: param("api-version"),
            client_id: param("client_id"),
            client_auth: None,
            host: forwarded_host(request),
        };
        self.decide(observed, || {
            match protocol {
                Protocol::Imds if header("metadata").as_deref() != Some("true") => {
                    return Some(identity_error(
                        400,
                        "invalid_request",
                        "Required metadata header not specified",
                    ));
                }
                Protocol::AppService if header("x-identity-header").as_deref() != Some(IDENTITY_HEADER) => {
                    return Some(identity_error(
                        401,
                        "unauthorized_client",
                        "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.",
                    ));
                }
                Protocol::AppService if param("api-version").as_deref() != Some(APP_SERVICE_API_VERSION) => {
                    return Some(identity_error(
                        400,
                        "invalid_request",
                        "api-version must be 2019-08-01.",
                    ));
                }
                _ => {}
            }
            if param("api-version").is_none() {
                return Some(identity_error(
                    400,
                    "invalid_request",
                    "Required api-version parameter not specified",
                ));
            }
            if param("resource").is_none_or(|r| r.is_empty()) {
                return Some(identity_error(
                    400,
                    "invalid_request",
                    "Required audience parameter not specified",
                ));
            }
            if param("client_id").is_some_and(|id| id != MANAGED_IDENTITY_CLIENT_ID) {
                return Some(identity_error(
                    400,
                    "invalid_request",
                    "Identity not found",
                ));
            }
            None
        })
    }

    fn answer(
        &self,
        protocol: Protocol,
        resource: Option<String>,
        client_id: Option<String>,
        outcome: Outcome,
    ) -> ResponseTemplate {
        match outcome {
            Outcome::Fail(status) => match protocol {
                Protocol::Entra => entra_error(
                    status,
                    "temporarily_unavailable",
                    50_196,
                    "The server is temporarily unavailable. Please retry.",
                ),
                Protocol::AppService | Protocol::Imds => identity_error(
                    status,
                    "service_unavailable",
                    "The managed identity endpoint is temporarily unavailable.",
                ),
            },
            Outcome::Refuse(refusal) => refusal,
            Outcome::Malformed(token) => ResponseTemplate::new(200)
                .insert_header("content-type", "application/json; charset=utf-8")
                .set_body_string(format!(
                    "{{\"token_type\":\"Bearer\",\"access_token\":\"{token}"
                )),
            Outcome::Issue { token, expires_at } => {
                let expires_on = epoch_secs(expires_at);
                let now = epoch_secs(SystemTime::now());
                let expires_in = expires_on - now;
                let client_id = client_id.unwrap_or_else(|| MANAGED_IDENTITY_CLIENT_ID.to_string());
                let body = match protocol {
                    Protocol::Entra => json!({
                        "token_type": "Bearer",
                        "expires_in": expires_in,
                        "ext_expires_in": expires_in,
                        "access_token": token
                    }),
                    Protocol::AppService => json!({
                        "access_token": token,
                        "expires_on": expires_on.to_string(),
                        "resource": resource,
                        "token_type": "Bearer",
                        "client_id": client_id
                    }),
                    Protocol::Imds => json!({
                        "access_token": token,
                        "refresh_token": "",
                        "expires_in": expires_in.to_string(),
                        "expires_on": expires_on.to_string(),
                        "ext_expires_in": expires_in.to_string(),
                        "not_before": now.to_string(),
                        "resource": resource,
                        "token_type": "Bearer",
                        "client_id": client_id
                    }),
                };
                ResponseTemplate::new(200).set_body_json(body)
            }
        }
    }
}

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
        let path = request.url.path().trim_end_matches('/').to_string();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = request.method.as_str();
        let (protocol, (outcome, delay)) = match (method, segments.as_slice()) {
            ("POST", [tenant, "oauth2", "v2.0", "token"]) => {
                (Protocol::Entra, self.entra(request, tenant))
            }
            ("GET", _) if path.eq_ignore_ascii_case(APP_SERVICE_PATH) => (
                Protocol::AppService,
                self.managed_identity(request, Protocol::AppService),
            ),
            ("GET", _) if path == IMDS_PATH => (
                Protocol::Imds,
                self.managed_identity(request, Protocol::Imds),
            ),
            _ => {
                return ResponseTemplate::new(404).set_body_json(json!({
                    "error": "not_found",
                    "error_description": format!("The emulator does not serve {method} {path}.")
                }));
            }
        };
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let answer = self.answer(
            protocol,
            query.get("resource").cloned(),
            query.get("client_id").cloned(),
            outcome,
        );
        if delay.is_zero() {
            answer
        } else {
            answer.set_delay(delay)
        }
    }
}
