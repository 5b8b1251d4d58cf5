//! Secrets backends: where `credentials` values are fetched from.
//!
//! A [`SecretsBackend`] fetches one key at a time; [`resolve`] applies the lookup order of
//! [`CredentialsConfig::lookup_keys`] to get the user name and password; [`CachedSecrets`]
//! shares fetched values between connections for a TTL and refetches after an authentication
//! failure. Errors name the backend, the secret and the key, never a value.
//!
//! Backends: [`EnvBackend`], and with their cargo features (all on by default) AWS Secrets
//! Manager (`aws`), GCP Secret Manager (`gcp`) and Azure Key Vault (`azure`), each with its
//! official SDK over rustls (ring). Each is tested against an HTTP emulator of its service
//! (`conformance/emulators/`, feature `conformance`) with faults injected.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
mod cache;
#[cfg(feature = "gcp")]
pub mod gcp;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use cache::{CachedSecrets, Clock, DEFAULT_TTL, MAX_TTL, SystemClock, refresh_at};

use crate::config::{CredentialField, CredentialsConfig, SecretSource};
use crate::env::Environment;
use crate::error::{Action, ErrorClass};
use crate::secret::Secret;

/// What a backend's fetch returns: the value, `None` when the key does not exist (the lookup
/// order then moves on), or an error.
pub type SecretFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Secret>, SecretError>> + Send + 'a>>;

/// A place secrets are fetched from.
pub trait SecretsBackend: Send + Sync + fmt::Debug {
    /// `env`, `gcp`, `aws` or `azure`.
    fn name(&self) -> &'static str;

    /// Fetches one key.
    fn get<'a>(&'a self, key: &'a str) -> SecretFuture<'a>;

    /// Where a key is looked up, for messages (`prod/ltm#password`, `ltm-password`, ...).
    fn locate(&self, key: &str) -> String {
        key.to_string()
    }
}

/// Why a secret could not be fetched, grouped by what the caller should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretErrorKind {
    /// The caller may not read it: fix permissions.
    AccessDenied,
    /// The service asked us to slow down: retry later.
    Throttled,
    /// The service did not answer in time, or failed: retry.
    Unavailable,
    /// The secret exists but is not what the configuration says (not JSON, not a string).
    Malformed,
    /// None of the keys of the lookup order exists.
    Missing,
    /// The backend is not implemented in this build.
    Unsupported,
}

impl SecretErrorKind {
    /// A stable lower-case name, used in vector files and JSON (`access-denied`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "access-denied",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
            Self::Malformed => "malformed",
            Self::Missing => "missing",
            Self::Unsupported => "unsupported",
        }
    }

    /// What the caller should do: `throttled` and `unavailable` may pass ([`Action::Retry`]),
    /// `access-denied` needs a grant, the rest a fix of the configuration or the secret.
    pub fn action(self) -> Action {
        match self {
            Self::AccessDenied => Action::FixPermissions,
            Self::Throttled | Self::Unavailable => Action::Retry,
            Self::Malformed | Self::Missing | Self::Unsupported => Action::FixConfig,
        }
    }
}

/// A failed fetch. Never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretError {
    backend: &'static str,
    kind: SecretErrorKind,
    message: String,
}

impl SecretError {
    /// An error of `backend`; `message` must name the secret and key, never the value.
    pub fn new(backend: &'static str, kind: SecretErrorKind, message: impl Into<String>) -> Self {
        Self {
            backend,
            kind,
            message: message.into(),
        }
    }

    /// The backend (`env`, `aws`, ...).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// What kind of failure.
    pub fn kind(&self) -> SecretErrorKind {
        self.kind
    }

    /// What went wrong, naming the secret and key (never the value).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Always [`ErrorClass::Credentials`].
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Credentials
    }
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "credentials ({}): {}",
            self.backend,
            crate::text::Escaped(&self.message)
        )
    }
}

impl std::error::Error for SecretError {}

