//! Microsoft Entra ID tokens for Azure Database for PostgreSQL (Flexible Server).
//!
//! The password is an Entra access token for [`OSSRDBMS_SCOPE`], from an `azure_identity`
//! credential chosen by the environment exactly as the Key Vault backend chooses it
//! (`CredentialChoice`, in `cloud/azure/identity.rs`):
//!
//! | when | credential | request |
//! |---|---|---|
//! | `AZURE_FEDERATED_TOKEN_FILE` is set | workload identity (AKS) | `POST {authority}/{AZURE_TENANT_ID}/oauth2/v2.0/token` with the file's token as `client_assertion` |
//! | `AZURE_CLIENT_SECRET` is set | client secret | the same endpoint, `grant_type=client_credentials`, `client_secret` |
//! | otherwise | managed identity (user-assigned when `AZURE_CLIENT_ID` is set) | App Service or IMDS, below |
//!
//! `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_FEDERATED_TOKEN_FILE`
//! and `AZURE_AUTHORITY_HOST` (another cloud's `https://` login host; default
//! `https://login.microsoftonline.com`) are read from the [`Environment`] the provider is
//! given, never behind its back: the SDK is handed every value explicitly.
//!
//! # Managed identity
//!
//! `azure_identity` 1.0 picks the managed-identity endpoint by itself, from the **process**
//! environment (there is no option to pass these in):
//!
//! - `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` (App Service, Container Apps, Functions):
//!   `GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=...` with the header
//!   `X-IDENTITY-HEADER: $IDENTITY_HEADER`;
//! - none of the variables below (virtual machines, scale sets, AKS node identity): IMDS,
//!   `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2019-08-01&resource=...`
//!   with `Metadata: true`, retried by the SDK's own policy (404, 410, 429, 5xx; 6 retries
//!   from 1.34 s, which [`AzureTimeouts`] cannot change; [`AzureTimeouts::total`] still bounds
//!   the fetch);
//! - `IDENTITY_ENDPOINT` with `IMDS_ENDPOINT` (Azure Arc), with `IDENTITY_SERVER_THUMBPRINT`
//!   (Service Fabric), `MSI_ENDPOINT` (Cloud Shell, Azure ML): not supported by the SDK, a
//!   [`TokenErrorKind::Config`] error.
//!
//! The resource sent is the scope without `/.default`
//! (`https://ossrdbms-aad.database.windows.net`).
//!
//! # Caching
//!
//! Every `azure_identity` credential keeps its tokens in a private cache and hands the same
//! token back until 5 minutes before it expires; `TokenRequestOptions` has no way around it.
//! So [`EntraTokenProvider`] builds a new credential for every [`CredentialProvider::fetch`]
//! (cheap: no I/O but reading the federated token file) and every fetch makes one real token
//! request (plus the SDK's retries): [`crate::iam::cache::CachedProvider`] alone decides when
//! to fetch. The HTTP client (and its connection pool) is shared by the fetches.
//!
//! # Timeouts
//!
//! [`AzureTimeouts`] (the Key Vault backend's, [`AzureTimeouts::default`]): each HTTP attempt
//! is bounded by `request` (connecting by `connect`); the SDK resends 408, 429, 500, 502, 503,
//! 504 and transport failures `max_retries` times with exponential back-off; a whole fetch,
//! retries included, never takes longer than `total` (60 s by default).
//!
//! # Errors
//!
//! The kind is decided by what happened on the wire (every request goes through a probe that
//! records the last answer), not by the SDK's error text:
//!
//! | what happened | [`TokenErrorKind`] |
//! |---|---|
//! | missing or invalid settings, an unsupported managed-identity host, nothing was sent | `Config` |
//! | the last answer was 4xx (400 `invalid_client`, 401, 403, identity not assigned, ...) but 404, 408, 429 | `Denied` |
//! | the last answer was 404 (IMDS), 408, 429 or 5xx after the retries; timeouts; connection failures | `Unavailable` |
//! | a 200 whose body is not a token; a token that has already expired | `Invalid` |
//!
//! Messages name the credential and the endpoint's status and Entra error code, and quote the
//! service's description of an error answer (never a success body, which holds the token).
//! No message holds the client secret, the federated token, `IDENTITY_HEADER` or a token.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind as AzureErrorKind;
use azure_core::http::{AsyncRawResponse, ClientOptions, HttpClient, Request, Transport, Url};

