//! The credentials stage: from a plan to a [`Login`] and a connection, with a password or a
//! token that may rotate under it.
//!
//! [`Credentials::for_plan`] sets up what the plan's user and password sources need, once:
//! the RDS CA bundle (`ssl_bundle: auto`), a secrets cache ([`CachedSecrets`],
//! [`crate::secrets`]) when a value comes from a `credentials` backend, and a token source
//! ([`TokenSource`], [`crate::iam`]) when the password is an IAM / Entra token, refreshed as
//! the plan's `pool.token_refresh` says. [`Credentials::login`] resolves the values, each with
//! where it came from; [`Credentials::connect`] opens a connection and retries once when a
//! login fails with a cached value: it refetches the secrets (the password may have been
//! rotated) or replaces the refused token. The pool ([`crate::pool`]), `ping`, `resolve` and
//! the catalog all connect through this one stage.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tea_pgcloud::{config, credentials::Credentials, env::ProcessEnv, provider};
//! let env = Arc::new(ProcessEnv);
//! let config = config::load_file("agent.yaml", env.as_ref())?;
//! let plan = provider::plan(&config, env.as_ref())?;
//! let credentials = Credentials::for_plan(plan, env).await?;
//! let login = credentials.login().await?;
//! println!("user from {}, password from {}", login.user_from, login.password_from);
//! let connected = credentials.connect().await?;
//! # let _ = connected;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use crate::connect::{self, ConnectError, Connected};
use crate::env::Environment;
use crate::error::ErrorClass;
use crate::iam::cache::{CacheOptions, TokenCaches};
use crate::iam::{SystemWallClock, TokenSource};
use crate::plan::{ConnectPlan, Source};
use crate::secrets::{
    self, CachedSecrets, DEFAULT_TTL, SecretsBackend, SystemClock, create_secrets_backend,
};

pub use crate::connect::Login;

/// Whether some part of the login comes from the `credentials` backend.
fn from_backend(plan: &ConnectPlan) -> bool {
    let backend = |s: &Source| matches!(s, Source::Env(_) | Source::Secret { .. });
    plan.credentials.is_some()
        && (backend(&plan.password_source) || (plan.user.is_none() && backend(&plan.user_source)))
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

/// Sets up a [`Credentials`] stage, with sources of the caller's own where the plan's are not
/// wanted (tests, benches, a token provider the caller built).
pub struct CredentialsBuilder {
    plan: ConnectPlan,
    env: Arc<dyn Environment>,
    tokens: Option<TokenSource>,
    secrets: Option<CachedSecrets>,
    cache_options: CacheOptions,
}

impl fmt::Debug for CredentialsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsBuilder")
            .field("plan", &self.plan)
            .field("tokens", &self.tokens)
            .field("cache_options", &self.cache_options)
            .finish_non_exhaustive()
    }
}

impl CredentialsBuilder {
    /// Where tokens come from, instead of the provider the plan names.
    pub fn tokens(mut self, tokens: TokenSource) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The secrets cache to use instead of one made from the plan's `credentials`.
    pub fn secrets(mut self, secrets: CachedSecrets) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// The token cache's behaviour when the stage makes the cache (default:
    /// [`CacheOptions::default`] with the plan's `pool.token_refresh` mode).
    pub fn cache_options(mut self, options: CacheOptions) -> Self {
        self.cache_options = options;
        self
    }

    /// Sets up what the plan needs: the RDS bundle on disk (`ssl_bundle: auto`), the token
    /// provider behind the process-wide token cache (one cache per identity, so that pools and
    /// pings of one process share tokens), and the secrets cache. Nothing is fetched yet.
    pub async fn build(self) -> Result<Credentials, ConnectError> {
        let Self {
            plan,
            env,
            mut tokens,
            mut secrets,
            cache_options,
        } = self;
        prepare(&plan).await?;
        if tokens.is_none()
            && let Source::Iam(_) = plan.password_source
        {
            let provider = crate::iam::provider_for(&plan, Arc::clone(&env))
                .await
                .map_err(|e| ConnectError::from(e).scrubbed(&plan.tainted))?;
            let cache = TokenCaches::global().get_or_insert(
                provider,
                cache_options,
                Arc::new(SystemWallClock),
            );
            tokens = Some(TokenSource::Cached(cache));
        }
        if secrets.is_none() {
            secrets = secrets_for(&plan, Arc::clone(&env))
                .await
                .map_err(|e| e.scrubbed(&plan.tainted))?;
        }
        Ok(Credentials {
            plan,
            env,
            secrets,
            tokens,
        })
    }
}