/// Environment variables: a key is a variable name (the prefix is already part of the keys of
/// the lookup order). An empty variable counts as unset.
#[derive(Clone)]
pub struct EnvBackend {
    env: Arc<dyn Environment>,
}

impl EnvBackend {
    /// A backend reading `env`.
    pub fn new(env: Arc<dyn Environment>) -> Self {
        Self { env }
    }
}

impl fmt::Debug for EnvBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnvBackend")
    }
}

impl SecretsBackend for EnvBackend {
    fn name(&self) -> &'static str {
        "env"
    }

    fn get<'a>(&'a self, key: &'a str) -> SecretFuture<'a> {
        let value = self.env.var(key).filter(|v| !v.is_empty()).map(Secret::new);
        Box::pin(async move { Ok(value) })
    }
}

/// The backend a `credentials` block names. The block should come from a plan
/// ([`crate::plan::ConnectPlan::credentials`]), where the GCP project and AWS region defaults
/// are filled in.
pub async fn create_secrets_backend(
    credentials: &CredentialsConfig,
    env: Arc<dyn Environment>,
) -> Result<Arc<dyn SecretsBackend>, SecretError> {
    match credentials.source {
        SecretSource::Env => Ok(Arc::new(EnvBackend::new(env))),
        #[cfg(feature = "aws")]
        SecretSource::Aws => Ok(Arc::new(aws::AwsBackend::from_config(credentials).await?)),
        #[cfg(feature = "gcp")]
        SecretSource::Gcp => Ok(Arc::new(gcp::GcpBackend::from_config(credentials).await?)),
        #[cfg(feature = "azure")]
        SecretSource::Azure => Ok(Arc::new(
            azure::AzureBackend::from_config(credentials).await?,
        )),
        #[allow(unreachable_patterns)]
        other => Err(SecretError::new(
            other.as_str(),
            SecretErrorKind::Unsupported,
            format!(
                "this build has no {0} secrets backend (cargo feature `{0}`)",
                other.as_str()
            ),
        )),
    }
}

/// What a backend holds of the lookup order: the user name and the password, each with the key
/// it was found under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The user name, and the key it came from.
    pub user: Option<(String, String)>,
    /// The password, and the key it came from.
    pub password: Option<(Secret, String)>,
}

