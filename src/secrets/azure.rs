//! Azure Key Vault, read with the official SDK (`azure_security_keyvault_secrets`).
//!
//! One secret per key: the secret name is `secret_prefix` + key with every `_` mapped to `-`
//! (Key Vault names hold letters, digits and `-` only, at most 127), so the lookup order's
//! `POSTGRES_PASSWORD` is read from the secret `POSTGRES-PASSWORD`. A secret that does not
//! exist (404 `SecretNotFound`), or whose value is empty, counts as absent and the lookup order
//! moves on.
//!
//! # Credential
//!
//! [`AzureBackend::from_config`] picks one credential from the environment, in this order
//! (the order of the SDKs' `EnvironmentCredential` / `DefaultAzureCredential`, without the
//! developer tools, which do not belong on a server):
//!
//! | when | credential |
//! |---|---|
//! | `AZURE_FEDERATED_TOKEN_FILE` is set | workload identity (AKS): `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and the token file |
//! | `AZURE_CLIENT_SECRET` is set | client secret: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` (`AZURE_AUTHORITY_HOST` for other clouds) |
//! | otherwise | managed identity (App Service or IMDS); user-assigned when `AZURE_CLIENT_ID` is set, else system-assigned |
//!
//! # Timeouts and retries
//!
//! Every HTTP attempt (to the vault and to the token endpoint) is bounded by
//! [`REQUEST_TIMEOUT`] (connecting by [`CONNECT_TIMEOUT`]); the SDK's retry policy resends
//! 408, 429, 500, 502, 503, 504 and transport failures up to [`MAX_RETRIES`] times with
//! exponential back-off from [`RETRY_INITIAL_DELAY`] (a `Retry-After` header lengthens the
//! wait), and one fetch, retries and token request included, never takes longer than
//! [`TOTAL_TIMEOUT`]. [`AzureTimeouts`] carries them, so that tests can shorten them.
//!
//! # Errors
//!
//! | answer | [`SecretErrorKind`] |
//! |---|---|
//! | 404 | none: `Ok(None)` |
//! | 401, 403 | `AccessDenied` |
//! | 429 after the retries | `Throttled` |
//! | 408, 5xx after the retries, timeouts, connection failures | `Unavailable` |
//! | a 200 body that is not a secret | `Malformed` |
//! | token endpoint: 400, 401, 403, missing identity settings | `AccessDenied` |
//! | token endpoint: 408, 429, 5xx, unreachable | `Unavailable` |
//!
//! Messages name the vault, the secret and the key. They quote the service's error code and
//! message only from non-success answers (which never carry a value), never the SDK's text
//! about a success body (a parser error could quote the value).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{Secret as AzureSecret, TokenCredential};
use azure_core::error::ErrorKind as AzureErrorKind;
use azure_core::http::{
    ClientOptions, ExponentialRetryOptions, RetryOptions, StatusCode, Transport, Url,
};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use super::{SecretError, SecretErrorKind, SecretFuture, SecretsBackend};
use crate::config::CredentialsConfig;
use crate::env::{Environment, ProcessEnv};
use crate::secret::Secret;

pub(crate) const BACKEND: &str = "azure";

pub use crate::cloud::azure::MAX_SECRET_NAME_LEN;

/// One HTTP attempt, connecting, sending and reading the whole answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connecting (TCP and TLS) within one attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Resends after the first attempt, for 408, 429, 5xx and transport failures.
pub const MAX_RETRIES: u32 = 3;
/// The first back-off; it doubles on each retry (plus up to 255 ms of jitter).
pub const RETRY_INITIAL_DELAY: Duration = Duration::from_millis(500);
/// The longest back-off the policy picks by itself (a `Retry-After` header may ask for more).
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(8);
/// One whole fetch: token request, challenge, retries and back-off included.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Timeouts and retries of one backend. [`Default`] gives the named constants; tests shorten
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AzureTimeouts {
    /// One HTTP attempt ([`REQUEST_TIMEOUT`]).
    pub request: Duration,
    /// Connecting within one attempt ([`CONNECT_TIMEOUT`]).
    pub connect: Duration,
    /// Resends after the first attempt ([`MAX_RETRIES`]).
    pub max_retries: u32,
    /// The first back-off ([`RETRY_INITIAL_DELAY`]).
    pub retry_initial_delay: Duration,
    /// The longest back-off the policy picks by itself ([`RETRY_MAX_DELAY`]; the SDK raises
    /// anything shorter to 1 s).
    pub retry_max_delay: Duration,
    /// One whole fetch ([`TOTAL_TIMEOUT`]).
    pub total: Duration,
}

