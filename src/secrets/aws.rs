//! AWS Secrets Manager, with the official SDK (`aws-sdk-secretsmanager`) over rustls (ring).
//!
//! Two layouts: `secret_name`, one JSON secret holding every key (as RDS-managed secrets store
//! `username`, `password`, `host`, `port`, `dbname`), or `secret_prefix`, one secret per key
//! (named prefix + key). Credentials come from the AWS default chain (environment, profile,
//! web identity, container and instance metadata); `endpoint_url` points the client at another
//! endpoint (LocalStack, a VPC endpoint).

use std::fmt;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use super::{SecretError, SecretErrorKind, SecretFuture, SecretsBackend, json_field};
use crate::config::CredentialsConfig;
use crate::secret::Secret;

/// How long one HTTP attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one fetch may take, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts per fetch (the SDK's standard retry: throttling, 5xx and timeouts are retried).
pub const MAX_ATTEMPTS: u32 = 3;

const BACKEND: &str = "aws";

#[derive(Debug, Clone)]
enum Layout {
    Json(String),
    Prefix(String),
}

/// AWS Secrets Manager.
#[derive(Clone)]
pub struct AwsBackend {
    client: Client,
    layout: Layout,
}

impl fmt::Debug for AwsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsBackend")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// The SDK's HTTPS client (ring), shared with the RDS token provider; it lives in
/// [`crate::cloud::aws::sdk`].
pub use crate::cloud::aws::sdk::http_client;

fn layout(credentials: &CredentialsConfig) -> Result<Layout, SecretError> {
    match (&credentials.secret_name, &credentials.secret_prefix) {
        (Some(name), _) => Ok(Layout::Json(name.clone())),
        (None, Some(prefix)) => Ok(Layout::Prefix(prefix.clone())),
        (None, None) => Err(SecretError::new(
            BACKEND,
            SecretErrorKind::Missing,
            "credentials.source aws needs secret_name (one JSON secret) or secret_prefix (one secret per key)",
        )),
    }
}

impl AwsBackend {
    /// From a plan's credentials block: the default credential chain, the block's region
    /// (else the SDK's own resolution) and `endpoint_url`.
    pub async fn from_config(credentials: &CredentialsConfig) -> Result<Self, SecretError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client())
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            );
        if let Some(region) = &credentials.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &credentials.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk = loader.load().await;
        Self::with_sdk_config(&sdk, credentials)
    }

    /// With an SDK configuration made by the caller (tests: static credentials, an emulator's
    /// endpoint, short timeouts).
    pub fn with_sdk_config(
        sdk: &aws_config::SdkConfig,
        credentials: &CredentialsConfig,
    ) -> Result<Self, SecretError> {
        Ok(Self {
            client: Client::new(sdk),
            layout: layout(credentials)?,
        })
    }

    /// Fetches one secret's string; `Ok(None)` when it does not exist.
    async fn fetch(&self, id: &str, key: &str) -> Result<Option<String>, SecretError> {
        match self.client.get_secret_value().secret_id(id).send().await {
            Ok(output) => match output.secret_string() {
                Some(text) => Ok(Some(text.to_string())),
                None => Err(SecretError::new(
                    BACKEND,
                    SecretErrorKind::Malformed,
                    format!("secret {id} (for key {key}) holds binary data, not a string"),
                )),
            },
            Err(e) => {
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception())
                {
                    return Ok(None);
                }
                Err(classify(&e, id, key))
            }
        }
    }
}

fn classify<E, R>(e: &SdkError<E, R>, id: &str, key: &str) -> SecretError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let (kind, what) = match e {
        SdkError::TimeoutError(_) => (SecretErrorKind::Unavailable, "timed out".to_string()),
        SdkError::DispatchFailure(_) => (
            SecretErrorKind::Unavailable,
            "could not reach the service".to_string(),
        ),
        SdkError::ResponseError(_) => (
            SecretErrorKind::Malformed,
            "the response could not be read".to_string(),
        ),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown");
            let kind = match code {
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "DecryptionFailure" => SecretErrorKind::AccessDenied,
                "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
                    SecretErrorKind::Throttled
                }
                "InternalServiceError" | "ServiceUnavailable" | "InternalFailure" => {
                    SecretErrorKind::Unavailable
                }
                _ => SecretErrorKind::Unavailable,
            };
            (kind, code.to_string())
        }
        _ => (SecretErrorKind::Unavailable, "request failed".to_string()),
    };
    SecretError::new(
        BACKEND,
        kind,
        format!("secret {id} (for key {key}): {what}"),
    )
}

impl SecretsBackend for AwsBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn locate(&self, key: &str) -> String {
        match &self.layout {
            Layout::Json(name) => format!("{name}#{key}"),
            Layout::Prefix(prefix) => format!("{prefix}{key}"),
        }
    }

    fn get<'a>(&'a self, key: &'a str) -> SecretFuture<'a> {
        Box::pin(async move {
            match &self.layout {
                Layout::Prefix(prefix) => {
                    let id = format!("{prefix}{key}");
                    Ok(self.fetch(&id, key).await?.map(Secret::new))
                }
                Layout::Json(name) => match self.fetch(name, key).await? {
                    Some(text) => json_field(BACKEND, name, &text, key),
                    None => Err(SecretError::new(
                        BACKEND,
                        SecretErrorKind::Missing,
                        format!("secret {name} (for key {key}) does not exist"),
                    )),
                },
            }
        })
    }
}