use super::{CredentialProvider, Token, TokenError, TokenErrorKind, TokenFuture, humantime_utc};
use crate::cloud::azure::identity::{CredentialChoice, Identity};
use crate::cloud::azure::sdk::{AzureTimeouts, reqwest_client, safe_sdk_text, sdk_chain, shorten};
use crate::env::Environment;
use crate::plan::{ConnectPlan, IamKind, Source};
use crate::secret::Secret;

/// The scope of Azure Database for PostgreSQL (and MySQL) tokens, in the public cloud.
pub const OSSRDBMS_SCOPE: &str = "https://ossrdbms-aad.database.windows.net/.default";

/// The provider's name, as the plan writes the password source.
pub const PROVIDER: &str = "iam:azure";

/// The public cloud's authority host, used unless `AZURE_AUTHORITY_HOST` names another.
pub const PUBLIC_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// Entra ID tokens for Azure Database for PostgreSQL; see the module documentation.
/// `Debug` shows the key, the credential and the timeouts, never a secret.
pub struct EntraTokenProvider {
    key: String,
    identity: Identity,
    authority_host: String,
    http: Arc<dyn HttpClient>,
    timeouts: AzureTimeouts,
}

impl fmt::Debug for EntraTokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("EntraTokenProvider");
        s.field("key", &self.key)
            .field("credential", &self.identity.name());
        match self.identity.choice() {
            CredentialChoice::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => {
                s.field("tenant_id", tenant_id)
                    .field("client_id", client_id)
                    .field("token_file", token_file);
            }
            CredentialChoice::ClientSecret {
                tenant_id,
                client_id,
            } => {
                s.field("tenant_id", tenant_id)
                    .field("client_id", client_id);
            }
            CredentialChoice::ManagedIdentity { client_id } => {
                s.field("client_id", client_id);
            }
        }
        s.field("authority_host", &self.authority_host)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

fn config_error(message: impl Into<String>) -> TokenError {
    TokenError::new(PROVIDER, TokenErrorKind::Config, message)
}

impl EntraTokenProvider {
    /// The provider for `plan` (its password source must be `iam:azure`), with the credential
    /// `env` selects (see the module documentation), the production HTTP client (rustls with
    /// ring) and [`AzureTimeouts::default`]. Settings are checked now: a missing tenant, an
    /// invalid authority host or an unreadable federated token file is a `Config` error here,
    /// not at the first fetch.
    pub fn from_plan(plan: &ConnectPlan, env: Arc<dyn Environment>) -> Result<Self, TokenError> {
        let timeouts = AzureTimeouts::default();
        let http = Arc::new(http_client(&timeouts)?);
        Self::with_http_client(plan, env, http, timeouts)
    }