impl Default for AzureTimeouts {
    fn default() -> Self {
        Self {
            request: REQUEST_TIMEOUT,
            connect: CONNECT_TIMEOUT,
            max_retries: MAX_RETRIES,
            retry_initial_delay: RETRY_INITIAL_DELAY,
            retry_max_delay: RETRY_MAX_DELAY,
            total: TOTAL_TIMEOUT,
        }
    }
}

impl AzureTimeouts {
    fn retry_options(&self) -> RetryOptions {
        RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: sdk_duration(self.retry_initial_delay),
            max_retries: self.max_retries,
            max_total_elapsed: sdk_duration(self.total),
            max_delay: sdk_duration(self.retry_max_delay),
        })
    }

    /// The SDK client options: this retry policy and `transport`.
    pub(crate) fn client_options(&self, transport: &Transport) -> ClientOptions {
        ClientOptions {
            retry: self.retry_options(),
            transport: Some(transport.clone()),
            ..ClientOptions::default()
        }
    }
}

pub(crate) fn sdk_duration(d: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The Key Vault secret name of `key` under `prefix`: `_` becomes `-`; the result must be 1 to
/// 127 letters, digits and `-`.
pub fn secret_name(prefix: &str, key: &str) -> Result<String, SecretError> {
    let name = crate::cloud::azure::key_vault_name(prefix, key);
    if crate::cloud::azure::is_valid_secret_name(&name) {
        Ok(name)
    } else {
        Err(SecretError::new(
            BACKEND,
            SecretErrorKind::Malformed,
            format!(
                "key {key:?} under secret_prefix {prefix:?} gives {name:?}, not a valid Key Vault secret name: 1 to {MAX_SECRET_NAME_LEN} letters, digits and - (`_` maps to `-`)"
            ),
        ))
    }
}

/// The HTTP client of production for the Azure SDK (Key Vault and Entra tokens alike):
/// reqwest (rustls with the process's ring provider) with the attempt and connect timeouts, no
/// redirects (as the SDK's own client).
pub(crate) fn reqwest_client(timeouts: &AzureTimeouts) -> Result<reqwest::Client, reqwest::Error> {
    super::install_ring_provider();
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

pub(crate) fn http_client(timeouts: &AzureTimeouts) -> Result<reqwest::Client, SecretError> {
    reqwest_client(timeouts).map_err(|e| {
        SecretError::new(
            BACKEND,
            SecretErrorKind::Unavailable,
            format!("cannot build the HTTP client: {e}"),
        )
    })
}

/// Which credential [`AzureBackend::from_config`] uses; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialChoice {
    /// `AZURE_FEDERATED_TOKEN_FILE` is set.
    WorkloadIdentity {
        /// `AZURE_TENANT_ID`.
        tenant_id: String,
        /// `AZURE_CLIENT_ID`.
        client_id: String,
        /// `AZURE_FEDERATED_TOKEN_FILE`.
        token_file: String,
    },
    /// `AZURE_CLIENT_SECRET` is set.
    ClientSecret {
        /// `AZURE_TENANT_ID`.
        tenant_id: String,
        /// `AZURE_CLIENT_ID`.
        client_id: String,
    },
    /// Neither: a managed identity, user-assigned by this client id when given.
    ManagedIdentity {
        /// `AZURE_CLIENT_ID`, when set.
        client_id: Option<String>,
    },
}

impl CredentialChoice {
    /// Reads the choice from `env` (empty variables count as unset). A workload identity or
    /// client secret without its tenant or client id is an `AccessDenied` error naming the
    /// variable.
    pub fn from_env(env: &dyn Environment) -> Result<Self, SecretError> {
        let var = |name: &str| env.var(name).filter(|v| !v.is_empty());
        let need = |name: &str, what: &str| {
            var(name).ok_or_else(|| {
                SecretError::new(
                    BACKEND,
                    SecretErrorKind::AccessDenied,
                    format!("{what} is set but {name} is not: both AZURE_TENANT_ID and AZURE_CLIENT_ID are needed"),
                )
            })
        };
        if let Some(token_file) = var("AZURE_FEDERATED_TOKEN_FILE") {
            let what = "AZURE_FEDERATED_TOKEN_FILE (workload identity)";
            return Ok(Self::WorkloadIdentity {
                tenant_id: need("AZURE_TENANT_ID", what)?,
                client_id: need("AZURE_CLIENT_ID", what)?,
                token_file,
            });
        }
        if var("AZURE_CLIENT_SECRET").is_some() {
            let what = "AZURE_CLIENT_SECRET (client secret)";
            return Ok(Self::ClientSecret {
                tenant_id: need("AZURE_TENANT_ID", what)?,
                client_id: need("AZURE_CLIENT_ID", what)?,
            });
        }
        Ok(Self::ManagedIdentity {
            client_id: var("AZURE_CLIENT_ID"),
        })
    }

    /// The SDK credential's name, as its errors spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::WorkloadIdentity { .. } => "WorkloadIdentityCredential",
            Self::ClientSecret { .. } => "ClientSecretCredential",
            Self::ManagedIdentity { .. } => "ManagedIdentityCredential",
        }
    }

    /// Builds the credential; `env` gives the client secret, `transport` and `timeouts` its
    /// HTTP pipeline.
    fn build(
        &self,
        env: &dyn Environment,
        transport: &Transport,
        timeouts: &AzureTimeouts,
    ) -> Result<Arc<dyn TokenCredential>, SecretError> {
        let client_options = timeouts.client_options(transport);
        let failed = |e: azure_core::Error| {
            SecretError::new(
                BACKEND,
                SecretErrorKind::AccessDenied,
                format!(
                    "cannot set up {}: {}",
                    self.name(),
                    safe_sdk_text(&e).unwrap_or_else(|| "invalid settings".into())
                ),
            )
        };
        Ok(match self {
            Self::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions { client_options },
                client_id: Some(client_id.clone()),
                tenant_id: Some(tenant_id.clone()),
                token_file_path: Some(token_file.into()),
            }))
            .map_err(failed)?,
            Self::ClientSecret {
                tenant_id,
                client_id,
            } => {
                let secret = env.var("AZURE_CLIENT_SECRET").unwrap_or_default();
                ClientSecretCredential::new(
                    tenant_id,
                    client_id.clone(),
                    AzureSecret::new(secret),
                    Some(ClientSecretCredentialOptions { client_options }),
                )
                .map_err(failed)?
            }
            Self::ManagedIdentity { client_id } => {
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options,
                }))
                .map_err(failed)?
            }
        })
    }
}

