//! GCP Secret Manager, through the official REST client (`google-cloud-secretmanager-v1`) and
//! Application Default Credentials (`google-cloud-auth`).
//!
//! # Layouts
//!
//! | configuration | secret read for key `k` | `get(k)` when it does not exist |
//! |---|---|---|
//! | `secret_prefix: P` (or neither) | `projects/{project_id}/secrets/{P}{k}/versions/{version}`, the whole payload | `None`: the lookup order moves on |
//! | `secret_name: N` | `projects/{project_id}/secrets/{N}/versions/{version}`, field `k` of the JSON object it holds | field missing: `None`; secret missing: a `Missing` error naming it |
//!
//! `version` defaults to `latest`. Secret ids hold letters, digits, `-` and `_`, at most 255.
//!
//! # Integrity
//!
//! When the response carries `dataCrc32c`, the payload's CRC32C is checked (`crc32c`); a
//! mismatch, or a payload that is not UTF-8, is a `Malformed` error.
//!
//! # Errors
//!
//! | service answer | [`SecretErrorKind`] |
//! |---|---|
//! | `NOT_FOUND` (404) | `get` returns `None` (prefix layout) / `Missing` (the JSON secret) |
//! | `PERMISSION_DENIED` (403), `UNAUTHENTICATED` (401), no token from the credentials | `AccessDenied` |
//! | `RESOURCE_EXHAUSTED` (429), after [`MAX_ATTEMPTS`] attempts | `Throttled` |
//! | `UNAVAILABLE`, other 5xx, `DEADLINE_EXCEEDED`, request timeout, connection failures | `Unavailable` |
//! | an unreadable body, a bad CRC32C, a payload that is not UTF-8, `FAILED_PRECONDITION` (a disabled version), other 4xx | `Malformed` |
//!
//! Messages name the backend, the secret version resource and the key; never a value, and
//! never the client's own error text for a response body (a JSON parser quotes what it read).
//!
//! # Timeouts and retries
//!
//! Each HTTP attempt is bounded by [`REQUEST_TIMEOUT`]. The client itself retries what its
//! default policy (AIP-194 strict, for an idempotent `GET`) calls transient: `UNAVAILABLE`, 503
//! and I/O errors, with exponential backoff (1 s initial, full jitter), at most 10 attempts
//! or 60 s, and an adaptive retry throttler that skips retries locally while most requests
//! fail. It retries neither `RESOURCE_EXHAUSTED` (429) nor timeouts: this backend retries 429,
//! at most [`MAX_ATTEMPTS`] attempts with backoff from [`INITIAL_BACKOFF`] to [`MAX_BACKOFF`].
//! One `get`, retries included, gives up after [`DEADLINE`]. [`GcpPolicy`] overrides all of
//! them (tests use milliseconds).
//!
//! # Credentials
//!
//! Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file, or the
//! metadata server). An `endpoint` that is plain `http://` (an emulator) gets anonymous
//! credentials instead: an access token is never sent in clear text.

use std::fmt;
use std::time::Duration;

use google_cloud_secretmanager_v1::Error as SdkError;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model::AccessSecretVersionResponse;

use super::{SecretError, SecretErrorKind, SecretFuture, SecretsBackend, json_field};
use crate::config::CredentialsConfig;
use crate::secret::Secret;

const BACKEND: &str = "gcp";

/// The longest one HTTP attempt may take before it counts as `Unavailable`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts at most for one secret while the service answers `RESOURCE_EXHAUSTED` (429).
pub const MAX_ATTEMPTS: u32 = 4;

/// The wait before the second attempt after a 429; doubled for each further attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(250);

/// The longest wait between two attempts after a 429.
pub const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// The longest one `get` may take, every retry (the client's and ours) included; also bounds
/// building the client (which may ask the metadata server for the universe domain).
pub const DEADLINE: Duration = Duration::from_secs(30);

pub use crate::cloud::gcp::{MAX_SECRET_ID_LEN, is_valid_secret_id};

/// Where the keys live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretLayout {
    /// One secret per key, named prefix + key.
    Prefix(String),
    /// One secret holding a JSON object with every key.
    Json(String),
}

/// How the client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcpAuth {
    /// Application Default Credentials.
    ApplicationDefault,
    /// No credentials at all (emulators).
    Anonymous,
}

