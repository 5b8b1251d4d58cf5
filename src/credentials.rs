//! Resolving the plan's user and password sources into a [`Login`].
//!
//! Today this covers the sources that need no network: a literal in the configuration, the
//! `env` backend (the lookup order of [`CredentialsConfig::lookup_keys`]), and none. The cloud
//! secrets backends and IAM tokens are not implemented yet; asking for one is a `credentials`
//! error that says so.

use crate::config::{CredentialField, CredentialsConfig, SecretSource};
use crate::connect::{ConnectError, Login};
use crate::env::Environment;
use crate::error::ErrorClass;
use crate::plan::{ConnectPlan, Source};
use crate::secret::Secret;

fn env_value(
    creds: &CredentialsConfig,
    field: CredentialField,
    env: &dyn Environment,
) -> Result<String, ConnectError> {
    let keys = creds.lookup_keys(field);
    keys.iter()
        .find_map(|k| env.var(k).filter(|v| !v.is_empty()))
        .ok_or_else(|| {
            ConnectError::new(
                ErrorClass::Credentials,
                format!("credentials (env): none of {} is set", keys.join(", ")),
            )
        })
}

fn unsupported(source: &Source) -> ConnectError {
    ConnectError::new(
        ErrorClass::Credentials,
        format!(
            "credentials from {source} are not implemented yet (secrets backends and IAM tokens come next)"
        ),
    )
}

/// The login for a plan, from the sources that need no network.
pub fn resolve_static(plan: &ConnectPlan, env: &dyn Environment) -> Result<Login, ConnectError> {
    let creds = plan.credentials.as_ref();
    let from_env = |field| match creds {
        Some(c) if c.source == SecretSource::Env => env_value(c, field, env).map(Some),
        _ => Ok(None),
    };
    let user = match &plan.user_source {
        Source::Env(_) if plan.user.is_none() => from_env(CredentialField::Username)?,
        Source::None | Source::Literal | Source::Env(_) => None,
        other => return Err(unsupported(other)),
    };
    let password = match &plan.password_source {
        Source::Env(_) => from_env(CredentialField::Password)?.map(Secret::new),
        Source::None | Source::Literal => None,
        other => return Err(unsupported(other)),
    };
    Ok(Login { user, password })
}