    /// As [`EntraTokenProvider::from_plan`], sending every request through `http` (an
    /// `azure_core` [`HttpClient`], e.g. a `reqwest::Client`) with `timeouts`.
    pub fn with_http_client(
        plan: &ConnectPlan,
        env: Arc<dyn Environment>,
        http: Arc<dyn HttpClient>,
        timeouts: AzureTimeouts,
    ) -> Result<Self, TokenError> {
        crate::shared::install_ring_provider();
        if plan.password_source != Source::Iam(IamKind::Azure) {
            return Err(config_error(format!(
                "the plan's password source is {}, not {PROVIDER} (iam_auth: true with provider azure)",
                plan.password_source
            )));
        }
        let host = plan
            .hosts
            .first()
            .map(|h| h.host.clone())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| config_error("the plan names no host"))?;
        let env: &dyn Environment = env.as_ref();
        let var = |name: &str| env.var(name).filter(|v| !v.is_empty());
        let identity = Identity::from_env(env).map_err(|e| config_error(e.message()))?;
        let authority_host = authority_host(var("AZURE_AUTHORITY_HOST"))?;
        let provider = Self {
            key: format!("azure:{host}:{}", plan.user.as_deref().unwrap_or_default()),
            identity,
            authority_host,
            http,
            timeouts,
        };
        // Build one credential now so that bad settings fail here.
        provider.credential(provider.transport(&Probe::new(Arc::clone(&provider.http))))?;
        Ok(provider)
    }

    /// The `azure_identity` credential in use: `ClientSecretCredential`,
    /// `WorkloadIdentityCredential` or `ManagedIdentityCredential`.
    pub fn credential_name(&self) -> &'static str {
        self.identity.name()
    }

    /// The timeouts and retries.
    pub fn timeouts(&self) -> &AzureTimeouts {
        &self.timeouts
    }

    fn transport(&self, probe: &Probe) -> Transport {
        Transport::new(Arc::new(probe.clone()))
    }

    fn client_options(&self, transport: Transport) -> ClientOptions {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = self.authority_host.clone();
        ClientOptions {
            // Always set, so that the SDK never reads AZURE_AUTHORITY_HOST itself.
            cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
            ..self.timeouts.client_options(&transport)
        }
    }

    /// A new credential (with an empty token cache) whose requests go through `transport`.
    fn credential(&self, transport: Transport) -> Result<Arc<dyn TokenCredential>, TokenError> {
        self.identity
            .credential(self.client_options(transport))
            .map_err(|e| config_error(e.message()))
    }

    async fn fetch_token(&self) -> Result<Token, TokenError> {
        let probe = Probe::new(Arc::clone(&self.http));
        let credential = self.credential(self.transport(&probe))?;
        let name = self.identity.name();
        let fetched = tokio::time::timeout(
            self.timeouts.total,
            credential.get_token(&[OSSRDBMS_SCOPE], None),
        )
        .await;
        let seen = probe.seen();
        let access = match fetched {
            Err(_) => {
                return Err(TokenError::new(
                    PROVIDER,
                    TokenErrorKind::Unavailable,
                    format!(
                        "no token from {name} within {:?} ({} started, retries included)",
                        self.timeouts.total,
                        attempts(seen.attempts)
                    ),
                ));
            }
            Ok(Err(e)) => return Err(classify(&e, name, &seen, &self.timeouts)),
            Ok(Ok(access)) => access,
        };
        let invalid = |what: String| {
            TokenError::new(
                PROVIDER,
                TokenErrorKind::Invalid,
                format!("{name} got {what}"),
            )
        };
        let secret = access.token.secret();
        if secret.is_empty() {
            return Err(invalid("an empty token".into()));
        }
        let expires_at = SystemTime::from(access.expires_on);
        let now = SystemTime::now();
        if expires_at <= now {
            return Err(invalid(format!(
                "a token that had already expired (at {}, now {})",
                humantime_utc(expires_at),
                humantime_utc(now)
            )));
        }
        Ok(Token {
            secret: Secret::new(secret),
            expires_at,
        })
    }
}

impl CredentialProvider for EntraTokenProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    /// `azure:HOST:USER` (`USER` empty when the plan leaves it to a secrets backend).
    fn key(&self) -> String {
        self.key.clone()
    }

    /// One real token request (plus the SDK's retries) with a new credential: see the module
    /// documentation on caching.
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.fetch_token())
    }
}

fn authority_host(written: Option<String>) -> Result<String, TokenError> {
    let Some(host) = written else {
        return Ok(PUBLIC_AUTHORITY_HOST.to_string());
    };
    let url = Url::parse(&host)
        .map_err(|_| config_error(format!("AZURE_AUTHORITY_HOST {host:?} is not a URL")))?;
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
        return Err(config_error(format!(
            "AZURE_AUTHORITY_HOST {host:?} must be an https URL with a host (e.g. {PUBLIC_AUTHORITY_HOST})"
        )));
    }
    Ok(host.trim_end_matches('/').to_string())
}