/// Timeouts and retries of one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcpPolicy {
    /// Bound of one HTTP attempt ([`REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
    /// Attempts at most on `RESOURCE_EXHAUSTED` ([`MAX_ATTEMPTS`]; 1 retries nothing).
    pub max_attempts: u32,
    /// First wait after a 429 ([`INITIAL_BACKOFF`]).
    pub initial_backoff: Duration,
    /// Longest wait after a 429 ([`MAX_BACKOFF`]).
    pub max_backoff: Duration,
    /// Bound of one `get`, retries included ([`DEADLINE`]).
    pub deadline: Duration,
}

impl Default for GcpPolicy {
    fn default() -> Self {
        Self {
            request_timeout: REQUEST_TIMEOUT,
            max_attempts: MAX_ATTEMPTS,
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: MAX_BACKOFF,
            deadline: DEADLINE,
        }
    }
}

/// GCP Secret Manager.
#[derive(Clone)]
pub struct GcpBackend {
    client: SecretManagerService,
    project_id: String,
    layout: SecretLayout,
    version: String,
    endpoint: Option<String>,
    policy: GcpPolicy,
}

impl fmt::Debug for GcpBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpBackend")
            .field("project_id", &self.project_id)
            .field("layout", &self.layout)
            .field("version", &self.version)
            .field("endpoint", &self.endpoint)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`GcpBackend`] before its client is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpBackendBuilder {
    project_id: String,
    layout: SecretLayout,
    version: String,
    endpoint: Option<String>,
    auth: GcpAuth,
    policy: GcpPolicy,
}

fn config_error(kind: SecretErrorKind, message: impl Into<String>) -> SecretError {
    SecretError::new(BACKEND, kind, message)
}

/// A resource-name segment the client can send: not empty, no `/`, no whitespace.
fn is_plain_segment(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control())
}

impl GcpBackendBuilder {
    /// The secret version (default `latest`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Another Secret Manager endpoint (`https://...`, or `http://127.0.0.1:PORT` for an
    /// emulator).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// How the client authenticates (default: Application Default Credentials).
    pub fn auth(mut self, auth: GcpAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Timeouts and retries (default [`GcpPolicy::default`]).
    pub fn policy(mut self, policy: GcpPolicy) -> Self {
        self.policy = policy;
        self
    }

    fn check(&self) -> Result<(), SecretError> {
        if !is_plain_segment(&self.project_id) {
            return Err(config_error(
                SecretErrorKind::Malformed,
                format!(
                    "project_id `{}` is not a valid project id",
                    self.project_id.escape_debug()
                ),
            ));
        }
        if !is_plain_segment(&self.version) {
            return Err(config_error(
                SecretErrorKind::Malformed,
                format!(
                    "version `{}` is not a valid secret version (a number, `latest` or an alias)",
                    self.version.escape_debug()
                ),
            ));
        }
        match &self.layout {
            SecretLayout::Json(name) if !is_valid_secret_id(name) => {
                return Err(config_error(
                    SecretErrorKind::Malformed,
                    format!(
                        "secret_name `{}` is not a valid Secret Manager secret id: at most {MAX_SECRET_ID_LEN} letters, digits, - and _",
                        name.escape_debug()
                    ),
                ));
            }
            SecretLayout::Prefix(prefix)
                if !prefix.chars().all(crate::cloud::gcp::is_secret_id_char) =>
            {
                return Err(config_error(
                    SecretErrorKind::Malformed,
                    format!(
                        "secret_prefix `{}` is not a valid Secret Manager secret id prefix: ids hold letters, digits, - and _ only",
                        prefix.escape_debug()
                    ),
                ));
            }
            _ => {}
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            return Err(config_error(
                SecretErrorKind::Malformed,
                format!(
                    "endpoint `{}` is not an http(s) URL",
                    endpoint.escape_debug()
                ),
            ));
        }
        if self.policy.max_attempts == 0 {
            return Err(config_error(
                SecretErrorKind::Malformed,
                "the retry policy allows no attempt at all (max_attempts 0)",
            ));
        }
        Ok(())
    }

    /// Builds the client. Fails when the settings are invalid or the credentials cannot be
    /// loaded.
    pub async fn build(self) -> Result<GcpBackend, SecretError> {
        self.check()?;
        crate::shared::install_ring_provider();
        let mut builder =
            SecretManagerService::builder().with_attempt_timeout(self.policy.request_timeout);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
        }
        if self.auth == GcpAuth::Anonymous {
            builder = builder.with_credentials(
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
            );
        }
        let client = match tokio::time::timeout(self.policy.deadline, builder.build()).await {
            Err(_) => {
                return Err(config_error(
                    SecretErrorKind::Unavailable,
                    format!(
                        "building the Secret Manager client took longer than {:?} (resolving the credentials' universe domain)",
                        self.policy.deadline
                    ),
                ));
            }
            // The builder's error text may quote a credentials file: report its kind only.
            Ok(Err(e)) if e.is_default_credentials() => {
                return Err(config_error(
                    SecretErrorKind::AccessDenied,
                    "cannot load Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, or the metadata server)",
                ));
            }
            Ok(Err(e)) if e.is_universe_domain_mismatch() => {
                return Err(config_error(
                    SecretErrorKind::AccessDenied,
                    "the credentials belong to another universe domain than the Secret Manager endpoint",
                ));
            }
            Ok(Err(_)) => {
                return Err(config_error(
                    SecretErrorKind::Unavailable,
                    format!(
                        "cannot build the Secret Manager client for endpoint {}",
                        self.endpoint.as_deref().unwrap_or("(default)")
                    ),
                ));
            }
            Ok(Ok(client)) => client,
        };
        Ok(GcpBackend {
            client,
            project_id: self.project_id,
            layout: self.layout,
            version: self.version,
            endpoint: self.endpoint,
            policy: self.policy,
        })
    }
}