/// Azure Key Vault: one secret per key (see the module documentation).
pub struct AzureBackend {
    client: SecretClient,
    vault: String,
    prefix: String,
    credential: &'static str,
    timeouts: AzureTimeouts,
}

impl fmt::Debug for AzureBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureBackend")
            .field("vault", &self.vault)
            .field("secret_prefix", &self.prefix)
            .field("credential", &self.credential)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl AzureBackend {
    /// From a plan's credentials block: `vault_url` (https), `secret_prefix`, and the
    /// credential the process environment selects (see the module documentation).
    pub async fn from_config(credentials: &CredentialsConfig) -> Result<Self, SecretError> {
        let timeouts = AzureTimeouts::default();
        let vault_url = vault_url(credentials)?;
        let env = ProcessEnv;
        let choice = CredentialChoice::from_env(&env)?;
        let transport = Transport::new(Arc::new(http_client(&timeouts)?));
        let credential = choice.build(&env, &transport, &timeouts)?;
        Self::new(
            vault_url,
            credentials.secret_prefix.as_deref().unwrap_or(""),
            credential,
            choice.name(),
            transport,
            timeouts,
        )
    }

    /// A backend reading `vault_url` (https) with `credential` (named `credential_name` in
    /// errors), sending every request through `transport`.
    pub fn new(
        vault_url: &str,
        secret_prefix: &str,
        credential: Arc<dyn TokenCredential>,
        credential_name: &'static str,
        transport: Transport,
        timeouts: AzureTimeouts,
    ) -> Result<Self, SecretError> {
        super::install_ring_provider();
        let vault = check_vault_url(vault_url)?;
        let options = SecretClientOptions {
            client_options: timeouts.client_options(&transport),
            ..SecretClientOptions::default()
        };
        let client = SecretClient::new(vault_url, credential, Some(options)).map_err(|e| {
            SecretError::new(
                BACKEND,
                SecretErrorKind::Malformed,
                format!(
                    "vault_url {vault}: {}",
                    safe_sdk_text(&e).unwrap_or_else(|| "not accepted".into())
                ),
            )
        })?;
        Ok(Self {
            client,
            vault,
            prefix: secret_prefix.to_string(),
            credential: credential_name,
            timeouts,
        })
    }

    /// The vault, as written (without a trailing `/`).
    pub fn vault(&self) -> &str {
        &self.vault
    }

    fn error(&self, name: &str, key: &str, kind: SecretErrorKind, detail: &str) -> SecretError {
        SecretError::new(
            BACKEND,
            kind,
            format!(
                "Key Vault {}: secret {name} (key {key}): {detail}",
                self.vault
            ),
        )
    }

    async fn fetch(&self, key: &str) -> Result<Option<Secret>, SecretError> {
        let name = secret_name(&self.prefix, key)?;
        let fetched =
            tokio::time::timeout(self.timeouts.total, self.client.get_secret(&name, None)).await;
        let response = match fetched {
            Err(_) => {
                return Err(self.error(
                    &name,
                    key,
                    SecretErrorKind::Unavailable,
                    &format!(
                        "no answer within {:?} (retries and token request included)",
                        self.timeouts.total
                    ),
                ));
            }
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                return match classify(&e, self.credential, &self.timeouts) {
                    Classified::NotFound => Ok(None),
                    Classified::Failed(kind, detail) => Err(self.error(&name, key, kind, &detail)),
                };
            }
        };
        // Never quote this error: a parser error about the body could quote the value.
        let malformed = |what: &str| self.error(&name, key, SecretErrorKind::Malformed, what);
        let secret = response.into_model().map_err(|_| {
            malformed("the vault's answer is not a Key Vault secret (malformed JSON body)")
        })?;
        match secret.value {
            Some(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
            Some(_) => Ok(None),
            None => Err(malformed("the vault's answer holds no value")),
        }
    }
}

