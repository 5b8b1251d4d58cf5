//! Azure Key Vault (placeholder while the backend is written).

use super::{SecretError, SecretErrorKind, SecretFuture, SecretsBackend};
use crate::config::CredentialsConfig;

/// Azure Key Vault.
#[derive(Debug)]
pub struct AzureBackend;

impl AzureBackend {
    /// From a plan's credentials block.
    pub async fn from_config(_credentials: &CredentialsConfig) -> Result<Self, SecretError> {
        Err(SecretError::new(
            "azure",
            SecretErrorKind::Unsupported,
            "the azure secrets backend is not implemented yet",
        ))
    }
}

impl SecretsBackend for AzureBackend {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn get<'a>(&'a self, _key: &'a str) -> SecretFuture<'a> {
        Box::pin(async {
            Err(SecretError::new(
                "azure",
                SecretErrorKind::Unsupported,
                "the azure secrets backend is not implemented yet",
            ))
        })
    }
}