impl GcpBackend {
    /// A builder for the secrets of `project_id` laid out as `layout`, with the defaults:
    /// version `latest`, the public endpoint, Application Default Credentials,
    /// [`GcpPolicy::default`].
    pub fn builder(project_id: impl Into<String>, layout: SecretLayout) -> GcpBackendBuilder {
        GcpBackendBuilder {
            project_id: project_id.into(),
            layout,
            version: "latest".to_string(),
            endpoint: None,
            auth: GcpAuth::ApplicationDefault,
            policy: GcpPolicy::default(),
        }
    }

    /// The builder a plan's credentials block describes: `project_id` (required; the plan
    /// fills it in), `secret_name` (JSON layout, wins) or `secret_prefix` (one secret per key;
    /// neither means an empty prefix), `version`, `endpoint` (an `http://` endpoint gets
    /// anonymous credentials).
    pub fn builder_from_config(
        credentials: &CredentialsConfig,
    ) -> Result<GcpBackendBuilder, SecretError> {
        let Some(project_id) = credentials.project_id.as_deref().filter(|p| !p.is_empty()) else {
            return Err(config_error(
                SecretErrorKind::Missing,
                "credentials.source gcp needs project_id (or the catalog's project, or GOOGLE_CLOUD_PROJECT)",
            ));
        };
        let layout = match (&credentials.secret_name, &credentials.secret_prefix) {
            (Some(name), _) => SecretLayout::Json(name.clone()),
            (None, prefix) => SecretLayout::Prefix(prefix.clone().unwrap_or_default()),
        };
        let mut builder = Self::builder(project_id, layout);
        if let Some(version) = &credentials.version {
            builder = builder.version(version.clone());
        }
        if let Some(endpoint) = &credentials.endpoint {
            if endpoint.starts_with("http://") {
                builder = builder.auth(GcpAuth::Anonymous);
            }
            builder = builder.endpoint(endpoint.clone());
        }
        Ok(builder)
    }

    /// From a plan's credentials block (see [`GcpBackend::builder_from_config`]).
    pub async fn from_config(credentials: &CredentialsConfig) -> Result<Self, SecretError> {
        Self::builder_from_config(credentials)?.build().await
    }

