//! From the plan's user and password sources to a [`Login`], and a connection that survives a
//! password rotated under it.
//!
//! Literal values come from the plan; `credentials` values from a secrets backend through a
//! [`CachedSecrets`] ([`crate::secrets`]); IAM tokens are not implemented yet (a `credentials`
//! error says so). [`connect_with_credentials`] refetches the secrets and retries once when a
//! login with cached values fails: the password may have been rotated.

use std::sync::Arc;

use crate::connect::{self, ConnectError, Connected, Login};
use crate::env::Environment;
use crate::error::ErrorClass;
use crate::plan::{ConnectPlan, Source};
use crate::secrets::{
    self, CachedSecrets, DEFAULT_TTL, SecretsBackend, SystemClock, create_secrets_backend,
};

/// A resolved login and where each part came from (for `resolve` and reports).
#[derive(Debug, Clone)]
pub struct Resolved {
    /// What to log in with.
    pub login: Login,
    /// Where the user name came from (`literal`, `env:NAME`, `secret:...`, `none`).
    pub user_from: String,
    /// Where the password came from.
    pub password_from: String,
}

/// Whether some part of the login comes from the `credentials` backend.
fn from_backend(plan: &ConnectPlan) -> bool {
    let backend = |s: &Source| matches!(s, Source::Env(_) | Source::Secret { .. });
    plan.credentials.is_some()
        && (backend(&plan.password_source) || (plan.user.is_none() && backend(&plan.user_source)))
}

fn credentials_error(e: secrets::SecretError) -> ConnectError {
    ConnectError::new(ErrorClass::Credentials, e.to_string())
}

/// The secrets cache a plan needs: `None` when no value comes from a secrets backend.
pub async fn secrets_for(
    plan: &ConnectPlan,
    env: Arc<dyn Environment + Send + Sync>,
) -> Result<Option<CachedSecrets>, ConnectError> {
    let Some(credentials) = &plan.credentials else {
        return Ok(None);
    };
    if !from_backend(plan) {
        return Ok(None);
    }
    let backend = create_secrets_backend(credentials, env)
        .await
        .map_err(credentials_error)?;
    Ok(Some(CachedSecrets::new(
        backend,
        DEFAULT_TTL,
        Arc::new(SystemClock),
    )))
}

/// Resolves the login for `plan`, fetching from `secrets` where the plan says so.
pub async fn resolve(
    plan: &ConnectPlan,
    secrets: Option<&CachedSecrets>,
) -> Result<Resolved, ConnectError> {
    for source in [&plan.user_source, &plan.password_source] {
        if let Source::Iam(kind) = source {
            return Err(ConnectError::new(
                ErrorClass::Credentials,
                format!(
                    "IAM tokens (iam:{}) are not implemented in this build yet",
                    kind.as_str()
                ),
            ));
        }
    }
    let mut resolved = Resolved {
        login: Login::default(),
        user_from: plan.user_source.to_string(),
        password_from: plan.password_source.to_string(),
    };
    if !from_backend(plan) {
        return Ok(resolved);
    }
    let (Some(credentials), Some(secrets)) = (&plan.credentials, secrets) else {
        return Err(ConnectError::new(
            ErrorClass::Credentials,
            "the plan names a secrets backend but none was set up",
        ));
    };
    let need_user = plan.user.is_none();
    let found = secrets::resolve(credentials, secrets, need_user)
        .await
        .map_err(credentials_error)?;
    let backend = secrets.name();
    // The same form as the plan's sources: `env:NAME`, `secret:aws:prod/ltm#password`, ...
    let label = |key: &str| {
        if backend == "env" {
            format!("env:{key}")
        } else {
            format!("secret:{backend}:{}", secrets.locate(key))
        }
    };
    if let Some((user, key)) = found.user {
        resolved.user_from = label(&key);
        resolved.login.user = Some(user);
    }
    if let Some((password, key)) = found.password {
        resolved.password_from = label(&key);
        resolved.login.password = Some(password);
    }
    Ok(resolved)
}

/// Connects by the plan with resolved credentials. When the login fails (`auth-failed`) with
/// values that came from the cache, the cache is dropped, the secrets fetched again and the
/// connection tried once more: a rotated password is picked up at the first failure, and one
/// failure costs at most one refetch.
pub async fn connect_with_credentials(
    plan: &ConnectPlan,
    env: &dyn Environment,
    secrets: Option<&CachedSecrets>,
) -> Result<Connected, ConnectError> {
    let resolved = resolve(plan, secrets).await?;
    match connect::connect(plan, &resolved.login, env).await {
        Err(e) if e.class() == ErrorClass::AuthFailed && secrets.is_some() => {
            let Some(secrets) = secrets else {
                return Err(e);
            };
            secrets.invalidate().await;
            let again = resolve(plan, Some(secrets)).await?;
            if again.login.password == resolved.login.password
                && again.login.user == resolved.login.user
            {
                // Nothing changed: the failure stands.
                return Err(e);
            }
            connect::connect(plan, &again.login, env).await
        }
        other => other,
    }
}

/// The story's entry point, under the name other TEA ports use: the user name and password a
/// `credentials` block resolves to, by the lookup order, from its backend. Give it the block of
/// a plan ([`ConnectPlan::credentials`]), where the GCP project and AWS region defaults are
/// filled in.
pub async fn resolve_catalog_credentials(
    credentials: &crate::config::CredentialsConfig,
    env: Arc<dyn Environment + Send + Sync>,
) -> Result<(String, crate::secret::Secret), secrets::SecretError> {
    let backend = create_secrets_backend(credentials, env).await?;
    let found = secrets::resolve(credentials, backend.as_ref(), true).await?;
    match (found.user, found.password) {
        (Some((user, _)), Some((password, _))) => Ok((user, password)),
        // `resolve` reports a missing user or password itself; this is unreachable in practice.
        _ => Err(secrets::SecretError::new(
            backend.name(),
            secrets::SecretErrorKind::Missing,
            "no user name or password",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CredentialsConfig, SecretSource};
    use crate::env::MapEnv;

    #[tokio::test]
    async fn the_story_function_resolves_user_and_password() {
        let credentials = CredentialsConfig {
            prefix: Some("POSTGRES_".into()),
            ..CredentialsConfig::new(SecretSource::Env)
        };
        let env = MapEnv::new()
            .with_var("POSTGRES_USER", "ltm")
            .with_var("POSTGRES_PASSWORD", "pw");
        let (user, password) = resolve_catalog_credentials(&credentials, Arc::new(env))
            .await
            .expect("resolves");
        assert_eq!((user.as_str(), password.expose()), ("ltm", "pw"));
        let err = resolve_catalog_credentials(&credentials, Arc::new(MapEnv::new()))
            .await
            .expect_err("nothing set");
        assert_eq!(err.kind(), secrets::SecretErrorKind::Missing);
    }
}
