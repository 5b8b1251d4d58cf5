//! From the plan's user and password sources to a [`Login`], and a connection that survives a
//! password rotated under it.
//!
//! Literal values come from the plan; `credentials` values from a secrets backend through a
//! [`CachedSecrets`] ([`crate::secrets`]); IAM / Entra tokens from a [`TokenSource`]
//! ([`crate::iam`]). [`connect_with`] retries once when a login fails with a cached value: it
//! refetches the secrets (the password may have been rotated) or replaces the refused token.

use std::sync::Arc;

use crate::connect::{self, ConnectError, Connected, Login};
use crate::env::Environment;
use crate::error::ErrorClass;
use crate::iam::{TokenError, TokenSource};
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
    secrets_for_unscrubbed(plan, env)
        .await
        .map_err(|e| e.scrubbed(&plan.tainted))
}

async fn secrets_for_unscrubbed(
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

/// Resolves the login for `plan`, fetching from `secrets` where the plan says so. A plan whose
/// password is an IAM token needs [`resolve_login`] and a token source.
pub async fn resolve(
    plan: &ConnectPlan,
    secrets: Option<&CachedSecrets>,
) -> Result<Resolved, ConnectError> {
    resolve_login(plan, secrets, None).await
}

/// A token error as a connection error (class `credentials`).
pub fn token_error(e: TokenError) -> ConnectError {
    ConnectError::new(ErrorClass::Credentials, e.to_string())
}

/// Resolves the login for `plan`: secrets from `secrets`, the password from `tokens` when the
/// plan's password is an IAM token.
pub async fn resolve_login(
    plan: &ConnectPlan,
    secrets: Option<&CachedSecrets>,
    tokens: Option<&TokenSource>,
) -> Result<Resolved, ConnectError> {
    resolve_login_unscrubbed(plan, secrets, tokens)
        .await
        .map_err(|e| e.scrubbed(&lookup_taint(plan)))
}

/// The plan's tainted values, plus every name looked up in a secrets backend that holds one
/// of them.
fn lookup_taint(plan: &ConnectPlan) -> crate::text::Tainted {
    let mut tainted = plan.tainted.clone();
    if let Some(credentials) = &plan.credentials {
        credentials.taint_lookup_names(&mut tainted);
    }
    tainted
}

async fn resolve_login_unscrubbed(
    plan: &ConnectPlan,
    secrets: Option<&CachedSecrets>,
    tokens: Option<&TokenSource>,
) -> Result<Resolved, ConnectError> {
    let mut token = None;
    for source in [&plan.user_source, &plan.password_source] {
        if let Source::Iam(kind) = source {
            let Some(tokens) = tokens else {
                return Err(ConnectError::new(
                    ErrorClass::Credentials,
                    format!(
                        "the plan logs in with an IAM token (iam:{}) but no token provider was set up",
                        kind.as_str()
                    ),
                ));
            };
            if token.is_none() {
                token = Some(tokens.token().await.map_err(token_error)?);
            }
        }
    }
    let mut resolved = resolve_secrets(plan, secrets).await?;
    if let Some(token) = token {
        resolved.login.password = Some(token.secret);
    }
    Ok(resolved)
}

async fn resolve_secrets(
    plan: &ConnectPlan,
    secrets: Option<&CachedSecrets>,
) -> Result<Resolved, ConnectError> {
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

/// Connects by the plan with resolved credentials (no IAM token source; see
/// [`connect_with`]).
pub async fn connect_with_credentials(
    plan: &ConnectPlan,
    env: &(dyn Environment + Sync),
    secrets: Option<&CachedSecrets>,
) -> Result<Connected, ConnectError> {
    connect_with(plan, env, secrets, None).await
}

/// Whether a failed login is worth one more try with a fresh token: the server refused the
/// password (`28P01`, class `auth-failed`) or turned the login away (class `rejected`: a
/// pg_hba.conf refusal, `28000`, which is also what some token integrations answer, and what a
/// refused token over TLS turns into under `prefer` when the plain-text retry is refused).
fn token_refused(e: &ConnectError) -> bool {
    matches!(e.class(), ErrorClass::AuthFailed | ErrorClass::Rejected)
}

/// Connects by the plan with resolved credentials, retrying once after a refused login:
///
/// - with an IAM token: the refused token is replaced ([`TokenSource::after_refusal`]: the
///   cache's newer token, or a fresh fetch) and the connection tried again;
/// - with values from the secrets cache (`auth-failed`): the cache is dropped, the secrets
///   fetched again and, if they changed, the connection tried again.
///
/// One failure costs at most one refetch; a second refusal is the error returned.
pub async fn connect_with(
    plan: &ConnectPlan,
    env: &(dyn Environment + Sync),
    secrets: Option<&CachedSecrets>,
    tokens: Option<&TokenSource>,
) -> Result<Connected, ConnectError> {
    let resolved = resolve_login(plan, secrets, tokens).await?;
    let iam = matches!(plan.password_source, Source::Iam(_));
    let first = connect::connect(plan, &resolved.login, env).await;
    match (first, tokens, &resolved.login.password) {
        (Err(e), Some(tokens), Some(refused)) if iam && token_refused(&e) => {
            let fresh = match tokens.after_refusal(refused).await {
                Ok(fresh) => fresh,
                // The refusal is the news; the failed refetch is context.
                Err(te) => {
                    return Err(ConnectError::new(
                        e.class(),
                        format!("{e}; and no fresh token could be had: {te}"),
                    ));
                }
            };
            if fresh.secret == *refused {
                return Err(e);
            }
            let login = Login {
                password: Some(fresh.secret),
                ..resolved.login
            };
            connect::connect(plan, &login, env).await
        }
        (Err(e), _, _) if e.class() == ErrorClass::AuthFailed && secrets.is_some() && !iam => {
            let Some(secrets) = secrets else {
                return Err(e);
            };
            secrets.invalidate().await;
            let again = resolve_login(plan, Some(secrets), tokens).await?;
            if again.login.password == resolved.login.password
                && again.login.user == resolved.login.user
            {
                // Nothing changed: the failure stands.
                return Err(e);
            }
            connect::connect(plan, &again.login, env).await
        }
        (other, _, _) => other,
    }
}

/// What must be on disk before connecting by `plan`: with `ssl_bundle: auto`, the RDS CA
/// bundle is downloaded (or taken from its cache) and checked ([`crate::rds_bundle::ensure`]).
/// A bundle that cannot be had is a `config` error (or `unreachable` when its server failed
/// and no cached copy verifies).
pub async fn prepare(plan: &ConnectPlan) -> Result<(), ConnectError> {
    prepare_unscrubbed(plan)
        .await
        .map_err(|e| e.scrubbed(&plan.tainted))
}

async fn prepare_unscrubbed(plan: &ConnectPlan) -> Result<(), ConnectError> {
    #[cfg(feature = "aws")]
    if plan.rds_bundle.is_some() {
        use crate::rds_bundle::{BundleErrorKind, ensure};
        ensure(plan).await.map_err(|e| {
            let class = match e.kind() {
                BundleErrorKind::Unavailable => ErrorClass::Unreachable,
                _ => ErrorClass::Config,
            };
            ConnectError::new(class, e.to_string())
        })?;
    }
    #[cfg(not(feature = "aws"))]
    if plan.rds_bundle.is_some() {
        return Err(ConnectError::new(
            ErrorClass::Config,
            "ssl_bundle: auto needs the cargo feature `aws`",
        ));
    }
    Ok(())
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