/// The credentials stage of one plan: it owns the secrets cache and the token source the plan
/// needs, resolves a [`Login`] and connects. Cheap to share behind an `Arc`; the caches inside
/// are shared by clones of their handles.
pub struct Credentials {
    plan: ConnectPlan,
    env: Arc<dyn Environment>,
    secrets: Option<CachedSecrets>,
    tokens: Option<TokenSource>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("plan", &self.plan)
            .field("secrets", &self.secrets)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The stage for `plan` with the sources the plan names, reading `env` for variables and
    /// files; see [`CredentialsBuilder::build`].
    pub async fn for_plan(
        plan: ConnectPlan,
        env: Arc<dyn Environment>,
    ) -> Result<Self, ConnectError> {
        Self::builder(plan, env).build().await
    }

    /// A builder, for sources of the caller's own.
    pub fn builder(plan: ConnectPlan, env: Arc<dyn Environment>) -> CredentialsBuilder {
        let cache_options = CacheOptions {
            mode: plan.pool.token_refresh,
            ..CacheOptions::default()
        };
        CredentialsBuilder {
            plan,
            env,
            tokens: None,
            secrets: None,
            cache_options,
        }
    }

    /// The plan.
    pub fn plan(&self) -> &ConnectPlan {
        &self.plan
    }

    /// Where tokens come from, when the plan logs in with IAM / Entra tokens.
    pub fn tokens(&self) -> Option<&TokenSource> {
        self.tokens.as_ref()
    }

    /// The secrets cache, when a value comes from a `credentials` backend.
    pub fn secrets(&self) -> Option<&CachedSecrets> {
        self.secrets.as_ref()
    }

    /// Starts what runs in the background: the token cache's refresher when the cache's mode
    /// is [`crate::config::TokenRefresh::Ahead`] (a pool calls this; a one-shot connect need not).
    pub fn start(&self) {
        if let Some(TokenSource::Cached(cache)) = &self.tokens {
            cache.start();
        }
    }

    /// The login: the values from the secrets cache and the token source (fetched when not
    /// cached), each with where it came from, in the form of the plan's sources
    /// (`env:NAME`, `secret:aws:prod/ltm#password`, `iam:rds`).
    pub async fn login(&self) -> Result<Login, ConnectError> {
        self.login_unscrubbed()
            .await
            .map_err(|e| e.scrubbed(&lookup_taint(&self.plan)))
    }

    async fn login_unscrubbed(&self) -> Result<Login, ConnectError> {
        let plan = &self.plan;
        let mut token = None;
        for source in [&plan.user_source, &plan.password_source] {
            if let Source::Iam(kind) = source {
                let Some(tokens) = &self.tokens else {
                    return Err(ConnectError::new(
                        ErrorClass::Credentials,
                        format!(
                            "the plan logs in with an IAM token (iam:{}) but no token provider was set up",
                            kind.as_str()
                        ),
                    ));
                };
                if token.is_none() {
                    token = Some(tokens.token().await.map_err(ConnectError::from)?);
                }
            }
        }
        let mut login = self.login_from_secrets().await?;
        if let Some(token) = token {
            login.password = Some(token.secret);
        }
        Ok(login)
    }