impl SecretsBackend for AzureBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn get<'a>(&'a self, key: &'a str) -> SecretFuture<'a> {
        Box::pin(self.fetch(key))
    }

    /// The same form as the plan's source: `https://NAME.vault.azure.net/secrets/NAME`.
    fn locate(&self, key: &str) -> String {
        let name =
            secret_name(&self.prefix, key).unwrap_or_else(|_| format!("{}{key}", self.prefix));
        format!("{}/secrets/{name}", self.vault.trim_end_matches('/'))
    }
}

pub(crate) fn vault_url(credentials: &CredentialsConfig) -> Result<&str, SecretError> {
    credentials.vault_url.as_deref().ok_or_else(|| {
        SecretError::new(
            BACKEND,
            SecretErrorKind::Malformed,
            "credentials.source azure needs vault_url (https://NAME.vault.azure.net)",
        )
    })
}

/// The vault URL for messages, after checking it is an https URL with a host.
fn check_vault_url(vault_url: &str) -> Result<String, SecretError> {
    let bad = |why: &str| {
        SecretError::new(
            BACKEND,
            SecretErrorKind::Malformed,
            format!("vault_url {vault_url:?} {why} (https://NAME.vault.azure.net)"),
        )
    };
    let url = Url::parse(vault_url).map_err(|_| bad("is not a URL"))?;
    if url.scheme() != "https" {
        return Err(bad("is not https: Key Vault is reached over https only"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(vault_url.trim_end_matches('/').to_string())
}

enum Classified {
    NotFound,
    Failed(SecretErrorKind, String),
}

/// The SDK errors in `e`'s source chain, `e` first.
pub(crate) fn sdk_chain<'a>(
    e: &'a azure_core::Error,
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let first: &'a (dyn StdError + 'static) = e;
    std::iter::successors(Some(first), |e: &&'a (dyn StdError + 'static)| {
        (*e).source()
    })
}

/// The SDK's own text for `e`, unless something in its chain converted data (a parser error
/// could quote a token or a value).
pub(crate) fn safe_sdk_text(e: &azure_core::Error) -> Option<String> {
    let converted = sdk_chain(e).any(|e| {
        e.downcast_ref::<azure_core::Error>()
            .is_some_and(|e| matches!(e.kind(), AzureErrorKind::DataConversion))
            || e.is::<serde_json::Error>()
    });
    if converted {
        return None;
    }
    // `Display` of an SDK error is its message; keep the first line (the rest is a link).
    let text = shorten(e.to_string().lines().next().unwrap_or(""));
    (!text.is_empty()).then_some(text)
}