fn located(backend: &dyn SecretsBackend, keys: &[String]) -> String {
    keys.iter()
        .map(|k| backend.locate(k))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn first_found(
    backend: &dyn SecretsBackend,
    keys: &[String],
) -> Result<Option<(Secret, String)>, SecretError> {
    for key in keys {
        if let Some(value) = backend.get(key).await? {
            return Ok(Some((value, key.clone())));
        }
    }
    Ok(None)
}

/// Resolves the user name (unless `need_user` is false: the YAML already gives one) and the
/// password by the lookup order. A missing password is an error naming every key tried.
pub async fn resolve(
    credentials: &CredentialsConfig,
    backend: &dyn SecretsBackend,
    need_user: bool,
) -> Result<Found, SecretError> {
    let user = if need_user {
        let keys = credentials.lookup_keys(CredentialField::Username);
        match first_found(backend, &keys).await? {
            Some((value, key)) => Some((value.expose().to_string(), key)),
            None => {
                return Err(SecretError::new(
                    backend.name(),
                    SecretErrorKind::Missing,
                    format!("no user name: none of {} exists", located(backend, &keys)),
                ));
            }
        }
    } else {
        None
    };
    let keys = credentials.lookup_keys(CredentialField::Password);
    let password = first_found(backend, &keys).await?;
    if password.is_none() {
        return Err(SecretError::new(
            backend.name(),
            SecretErrorKind::Missing,
            format!("no password: none of {} exists", located(backend, &keys)),
        ));
    }
    Ok(Found { user, password })
}

/// Reads `field` from a JSON object secret (as RDS-managed secrets store `username`,
/// `password`, `host`, `port`, `dbname`). Numbers are taken as their text. `secret` names the
/// secret in errors; the value is never quoted.
pub fn json_field(
    backend: &'static str,
    secret: &str,
    text: &str,
    field: &str,
) -> Result<Option<Secret>, SecretError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        SecretError::new(
            backend,
            SecretErrorKind::Malformed,
            format!("secret {secret} is not a JSON object (secret_name expects one JSON secret holding every key; use secret_prefix for one secret per key)"),
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err(SecretError::new(
            backend,
            SecretErrorKind::Malformed,
            format!("secret {secret} is JSON but not an object"),
        ));
    };
    match object.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(Secret::new(s.clone()))),
        Some(serde_json::Value::Number(n)) => Ok(Some(Secret::new(n.to_string()))),
        Some(_) => Err(SecretError::new(
            backend,
            SecretErrorKind::Malformed,
            format!("secret {secret}: key {field} is not a string"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn creds(prefix: &str) -> CredentialsConfig {
        CredentialsConfig {
            prefix: Some(prefix.into()),
            ..CredentialsConfig::new(SecretSource::Env)
        }
    }

    fn block_on<T>(fut: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(fut)
    }

    #[test]
    fn the_story_prefix_resolves_postgres_user_and_password() {
        let env = MapEnv::new()
            .with_var("POSTGRES_USER", "ltm")
            .with_var("POSTGRES_PASSWORD", "canary-pw-1");
        let backend = EnvBackend::new(Arc::new(env));
        let resolved = block_on(resolve(&creds("POSTGRES_"), &backend, true)).expect("resolves");
        assert_eq!(
            resolved.user,
            Some(("ltm".to_string(), "POSTGRES_USER".to_string()))
        );
        let (password, key) = resolved.password.expect("a password");
        assert_eq!(
            (password.expose(), key.as_str()),
            ("canary-pw-1", "POSTGRES_PASSWORD")
        );
    }

    #[test]
    fn the_configured_key_wins_and_empty_counts_as_unset() {
        let env = MapEnv::new()
            .with_var("APP_password", "")
            .with_var("APP_PASSWORD", "second")
            .with_var("POSTGRES_PASSWORD", "third");
        let backend = EnvBackend::new(Arc::new(env));
        let resolved = block_on(resolve(&creds("APP_"), &backend, false)).expect("resolves");
        assert_eq!(resolved.user, None);
        let (password, key) = resolved.password.expect("a password");
        assert_eq!(
            (password.expose(), key.as_str()),
            ("second", "APP_PASSWORD")
        );
    }

    #[test]
    fn a_missing_password_names_every_key_tried_and_no_value() {
        let env = MapEnv::new().with_var("APP_USER", "canary-user-9");
        let backend = EnvBackend::new(Arc::new(env));
        let err = block_on(resolve(&creds("APP_"), &backend, true)).expect_err("no password");
        assert_eq!(err.kind(), SecretErrorKind::Missing);
        assert_eq!(
            err.to_string(),
            "credentials (env): no password: none of APP_password, APP_PASSWORD, POSTGRES_PASSWORD exists"
        );
        assert!(!format!("{err:?}").contains("canary-user-9"));
    }

    #[test]
    fn json_secrets_give_their_fields_and_never_echo_values() {
        let text = r#"{"username": "app", "password": "canary-json-7", "port": 5432}"#;
        let field = |f| json_field("aws", "prod/ltm", text, f);
        assert_eq!(
            field("username")
                .expect("ok")
                .map(|s| s.expose().to_string()),
            Some("app".into())
        );
        assert_eq!(
            field("port").expect("ok").map(|s| s.expose().to_string()),
            Some("5432".into())
        );
        assert_eq!(field("dbname").expect("ok"), None);
        let err =
            json_field("aws", "prod/ltm", "canary-not-json", "password").expect_err("not JSON");
        assert_eq!(err.kind(), SecretErrorKind::Malformed);
        assert!(!err.to_string().contains("canary"), "{err}");
        let err = json_field(
            "aws",
            "prod/ltm",
            r#"{"password": ["canary-list"]}"#,
            "password",
        )
        .expect_err("not a string");
        assert!(!err.to_string().contains("canary"), "{err}");
    }
}