    /// The secret and, for the JSON layout, the field that hold `key`.
    fn secret_id<'k>(&self, key: &'k str) -> (String, Option<&'k str>) {
        match &self.layout {
            SecretLayout::Prefix(prefix) => (format!("{prefix}{key}"), None),
            SecretLayout::Json(name) => (name.clone(), Some(key)),
        }
    }

    /// The secret version resource read for `key`
    /// (`projects/P/secrets/ID/versions/V`).
    pub fn resource(&self, key: &str) -> String {
        let (id, _) = self.secret_id(key);
        format!(
            "projects/{}/secrets/{id}/versions/{}",
            self.project_id, self.version
        )
    }

    async fn fetch(&self, key: &str) -> Result<Option<Secret>, SecretError> {
        let (id, field) = self.secret_id(key);
        let resource = self.resource(key);
        let fail = |kind, what: String| {
            SecretError::new(
                BACKEND,
                kind,
                format!("secret {resource} (key {key}): {what}"),
            )
        };
        if !is_valid_secret_id(&id) {
            return Err(fail(
                SecretErrorKind::Malformed,
                format!(
                    "`{}` is not a valid Secret Manager secret id: at most {MAX_SECRET_ID_LEN} letters, digits, - and _",
                    id.escape_debug()
                ),
            ));
        }
        let response =
            match tokio::time::timeout(self.policy.deadline, self.access(&resource)).await {
                Err(_) => {
                    return Err(fail(
                        SecretErrorKind::Unavailable,
                        format!(
                            "no answer within {:?}, retries included",
                            self.policy.deadline
                        ),
                    ));
                }
                Ok(Err((kind, what))) => return Err(fail(kind, what)),
                Ok(Ok(response)) => response,
            };
        let Some(response) = response else {
            return match field {
                None => Ok(None),
                Some(_) => Err(fail(
                    SecretErrorKind::Missing,
                    "the JSON secret does not exist (NOT_FOUND) or has no enabled version"
                        .to_string(),
                )),
            };
        };
        let text = payload_text(response).map_err(|what| fail(SecretErrorKind::Malformed, what))?;
        match field {
            None => Ok(Some(Secret::new(text))),
            Some(field) => json_field(BACKEND, &resource, &text, field).map_err(|e| {
                // Name the key the lookup was for when the message does not already.
                let message = e.to_string();
                let message = message
                    .strip_prefix(&format!("credentials ({BACKEND}): "))
                    .unwrap_or(&message);
                if message.contains(&format!("key {field}")) {
                    e
                } else {
                    SecretError::new(BACKEND, e.kind(), format!("{message} (key {field})"))
                }
            }),
        }
    }

    /// Reads one secret version: `None` when it does not exist; retries 429 answers.
    async fn access(
        &self,
        resource: &str,
    ) -> Result<Option<AccessSecretVersionResponse>, (SecretErrorKind, String)> {
        let mut attempt = 1;
        let mut backoff = self.policy.initial_backoff;
        loop {
            let result = self
                .client
                .access_secret_version()
                .set_name(resource)
                .send()
                .await;
            let error = match result {
                Ok(response) => return Ok(Some(response)),
                Err(error) => error,
            };
            match classify(&error, &self.policy) {
                Failure::NotFound => return Ok(None),
                Failure::Failed(SecretErrorKind::Throttled, _)
                    if attempt < self.policy.max_attempts =>
                {
                    tokio::time::sleep(crate::shared::jitter(backoff)).await;
                    backoff = (backoff * 2).min(self.policy.max_backoff);
                    attempt += 1;
                }
                Failure::Failed(kind, what) if attempt > 1 => {
                    return Err((kind, format!("{what} (after {attempt} attempts)")));
                }
                Failure::Failed(kind, what) => return Err((kind, what)),
            }
        }
    }
}

/// The payload as text, after its CRC32C check. The error never quotes the payload.
fn payload_text(response: AccessSecretVersionResponse) -> Result<String, String> {
    let Some(payload) = response.payload else {
        return Err("the response holds no payload".to_string());
    };
    if let Some(expected) = payload.data_crc32c {
        let actual = crc32c(&payload.data);
        if expected != i64::from(actual) {
            return Err(format!(
                "the payload fails its CRC32C check (the response says {expected}, the data gives {actual}): corrupted in transit"
            ));
        }
    }
    String::from_utf8(payload.data.to_vec())
        .map_err(|_| "the payload is not UTF-8 text".to_string())
}

enum Failure {
    NotFound,
    Failed(SecretErrorKind, String),
}

/// The service's own message, cleaned of control characters and cut short.
fn service_message(message: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX)
        .collect();
    if message.chars().count() > MAX {
        out.push_str("...");
    }
    out
}

fn kind_of_http(code: u16) -> SecretErrorKind {
    match code {
        401 | 403 => SecretErrorKind::AccessDenied,
        429 => SecretErrorKind::Throttled,
        408 | 500..=599 => SecretErrorKind::Unavailable,
        _ => SecretErrorKind::Malformed,
    }
}

fn describe(kind: SecretErrorKind) -> &'static str {
    match kind {
        SecretErrorKind::AccessDenied => "access denied",
        SecretErrorKind::Throttled => "throttled by the service",
        SecretErrorKind::Unavailable => "the service is unavailable",
        _ => "the service rejected the request",
    }
}