/// A non-success answer in `e`'s chain: its status, error code and message (never a value:
/// only success bodies carry one).
fn http_answer(e: &azure_core::Error) -> Option<(u16, String, String)> {
    sdk_chain(e).find_map(|e| {
        let e = e.downcast_ref::<azure_core::Error>()?;
        match e.kind() {
            AzureErrorKind::HttpResponse {
                status, error_code, ..
            } => {
                let status = u16::from(*status);
                let code = error_code.clone().unwrap_or_else(|| status.to_string());
                let message = e.to_string();
                Some((status, code, shorten(message.lines().next().unwrap_or(""))))
            }
            _ => None,
        }
    })
}

/// `text` trimmed and cut to 240 characters (with `...`), for messages.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 240;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// A transport failure in `e`'s chain: `timed out` or `connection failed`.
fn transport_failure(e: &azure_core::Error, timeouts: &AzureTimeouts) -> Option<String> {
    let reqwest = sdk_chain(e).find_map(|e| e.downcast_ref::<reqwest::Error>());
    if let Some(r) = reqwest {
        if r.is_timeout() {
            return Some(format!(
                "timed out (each attempt is bounded by {:?}; {} retries)",
                timeouts.request, timeouts.max_retries
            ));
        }
        if r.is_connect() {
            return Some(format!(
                "connection failed ({} retries)",
                timeouts.max_retries
            ));
        }
        return Some(format!(
            "transport failure ({} retries)",
            timeouts.max_retries
        ));
    }
    sdk_chain(e)
        .filter_map(|e| e.downcast_ref::<azure_core::Error>())
        .find(|e| matches!(e.kind(), AzureErrorKind::Io | AzureErrorKind::Connection))
        .map(|_| format!("transport failure ({} retries)", timeouts.max_retries))
}

