//! GCP Secret Manager (placeholder while the backend is written).

use super::{SecretError, SecretErrorKind, SecretFuture, SecretsBackend};
use crate::config::CredentialsConfig;

/// GCP Secret Manager.
#[derive(Debug)]
pub struct GcpBackend;

impl GcpBackend {
    /// From a plan's credentials block.
    pub async fn from_config(_credentials: &CredentialsConfig) -> Result<Self, SecretError> {
        Err(SecretError::new(
            "gcp",
            SecretErrorKind::Unsupported,
            "the gcp secrets backend is not implemented yet",
        ))
    }
}

impl SecretsBackend for GcpBackend {
    fn name(&self) -> &'static str {
        "gcp"
    }

    fn get<'a>(&'a self, _key: &'a str) -> SecretFuture<'a> {
        Box::pin(async {
            Err(SecretError::new(
                "gcp",
                SecretErrorKind::Unsupported,
                "the gcp secrets backend is not implemented yet",
            ))
        })
    }
}
