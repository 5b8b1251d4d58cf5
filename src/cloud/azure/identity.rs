//! Which Azure identity the process authenticates as (feature `azure`), and the
//! `azure_identity` credential built for it: one rule for the Key Vault backend and the Entra
//! token provider.
//!
//! The environment picks one credential, in this order (the order of the SDKs'
//! `EnvironmentCredential` / `DefaultAzureCredential`, without the developer tools, which do not
//! belong on a server):
//!
//! | when | credential |
//! |---|---|
//! | `AZURE_FEDERATED_TOKEN_FILE` is set | workload identity (AKS): `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and the token file |
//! | `AZURE_CLIENT_SECRET` is set | client secret: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` |
//! | otherwise | managed identity (App Service or IMDS); user-assigned when `AZURE_CLIENT_ID` is set, else system-assigned |
//!
//! Empty variables count as unset. The caller decides how the errors ([`IdentityError`])
//! are classed: the backend calls them `AccessDenied`, the token provider `Config`.

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::{Secret as AzureSecret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::sdk::safe_sdk_text;
use crate::env::Environment;

/// Missing identity settings, or settings the SDK refused. The message names the variable or
/// the credential, never the client secret or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdentityError {
    message: String,
}

impl IdentityError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// What is wrong.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IdentityError {}

/// Which credential the environment selects; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CredentialChoice {
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
    /// client secret without its tenant or client id is an error naming the variable.
    pub(crate) fn from_env(env: &dyn Environment) -> Result<Self, IdentityError> {
        let var = |name: &str| env.var(name).filter(|v| !v.is_empty());
        let need = |name: &str, what: &str| {
            var(name).ok_or_else(|| {
                IdentityError::new(format!(
                    "{what} is set but {name} is not: both AZURE_TENANT_ID and AZURE_CLIENT_ID are needed"
                ))
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
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::WorkloadIdentity { .. } => "WorkloadIdentityCredential",
            Self::ClientSecret { .. } => "ClientSecretCredential",
            Self::ManagedIdentity { .. } => "ManagedIdentityCredential",
        }
    }
}

/// The selected credential with what building it needs (the client secret, read once from the
/// same environment). Each [`Identity::credential`] call builds a new SDK credential, with an
/// empty token cache. `Debug` shows the choice, never the client secret.
#[derive(Clone)]
pub(crate) struct Identity {
    choice: CredentialChoice,
    client_secret: Option<AzureSecret>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("choice", &self.choice)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The credential `env` selects ([`CredentialChoice::from_env`]), with its client secret.
    pub(crate) fn from_env(env: &dyn Environment) -> Result<Self, IdentityError> {
        let choice = CredentialChoice::from_env(env)?;
        let client_secret = match choice {
            CredentialChoice::ClientSecret { .. } => Some(AzureSecret::new(
                env.var("AZURE_CLIENT_SECRET").unwrap_or_default(),
            )),
            _ => None,
        };
        Ok(Self {
            choice,
            client_secret,
        })
    }

    /// Which credential.
    pub(crate) fn choice(&self) -> &CredentialChoice {
        &self.choice
    }

    /// The SDK credential's name, as its errors spell it.
    pub(crate) fn name(&self) -> &'static str {
        self.choice.name()
    }

    /// A new SDK credential whose requests follow `client_options` (retries, transport, and
    /// the cloud when the caller sets one). Settings the SDK refuses are an error naming the
    /// credential (`cannot set up ...`).
    pub(crate) fn credential(
        &self,
        client_options: ClientOptions,
    ) -> Result<Arc<dyn TokenCredential>, IdentityError> {
        let failed = |e: azure_core::Error| {
            IdentityError::new(format!(
                "cannot set up {}: {}",
                self.name(),
                safe_sdk_text(&e).unwrap_or_else(|| "invalid settings".into())
            ))
        };
        Ok(match &self.choice {
            CredentialChoice::WorkloadIdentity {
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
            CredentialChoice::ClientSecret {
                tenant_id,
                client_id,
            } => ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                self.client_secret
                    .clone()
                    .unwrap_or_else(|| AzureSecret::new(String::new())),
                Some(ClientSecretCredentialOptions { client_options }),
            )
            .map_err(failed)?,
            CredentialChoice::ManagedIdentity { client_id } => {
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options,
                }))
                .map_err(failed)?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

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
        assert!(err.to_string().contains("AZURE_TENANT_ID"), "{err}");
        assert!(!err.to_string().contains("canary"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_client_secret() {
        let env = MapEnv::new()
            .with_var("AZURE_TENANT_ID", "t")
            .with_var("AZURE_CLIENT_ID", "c")
            .with_var("AZURE_CLIENT_SECRET", "canary-cs");
        let identity = Identity::from_env(&env).expect("client secret");
        assert_eq!(identity.name(), "ClientSecretCredential");
        let shown = format!("{identity:?}");
        assert!(!shown.contains("canary"), "{shown}");
    }
}