fn classify(e: &azure_core::Error, credential: &str, timeouts: &AzureTimeouts) -> Classified {
    use SecretErrorKind as K;
    let retries = timeouts.max_retries;
    match e.kind() {
        AzureErrorKind::Credential => {
            let (kind, detail) = if let Some((status, code, message)) = http_answer(e) {
                let kind = match status {
                    408 | 429 | 500..=599 => K::Unavailable,
                    _ => K::AccessDenied,
                };
                (
                    kind,
                    format!("the token endpoint answered {status} ({code}): {message}"),
                )
            } else if let Some(failure) = transport_failure(e, timeouts) {
                (K::Unavailable, format!("the token endpoint: {failure}"))
            } else {
                (
                    K::AccessDenied,
                    safe_sdk_text(e)
                        .unwrap_or_else(|| "the token endpoint's answer could not be read".into()),
                )
            };
            Classified::Failed(kind, format!("no access token from {credential}: {detail}"))
        }
        AzureErrorKind::HttpResponse { status, .. } => {
            let status = u16::from(*status);
            if status == u16::from(StatusCode::NotFound) {
                return Classified::NotFound;
            }
            let (_, code, message) =
                http_answer(e).unwrap_or((status, status.to_string(), String::new()));
            let answered =
                |after: &str| format!("the vault answered {status} ({code}){after}: {message}");
            let (kind, detail) = match status {
                401 => (
                    K::AccessDenied,
                    format!("the token from {credential} was refused; {}", answered("")),
                ),
                403 => (
                    K::AccessDenied,
                    format!(
                        "access denied: the identity needs the secrets get permission (role Key Vault Secrets User); {}",
                        answered("")
                    ),
                ),
                429 => (K::Throttled, answered(&format!(" after {retries} retries"))),
                408 | 500..=599 => (
                    K::Unavailable,
                    answered(&format!(" after {retries} retries")),
                ),
                _ => (K::Unavailable, answered("")),
            };
            Classified::Failed(kind, detail)
        }
        AzureErrorKind::Io | AzureErrorKind::Connection => Classified::Failed(
            K::Unavailable,
            transport_failure(e, timeouts)
                .unwrap_or_else(|| format!("transport failure ({retries} retries)")),
        ),
        AzureErrorKind::DataConversion => Classified::Failed(
            K::Malformed,
            "the vault's answer could not be read (malformed body or authentication challenge)"
                .to_string(),
        ),
        _ => Classified::Failed(
            K::Unavailable,
            safe_sdk_text(e).unwrap_or_else(|| "request failed".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn names_map_underscores_and_are_validated() {
        assert_eq!(
            secret_name("", "POSTGRES_PASSWORD").expect("valid"),
            "POSTGRES-PASSWORD"
        );
        assert_eq!(
            secret_name("ltm_prod-", "password").expect("valid"),
            "ltm-prod-password"
        );
        let err = secret_name("ltm/", "password").expect_err("slash");
        assert_eq!(err.kind(), SecretErrorKind::Malformed);
        assert!(err.to_string().contains("ltm/password"), "{err}");
        assert!(secret_name("", "").is_err());
        assert!(secret_name(&"a".repeat(120), "password").is_err());
        assert!(secret_name(&"a".repeat(119), "password").is_ok());
    }

    #[test]
    fn the_credential_follows_the_documented_order() {
        let base = MapEnv::new()
            .with_var("AZURE_TENANT_ID", "t")
            .with_var("AZURE_CLIENT_ID", "c");
        assert_eq!(
            CredentialChoice::from_env(
                &base
                    .clone()
                    .with_var("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token")
                    .with_var("AZURE_CLIENT_SECRET", "canary-cs")
            )
            .expect("workload"),
            CredentialChoice::WorkloadIdentity {
                tenant_id: "t".into(),
                client_id: "c".into(),
                token_file: "/var/run/token".into()
            }
        );
        assert_eq!(
            CredentialChoice::from_env(&base.clone().with_var("AZURE_CLIENT_SECRET", "canary-cs"))
                .expect("client secret"),
            CredentialChoice::ClientSecret {
                tenant_id: "t".into(),
                client_id: "c".into()
            }
        );
        assert_eq!(
            CredentialChoice::from_env(&base).expect("managed"),
            CredentialChoice::ManagedIdentity {
                client_id: Some("c".into())
            }
        );
        assert_eq!(
            CredentialChoice::from_env(&MapEnv::new()).expect("managed"),
            CredentialChoice::ManagedIdentity { client_id: None }
        );
        let err =
            CredentialChoice::from_env(&MapEnv::new().with_var("AZURE_CLIENT_SECRET", "canary-cs"))
                .expect_err("no tenant");
        assert_eq!(err.kind(), SecretErrorKind::AccessDenied);
        assert!(err.to_string().contains("AZURE_TENANT_ID"), "{err}");
        assert!(!err.to_string().contains("canary"), "{err}");
    }

    #[test]
    fn vault_urls_must_be_https_with_a_host() {
        assert_eq!(
            check_vault_url("https://my-keyvault.vault.azure.net/").expect("valid"),
            "https://my-keyvault.vault.azure.net"
        );
        for bad in [
            "http://my-keyvault.vault.azure.net",
            "my-keyvault",
            "https://",
        ] {
            assert_eq!(
                check_vault_url(bad).expect_err(bad).kind(),
                SecretErrorKind::Malformed
            );
        }
    }

    fn http_error(status: u16, code: &str) -> azure_core::Error {
        azure_core::Error::with_message(
            AzureErrorKind::HttpResponse {
                status: StatusCode::from(status),
                error_code: Some(code.to_string()),
                raw_response: None,
            },
            "service message",
        )
    }

    fn kind_of(e: &azure_core::Error) -> Option<SecretErrorKind> {
        match classify(e, "ClientSecretCredential", &AzureTimeouts::default()) {
            Classified::NotFound => None,
            Classified::Failed(kind, _) => Some(kind),
        }
    }

    #[test]
    fn sdk_errors_are_classified() {
        use SecretErrorKind as K;
        assert_eq!(kind_of(&http_error(404, "SecretNotFound")), None);
        assert_eq!(
            kind_of(&http_error(401, "Unauthorized")),
            Some(K::AccessDenied)
        );
        assert_eq!(
            kind_of(&http_error(403, "Forbidden")),
            Some(K::AccessDenied)
        );
        assert_eq!(kind_of(&http_error(429, "Throttled")), Some(K::Throttled));
        assert_eq!(
            kind_of(&http_error(503, "ServiceUnavailable")),
            Some(K::Unavailable)
        );
        let token = |status| {
            azure_core::Error::with_error(
                AzureErrorKind::Credential,
                http_error(status, "7000215"),
                "ClientSecretCredential authentication failed.",
            )
        };
        assert_eq!(kind_of(&token(401)), Some(K::AccessDenied));
        assert_eq!(kind_of(&token(400)), Some(K::AccessDenied));
        assert_eq!(kind_of(&token(503)), Some(K::Unavailable));
        let conversion = azure_core::Error::with_message(
            AzureErrorKind::DataConversion,
            "invalid type: string \"canary-value\"",
        );
        assert_eq!(kind_of(&conversion), Some(K::Malformed));
        match classify(&conversion, "x", &AzureTimeouts::default()) {
            Classified::Failed(_, detail) => assert!(!detail.contains("canary"), "{detail}"),
            Classified::NotFound => panic!("not a 404"),
        }
    }
}