/// The HTTP client of production: reqwest (rustls with the process's ring provider) with the
/// attempt and connect timeouts, no redirects (as the SDK's own client).
fn http_client(timeouts: &AzureTimeouts) -> Result<reqwest::Client, TokenError> {
    reqwest_client(timeouts).map_err(|e| config_error(format!("cannot build the HTTP client: {e}")))
}

/// What the probe saw of one fetch's requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Seen {
    /// Requests sent (retries included).
    attempts: u32,
    /// How the last one ended.
    last: Option<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// An answer with this status.
    Status(u16),
    /// No answer: `timed out`, `connection failed`, ...
    Transport(&'static str),
}

/// An [`HttpClient`] in front of the real one that records how each request ended, so that
/// errors are classified by what happened on the wire.
#[derive(Debug, Clone)]
struct Probe {
    inner: Arc<dyn HttpClient>,
    seen: Arc<Mutex<Seen>>,
}

impl Probe {
    fn new(inner: Arc<dyn HttpClient>) -> Self {
        Self {
            inner,
            seen: Arc::default(),
        }
    }

    fn seen(&self) -> Seen {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, outcome: Outcome) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.attempts += 1;
        seen.last = Some(outcome);
    }
}

impl HttpClient for Probe {
    // The trait is declared with `#[async_trait]`; this is the signature it expands to.
    fn execute_request<'life0, 'life1, 'async_trait>(
        &'life0 self,
        request: &'life1 Request,
    ) -> Pin<Box<dyn Future<Output = azure_core::Result<AsyncRawResponse>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let result = self.inner.execute_request(request).await;
            self.record(match &result {
                Ok(response) => Outcome::Status(u16::from(response.status())),
                Err(e) => Outcome::Transport(transport_failure(e)),
            });
            result
        })
    }
}

fn transport_failure(e: &azure_core::Error) -> &'static str {
    match sdk_chain(e).find_map(|e| e.downcast_ref::<reqwest::Error>()) {
        Some(r) if r.is_timeout() => "timed out",
        Some(r) if r.is_connect() => "connection failed",
        _ if matches!(e.kind(), AzureErrorKind::Connection) => "connection failed",
        _ => "transport failure",
    }
}

/// The Entra error codes and the service's description of an error answer in `e`'s chain (an
/// error answer never holds a token).
fn error_answer(e: &azure_core::Error) -> Option<(Option<String>, String)> {
    sdk_chain(e).find_map(|e| {
        let e = e.downcast_ref::<azure_core::Error>()?;
        match e.kind() {
            AzureErrorKind::HttpResponse { error_code, .. } => Some((
                error_code.clone(),
                shorten(e.to_string().lines().next().unwrap_or("")),
            )),
            _ => None,
        }
    })
}

/// The kind of a failed answer's status after the SDK's retries.
fn status_kind(status: u16) -> TokenErrorKind {
    match status {
        // 404: IMDS answers it while it is being updated (the SDK retries it too).
        404 | 408 | 429 | 500..=599 => TokenErrorKind::Unavailable,
        _ => TokenErrorKind::Denied,
    }
}

/// `1 attempt`, `3 attempts`.
fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_string()
    } else {
        format!("{n} attempts")
    }
}

