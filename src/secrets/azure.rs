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
//! [`AzureBackend::from_config`] picks one credential from the environment
//! (`cloud/azure/identity.rs`, the same rule as the Entra token provider's), in this order
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

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind as AzureErrorKind;
use azure_core::http::{StatusCode, Transport, Url};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use super::{SecretError, SecretErrorKind, SecretFuture, SecretsBackend};
use crate::cloud::azure::identity::{Identity, IdentityError};
use crate::cloud::azure::sdk::{reqwest_client, sdk_chain, shorten};
// The emulators' transport (conformance kit) quotes SDK errors by this path too.
pub(crate) use crate::cloud::azure::sdk::safe_sdk_text;
use crate::config::CredentialsConfig;
use crate::env::ProcessEnv;
use crate::secret::Secret;

pub(crate) const BACKEND: &str = "azure";

pub use crate::cloud::azure::MAX_SECRET_NAME_LEN;

/// The timeouts and retries, shared with the Entra token provider; they live in
/// [`crate::cloud::azure::sdk`].
pub use crate::cloud::azure::sdk::{
    AzureTimeouts, CONNECT_TIMEOUT, MAX_RETRIES, REQUEST_TIMEOUT, RETRY_INITIAL_DELAY,
    RETRY_MAX_DELAY, TOTAL_TIMEOUT,
};

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

pub(crate) fn http_client(timeouts: &AzureTimeouts) -> Result<reqwest::Client, SecretError> {
    reqwest_client(timeouts).map_err(|e| {
        SecretError::new(
            BACKEND,
            SecretErrorKind::Unavailable,
            format!("cannot build the HTTP client: {e}"),
        )
    })
}

/// The identity the process environment selects (see the module documentation); missing
/// settings are `AccessDenied`.
fn identity(env: &dyn crate::env::Environment) -> Result<Identity, SecretError> {
    Identity::from_env(env).map_err(access_denied)
}

fn access_denied(e: IdentityError) -> SecretError {
    SecretError::new(BACKEND, SecretErrorKind::AccessDenied, e.message())
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
        let identity = identity(&ProcessEnv)?;
        let transport = Transport::new(Arc::new(http_client(&timeouts)?));
        let credential = identity
            .credential(timeouts.client_options(&transport))
            .map_err(access_denied)?;
        Self::new(
            vault_url,
            credentials.secret_prefix.as_deref().unwrap_or(""),
            credential,
            identity.name(),
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
        crate::shared::install_ring_provider();
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
    fn missing_identity_settings_are_access_denied() {
        let err = identity(&MapEnv::new().with_var("AZURE_CLIENT_SECRET", "canary-cs"))
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