/// Sorts a client error into what the caller should do. Only status codes, the service's
/// own message for an error status, and fixed words reach the text: the client's error text
/// for an unreadable body may quote the body, which may hold the secret.
fn classify(error: &SdkError, policy: &GcpPolicy) -> Failure {
    // When the client's retries run out it wraps the last error: look at that one.
    let exhausted = error.is_exhausted();
    let mut error = error;
    while let Some(inner) =
        std::error::Error::source(error).and_then(|s| s.downcast_ref::<SdkError>())
    {
        error = inner;
    }
    let retried = if exhausted {
        " (the client's retries ran out)"
    } else {
        ""
    };
    if let Some(status) = error.status() {
        let name = status.code.name();
        let http = error
            .http_status_code()
            .map(|c| format!(", HTTP {c}"))
            .unwrap_or_default();
        let kind = match name {
            "NOT_FOUND" => return Failure::NotFound,
            "PERMISSION_DENIED" | "UNAUTHENTICATED" => SecretErrorKind::AccessDenied,
            "RESOURCE_EXHAUSTED" => SecretErrorKind::Throttled,
            "UNAVAILABLE" | "DEADLINE_EXCEEDED" | "INTERNAL" | "ABORTED" | "CANCELLED"
            | "DATA_LOSS" => SecretErrorKind::Unavailable,
            "FAILED_PRECONDITION"
            | "INVALID_ARGUMENT"
            | "OUT_OF_RANGE"
            | "UNIMPLEMENTED"
            | "ALREADY_EXISTS" => SecretErrorKind::Malformed,
            _ => error
                .http_status_code()
                .map(kind_of_http)
                .unwrap_or(SecretErrorKind::Unavailable),
        };
        let what = match name {
            "FAILED_PRECONDITION" => "the version cannot be read (disabled or destroyed?)",
            _ => describe(kind),
        };
        return Failure::Failed(
            kind,
            format!(
                "{what} ({name}{http}): {}{retried}",
                service_message(&status.message)
            ),
        );
    }
    if let Some(code) = error.http_status_code() {
        if code == 404 {
            return Failure::NotFound;
        }
        let kind = kind_of_http(code);
        return Failure::Failed(
            kind,
            format!(
                "{} (HTTP {code}, without a Google error body){retried}",
                describe(kind)
            ),
        );
    }
    let (kind, what) = if error.is_timeout() {
        (
            SecretErrorKind::Unavailable,
            format!(
                "no answer within the request timeout ({:?})",
                policy.request_timeout
            ),
        )
    } else if error.is_connect() {
        (
            SecretErrorKind::Unavailable,
            "cannot connect to the Secret Manager endpoint".to_string(),
        )
    } else if error.is_io() || error.is_transport() {
        (
            SecretErrorKind::Unavailable,
            "the connection to Secret Manager failed".to_string(),
        )
    } else if error.is_deserialization() {
        (
            SecretErrorKind::Malformed,
            "the response is not a valid Secret Manager response (unreadable JSON or base64)"
                .to_string(),
        )
    } else if error.is_authentication() {
        let transient = std::error::Error::source(error)
            .and_then(|s| s.downcast_ref::<google_cloud_auth::errors::CredentialsError>())
            .is_some_and(|e| e.is_transient());
        if transient {
            (
                SecretErrorKind::Unavailable,
                "the credentials could not get an access token (a transient failure)".to_string(),
            )
        } else {
            (
                SecretErrorKind::AccessDenied,
                "the credentials could not get an access token (Application Default Credentials)"
                    .to_string(),
            )
        }
    } else if error.is_binding() {
        (
            SecretErrorKind::Malformed,
            "not a valid secret version resource name".to_string(),
        )
    } else {
        (
            SecretErrorKind::Unavailable,
            "the request failed".to_string(),
        )
    };
    Failure::Failed(kind, format!("{what}{retried}"))
}

impl SecretsBackend for GcpBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn get<'a>(&'a self, key: &'a str) -> SecretFuture<'a> {
        Box::pin(self.fetch(key))
    }

    /// The same form as the plan's source: the version resource, `#key` for a JSON secret.
    fn locate(&self, key: &str) -> String {
        match self.secret_id(key) {
            (_, Some(field)) => format!("{}#{field}", self.resource(key)),
            (_, None) => self.resource(key),
        }
    }
}

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC32C (Castagnoli), the checksum Secret Manager sends as `dataCrc32c` (of `123456789`:
/// `0xE306_9283`, the check value of RFC 3720).
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_vectors() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    #[test]
    fn secret_ids() {
        assert!(is_valid_secret_id("ltm-postgres-POSTGRES_USER"));
        assert!(!is_valid_secret_id("ltm/postgres/username"));
        assert!(!is_valid_secret_id(""));
        assert!(!is_valid_secret_id(&"a".repeat(256)));
        assert!(is_valid_secret_id(&"a".repeat(255)));
    }
}