fn classify(
    e: &azure_core::Error,
    credential: &str,
    seen: &Seen,
    timeouts: &AzureTimeouts,
) -> TokenError {
    let attempts = attempts(seen.attempts);
    let (kind, detail) = match &seen.last {
        None => (
            TokenErrorKind::Config,
            safe_sdk_text(e).unwrap_or_else(|| "the credential could not start".into()),
        ),
        Some(Outcome::Transport(failure)) => (
            TokenErrorKind::Unavailable,
            format!(
                "the token endpoint: {failure} after {attempts} (each bounded by {:?})",
                timeouts.request
            ),
        ),
        Some(Outcome::Status(status)) if (200..300).contains(status) => (
            TokenErrorKind::Invalid,
            format!("the token endpoint answered {status} with a body that is not a token"),
        ),
        Some(Outcome::Status(status)) => {
            let (code, message) = error_answer(e).unwrap_or((None, String::new()));
            let code = code.map(|c| format!(" (AADSTS{c})")).unwrap_or_default();
            let message = if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            };
            (
                status_kind(*status),
                format!("the token endpoint answered {status}{code} after {attempts}{message}"),
            )
        }
    };
    TokenError::new(
        PROVIDER,
        kind,
        format!("no token from {credential}: {detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        use TokenErrorKind as K;
        for (status, kind) in [
            (400, K::Denied),
            (401, K::Denied),
            (403, K::Denied),
            (404, K::Unavailable),
            (408, K::Unavailable),
            (429, K::Unavailable),
            (500, K::Unavailable),
            (503, K::Unavailable),
        ] {
            assert_eq!(status_kind(status), kind, "{status}");
        }
    }

    #[test]
    fn the_wire_decides_the_kind() {
        let sdk = azure_core::Error::with_message(
            AzureErrorKind::DataConversion,
            "expected value at line 1 column 1: \"canary-token\"",
        );
        let seen = |last| Seen { attempts: 1, last };
        let classify = |e, s: &Seen| classify(e, "C", s, &AzureTimeouts::default());
        let invalid = classify(&sdk, &seen(Some(Outcome::Status(200))));
        assert_eq!(invalid.kind(), TokenErrorKind::Invalid);
        assert!(!invalid.to_string().contains("canary"), "{invalid}");
        // A 502 gateway page that is not JSON: the status still decides.
        let gateway = classify(&sdk, &seen(Some(Outcome::Status(502))));
        assert_eq!(gateway.kind(), TokenErrorKind::Unavailable);
        assert!(!gateway.to_string().contains("canary"), "{gateway}");
        let refused = classify(&sdk, &seen(Some(Outcome::Transport("timed out"))));
        assert_eq!(refused.kind(), TokenErrorKind::Unavailable);
        assert!(refused.to_string().contains("timed out"), "{refused}");
        let nothing_sent = classify(&sdk, &Seen::default());
        assert_eq!(nothing_sent.kind(), TokenErrorKind::Config);
        assert!(
            !nothing_sent.to_string().contains("canary"),
            "{nothing_sent}"
        );
    }

    #[test]
    fn entra_error_codes_and_descriptions_are_quoted() {
        let sdk = azure_core::Error::with_error(
            AzureErrorKind::Credential,
            azure_core::Error::with_message(
                AzureErrorKind::HttpResponse {
                    status: azure_core::http::StatusCode::Unauthorized,
                    error_code: Some("7000215".into()),
                    raw_response: None,
                },
                "AADSTS7000215: Invalid client secret provided.",
            ),
            "ClientSecretCredential authentication failed.",
        );
        let seen = Seen {
            attempts: 1,
            last: Some(Outcome::Status(401)),
        };
        let err = classify(
            &sdk,
            "ClientSecretCredential",
            &seen,
            &AzureTimeouts::default(),
        );
        assert_eq!(err.kind(), TokenErrorKind::Denied);
        assert_eq!(
            err.to_string(),
            "iam:azure: no token from ClientSecretCredential: the token endpoint answered 401 (AADSTS7000215) after 1 attempt: AADSTS7000215: Invalid client secret provided."
        );
    }

    #[test]
    fn authority_hosts_must_be_https() {
        assert_eq!(
            authority_host(None).expect("default"),
            PUBLIC_AUTHORITY_HOST
        );
        assert_eq!(
            authority_host(Some("https://login.microsoftonline.us/".into())).expect("gov"),
            "https://login.microsoftonline.us"
        );
        for bad in ["http://login.example", "login.example", "https://"] {
            let err = authority_host(Some(bad.into())).expect_err(bad);
            assert_eq!(err.kind(), TokenErrorKind::Config, "{bad}");
        }
    }
}