    async fn login_from_secrets(&self) -> Result<Login, ConnectError> {
        let plan = &self.plan;
        let mut login = Login {
            user_from: plan.user_source.clone(),
            password_from: plan.password_source.clone(),
            ..Login::default()
        };
        if !from_backend(plan) {
            return Ok(login);
        }
        let (Some(credentials), Some(secrets)) = (&plan.credentials, &self.secrets) else {
            return Err(ConnectError::new(
                ErrorClass::Credentials,
                "the plan names a secrets backend but none was set up",
            ));
        };
        let need_user = plan.user.is_none();
        let found = secrets::resolve(credentials, secrets, need_user)
            .await
            .map_err(ConnectError::from)?;
        let backend = secrets.name();
        // The same form as the plan's sources: `env:NAME`, `secret:aws:prod/ltm#password`.
        let source = |key: &str| {
            if backend == "env" {
                Source::Env(key.to_string())
            } else {
                Source::Secret {
                    backend,
                    key: secrets.locate(key),
                }
            }
        };
        if let Some((user, key)) = found.user {
            login.user_from = source(&key);
            login.user = Some(user);
        }
        if let Some((password, key)) = found.password {
            login.password_from = source(&key);
            login.password = Some(password);
        }
        Ok(login)
    }

    /// Connects by the plan, retrying once after a refused login:
    ///
    /// - with an IAM token: the refused token is replaced ([`TokenSource::after_refusal`]: the
    ///   cache's newer token, or a fresh fetch) and the connection tried again;
    /// - with values from the secrets cache (`auth-failed`): the cache is dropped, the
    ///   secrets fetched again and, if they changed, the connection tried again.
    ///
    /// One failure costs at most one refetch; a second refusal is the error returned.
    pub async fn connect(&self) -> Result<Connected, ConnectError> {
        let plan = &self.plan;
        let env = self.env.as_ref();
        let login = self.login().await?;
        let iam = matches!(plan.password_source, Source::Iam(_));
        let first = connect::connect(plan, &login, env).await;
        match (first, &self.tokens, &login.password) {
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
                    ..login
                };
                connect::connect(plan, &login, env).await
            }
            (Err(e), _, _) if e.class() == ErrorClass::AuthFailed && !iam => {
                let Some(secrets) = &self.secrets else {
                    return Err(e);
                };
                secrets.invalidate().await;
                let again = self.login().await?;
                if again.password == login.password && again.user == login.user {
                    // Nothing changed: the failure stands.
                    return Err(e);
                }
                connect::connect(plan, &again, env).await
            }
            (other, _, _) => other,
        }
    }
}

/// The secrets cache a plan needs: `None` when no value comes from a secrets backend.
async fn secrets_for(
    plan: &ConnectPlan,
    env: Arc<dyn Environment>,
) -> Result<Option<CachedSecrets>, ConnectError> {
    let Some(credentials) = &plan.credentials else {
        return Ok(None);
    };
    if !from_backend(plan) {
        return Ok(None);
    }
    let backend = create_secrets_backend(credentials, env)
        .await
        .map_err(ConnectError::from)?;
    Ok(Some(CachedSecrets::new(
        backend,
        DEFAULT_TTL,
        Arc::new(SystemClock),
    )))
}

/// Whether a failed login is worth one more try with a fresh token: the server refused the
/// password (`28P01`, class `auth-failed`) or turned the login away (class `rejected`: a
/// pg_hba.conf refusal, `28000`, which is also what some token integrations answer, and what a
/// refused token over TLS turns into under `prefer` when the plain-text retry is refused).
fn token_refused(e: &ConnectError) -> bool {
    matches!(e.class(), ErrorClass::AuthFailed | ErrorClass::Rejected)
}

/// What must be on disk before connecting by `plan`: with `ssl_bundle: auto`, the RDS CA
/// bundle is downloaded (or taken from its cache) and checked (`rds_bundle::ensure`).
/// A bundle that cannot be had is a `config` error (or `unreachable` when its server failed
/// and no cached copy verifies).
async fn prepare(plan: &ConnectPlan) -> Result<(), ConnectError> {
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
    env: Arc<dyn Environment>,
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
