//! A connection pool that keeps working while IAM tokens rotate.
//!
//! A pool that holds one fixed password breaks when that password is a short-lived token.
//! Here the deadpool manager asks the credential source at **every new physical connection**:
//! a token from the cache ([`crate::iam::cache`]), refreshed ahead of its expiry, or the
//! secrets cache. Connections already open are kept when their token expires (the servers
//! check a token only at login); they are replaced when they reach the maximum lifetime or fail
//! the health check on recycle. A login refused with a cached token is retried once with a
//! fresh one ([`Credentials::connect`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tea_pgcloud::{config, env::ProcessEnv, pool::Pool, provider};
//! let env = Arc::new(ProcessEnv);
//! let config = config::load_file("agent.yaml", env.as_ref())?;
//! let plan = provider::plan(&config, env.as_ref())?;
//! let pool = Pool::builder(plan, env).build().await?;
//! let client = pool.get().await?;
//! let row = client.query_one("select current_user", &[]).await?;
//! # let _ = row;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use tokio_postgres::Client;

use crate::config::PoolConfig;
use crate::connect::ConnectError;
use crate::connect::SessionState;
use crate::credentials::{Credentials, CredentialsBuilder};
use crate::env::Environment;
use crate::error::{Action, ErrorClass};
use crate::iam::TokenSource;
use crate::iam::cache::CacheOptions;
use crate::plan::{ConnectPlan, TargetSessionAttrs};
use crate::secrets::CachedSecrets;

/// The default maximum lifetime of a connection (`max_lifetime`: 1800 s, 30 minutes).
/// Connections are replaced after it (on their next recycle), so that load spreads to new
/// replicas and no connection outlives a credential by much.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// How long [`Pool::get`] waits for a free connection by default.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long opening a new connection may take by default, credentials included (a token
/// endpoint's retries, a secrets fetch, TLS, login).
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the recycle checks of an idle connection may take by default: a connection whose
/// health check does not answer in time (a peer that vanished behind a NAT) is dropped.
pub const DEFAULT_RECYCLE_TIMEOUT: Duration = Duration::from_secs(5);

/// What is checked of an idle connection before it is handed out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HealthCheck {
    /// Only that the connection is not known to be closed (no round trip).
    Fast,
    /// A round trip (an empty query): a connection the server dropped is found and replaced
    /// before the caller sees it.
    #[default]
    Verified,
}

/// Pool sizing and recycling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Connections opened when the pool is built (and so kept ready at start).
    pub min_size: usize,
    /// Connections at most.
    pub max_size: usize,
    /// A connection older than this is closed instead of being handed out again; `None` keeps
    /// connections for as long as they work.
    pub max_lifetime: Option<Duration>,
    /// The check on recycle.
    pub health_check: HealthCheck,
    /// How long [`Pool::get`] waits for a free slot when all `max_size` connections are in
    /// use (`None`: forever).
    pub wait_timeout: Option<Duration>,
    /// How long opening a new connection may take (`None`: forever).
    pub create_timeout: Option<Duration>,
    /// How long the recycle checks may take before the connection is dropped (`None`:
    /// forever).
    pub recycle_timeout: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self::from_config(&PoolConfig::default())
    }
}

impl PoolOptions {
    /// The options a catalog's `pool` block asks for, with the defaults above.
    pub fn from_config(config: &PoolConfig) -> Self {
        let max_size = config.max_size.max(1) as usize;
        Self {
            min_size: (config.min_size as usize).min(max_size),
            max_size,
            max_lifetime: match config.max_lifetime {
                0 => None,
                secs => Some(Duration::from_secs(u64::from(secs))),
            },
            health_check: HealthCheck::Verified,
            wait_timeout: Some(DEFAULT_WAIT_TIMEOUT),
            create_timeout: Some(DEFAULT_CREATE_TIMEOUT),
            recycle_timeout: Some(DEFAULT_RECYCLE_TIMEOUT),
        }
    }
}

/// What the pool has done, for tests, benches and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Physical connections opened.
    pub connections_opened: u64,
    /// Connection attempts that failed (after the retry).
    pub connect_failures: u64,
    /// Connections closed on recycle because they reached the maximum lifetime.
    pub expired: u64,
    /// Connections closed on recycle because the health check failed.
    pub unhealthy: u64,
    /// Connections closed on recycle because their server is no longer of the kind the plan's
    /// `target_session_attrs` asks for (turned read-only, demoted, promoted).
    pub wrong_kind: u64,
}

#[derive(Debug, Default)]
struct Counters {
    opened: AtomicU64,
    failures: AtomicU64,
    expired: AtomicU64,
    unhealthy: AtomicU64,
    wrong_kind: AtomicU64,
}

/// The deadpool manager: opens connections through the plan's [`Credentials`] stage
/// (credentials resolved at each connection), and recycles them by lifetime and health.
pub struct Manager {
    credentials: Credentials,
    options: PoolOptions,
    counters: Counters,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("credentials", &self.credentials)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A pooled connection: the client, and what its server reports about the session (kept
/// current while the connection runs). Derefs to [`tokio_postgres::Client`].
pub struct PoolConnection {
    client: Client,
    session: Arc<SessionState>,
}

impl PoolConnection {
    /// What the server last reported: `in_hot_standby`, `default_transaction_read_only`.
    pub fn session(&self) -> &SessionState {
        &self.session
    }
}

impl fmt::Debug for PoolConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolConnection")
            .field("closed", &self.client.is_closed())
            .field("session", &self.session)
            .finish()
    }
}

impl std::ops::Deref for PoolConnection {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for PoolConnection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// Whether an error on a pooled connection means its server is gone or can no longer serve
/// this pool: SQLSTATE 25006 (`read_only_sql_transaction`: a primary turned read-only, or a
/// standby), 57P01-57P03 (the server shutting down, crashed, or not accepting connections),
/// class 08 (connection exceptions), or a connection that is closed. [`Pool`] retires such
/// connections on recycle by what they show (closed, or the server's reported state); a
/// caller holding one can drop it from the pool at once with
/// [`PooledClient::take`](managed::Object::take).
pub fn is_fatal_to_connection(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => {
            code == &SqlState::READ_ONLY_SQL_TRANSACTION
                || code == &SqlState::ADMIN_SHUTDOWN
                || code == &SqlState::CRASH_SHUTDOWN
                || code == &SqlState::CANNOT_CONNECT_NOW
                || code.code().starts_with("08")
        }
        // No SQLSTATE: only a failure of the connection itself (I/O) is fatal; a row count,
        // a column or a type conversion is the caller's.
        None => std::error::Error::source(error)
            .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some()),
    }
}

impl managed::Manager for Manager {
    type Type = PoolConnection;
    type Error = ConnectError;

    async fn create(&self) -> Result<PoolConnection, ConnectError> {
        let connected = self.credentials.connect().await;
        match connected {
            Ok(c) => {
                let opened = self.counters.opened.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(opened, "pool: a new connection");
                Ok(PoolConnection {
                    client: c.client,
                    session: c.session,
                })
            }
            Err(e) => {
                let failures = self.counters.failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(
                    failures,
                    class = e.class().as_str(),
                    "pool: opening a connection failed"
                );
                Err(e)
            }
        }
    }

    async fn recycle(
        &self,
        conn: &mut PoolConnection,
        metrics: &Metrics,
    ) -> RecycleResult<ConnectError> {
        if let Some(max) = self.options.max_lifetime
            && metrics.age() >= max
        {
            self.counters.expired.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                age_s = metrics.age().as_secs(),
                "pool: connection retired at its maximum lifetime"
            );
            return Err(RecycleError::message(
                "the connection reached its maximum lifetime",
            ));
        }
        if conn.client.is_closed() {
            self.counters.unhealthy.fetch_add(1, Ordering::Relaxed);
            tracing::info!("pool: connection retired, the server closed it");
            return Err(RecycleError::message("the connection is closed"));
        }
        let target = self.credentials.plan().target_session_attrs;
        // What the server last reported: a primary that turned read-only or a standby that was
        // promoted says so at its session's next statement.
        if conn.session.satisfies(target) == Some(false) {
            return Err(self.wrong_kind(target));
        }
        if self.options.health_check == HealthCheck::Verified {
            // The round trip; where the pool's `target_session_attrs` asks for a kind of
            // server, it is libpq's own question, so the answer is current.
            let probe = match target {
                TargetSessionAttrs::ReadWrite | TargetSessionAttrs::ReadOnly => {
                    "SHOW transaction_read_only"
                }
                TargetSessionAttrs::Primary | TargetSessionAttrs::Standby => {
                    "SELECT pg_catalog.pg_is_in_recovery()"
                }
                TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby => "",
            };
            match conn.client.simple_query(probe).await {
                Err(e) => {
                    self.counters.unhealthy.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "pool: connection retired, its health check failed");
                    return Err(RecycleError::Backend(ConnectError::new(
                        ErrorClass::Unreachable,
                        format!("health check failed: {e}"),
                    )));
                }
                Ok(messages) if !probe.is_empty() => {
                    let value = messages.iter().find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) => {
                            row.try_get(0).ok().flatten()
                        }
                        _ => None,
                    });
                    if !probe_accepts(target, value) {
                        return Err(self.wrong_kind(target));
                    }
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }
}

/// Whether the answer to the recycle probe (`SHOW transaction_read_only`: `on` / `off`;
/// `pg_is_in_recovery()`: `t` / `f`) shows a server of the kind `target` asks for; no answer
/// does not.
fn probe_accepts(target: TargetSessionAttrs, value: Option<&str>) -> bool {
    // libpq's reading: `on` (read-only) or `t` (in recovery) is yes.
    let yes = value.map(|v| v.starts_with("on") || v == "t");
    match (target, yes) {
        (TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby, _) => true,
        (_, None) => false,
        (TargetSessionAttrs::ReadWrite | TargetSessionAttrs::Primary, Some(yes)) => !yes,
        (TargetSessionAttrs::ReadOnly | TargetSessionAttrs::Standby, Some(yes)) => yes,
    }
}

impl Manager {
    /// A connection whose server is no longer of the kind the plan's `target_session_attrs`
    /// asks for: retired, so that the next one follows the host list.
    fn wrong_kind(&self, target: TargetSessionAttrs) -> RecycleError<ConnectError> {
        self.counters.wrong_kind.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            target_session_attrs = target.as_str(),
            "pool: connection retired, its server is no longer of the kind asked for"
        );
        RecycleError::Backend(ConnectError::new(
            ErrorClass::TargetMismatch,
            format!("the server is no longer {target}"),
        ))
    }
}

/// A connection from the pool; it goes back when dropped. Derefs to [`PoolConnection`], which
/// derefs to [`tokio_postgres::Client`].
pub type PooledClient = managed::Object<Manager>;

/// Why [`Pool::get`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError {
    /// Opening a new connection failed (credentials, TLS, login, ...).
    Connect(ConnectError),
    /// No connection became free within the wait timeout.
    Timeout,
    /// The pool was closed.
    Closed,
}

impl PoolError {
    /// The error class (the contract's classes; a timeout is `unreachable`).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Connect(e) => e.class(),
            Self::Timeout => ErrorClass::Unreachable,
            Self::Closed => ErrorClass::Other,
        }
    }

    /// What the caller should do: a connection's own answer ([`ConnectError::action`]: a
    /// token endpoint that is down is `retry`, a refused identity `fix-permissions`); a
    /// timeout may pass.
    pub fn action(&self) -> Action {
        match self {
            Self::Connect(e) => e.action(),
            Self::Timeout => Action::Retry,
            Self::Closed => Action::Investigate,
        }
    }
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "{e}"),
            Self::Timeout => f.write_str("timed out waiting for a pooled connection"),
            Self::Closed => f.write_str("the pool is closed"),
        }
    }
}

impl std::error::Error for PoolError {
    /// The connection error under [`PoolError::Connect`]; its own source is the credential
    /// source's error, when that is where it failed.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) => Some(e),
            _ => None,
        }
    }
}

impl From<managed::PoolError<ConnectError>> for PoolError {
    fn from(e: managed::PoolError<ConnectError>) -> Self {
        match e {
            managed::PoolError::Backend(e) => Self::Connect(e),
            managed::PoolError::Timeout(managed::TimeoutType::Create) => {
                Self::Connect(ConnectError::new(
                    ErrorClass::Unreachable,
                    "opening a connection (credentials, TLS and login) timed out",
                ))
            }
            managed::PoolError::Timeout(_) => Self::Timeout,
            managed::PoolError::Closed => Self::Closed,
            managed::PoolError::NoRuntimeSpecified => Self::Connect(ConnectError::new(
                ErrorClass::Other,
                "the pool has no runtime for its timeouts",
            )),
            managed::PoolError::PostCreateHook(e) => {
                Self::Connect(ConnectError::new(ErrorClass::Other, e.to_string()))
            }
        }
    }
}

/// Builds a [`Pool`]: by default the credential sources the plan names, set up from `env`.
pub struct PoolBuilder {
    credentials: CredentialsBuilder,
    options: PoolOptions,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("credentials", &self.credentials)
            .field("options", &self.options)
            .finish()
    }
}

impl PoolBuilder {
    /// Sizes and recycling (default: from the plan's `pool` block).
    pub fn options(mut self, options: PoolOptions) -> Self {
        self.options = options;
        self
    }

    /// Where tokens come from, instead of the provider the plan names (tests, benches, a
    /// provider of the caller's own); see [`CredentialsBuilder::tokens`].
    pub fn tokens(mut self, tokens: TokenSource) -> Self {
        self.credentials = self.credentials.tokens(tokens);
        self
    }

    /// The token cache's behaviour when the builder makes the cache (default:
    /// [`CacheOptions::default`] with the plan's `token_refresh` mode).
    pub fn cache_options(mut self, options: CacheOptions) -> Self {
        self.credentials = self.credentials.cache_options(options);
        self
    }

    /// The secrets cache to use instead of one made from the plan's `credentials`.
    pub fn secrets(mut self, secrets: CachedSecrets) -> Self {
        self.credentials = self.credentials.secrets(secrets);
        self
    }

    /// Sets up the credentials stage, builds the pool and opens `min_size` connections. Fails
    /// when a source cannot be set up or a first connection fails.
    pub async fn build(self) -> Result<Pool, PoolError> {
        let credentials = self.credentials.build().await.map_err(PoolError::Connect)?;
        Pool::with_credentials(credentials, self.options).await
    }
}

/// A pool of connections made by one plan. Cheap to clone (clones share the connections).
#[derive(Clone)]
pub struct Pool {
    inner: managed::Pool<Manager>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.inner.status())
            .field("manager", self.inner.manager())
            .finish()
    }
}

impl Pool {
    /// A builder for `plan`, reading `env` for credentials and files.
    pub fn builder(plan: ConnectPlan, env: Arc<dyn Environment>) -> PoolBuilder {
        PoolBuilder {
            options: PoolOptions::from_config(&plan.pool),
            credentials: Credentials::builder(plan, env),
        }
    }

    /// A pool that opens its connections through `credentials`, sized by `options`; starts
    /// the token refresher (`token_refresh: ahead`) and opens `min_size` connections.
    pub async fn with_credentials(
        credentials: Credentials,
        options: PoolOptions,
    ) -> Result<Self, PoolError> {
        credentials.start();
        let manager = Manager {
            credentials,
            options,
            counters: Counters::default(),
        };
        let inner = managed::Pool::builder(manager)
            .max_size(options.max_size.max(1))
            .wait_timeout(options.wait_timeout)
            .create_timeout(options.create_timeout)
            .recycle_timeout(options.recycle_timeout)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| PoolError::Connect(ConnectError::new(ErrorClass::Other, e.to_string())))?;
        let pool = Pool { inner };
        pool.warm(options.min_size).await?;
        Ok(pool)
    }

    /// A connection: an idle one that passes the recycle checks, or a new one (with fresh
    /// credentials).
    pub async fn get(&self) -> Result<PooledClient, PoolError> {
        self.inner.get().await.map_err(PoolError::from)
    }

    /// Opens connections until `n` are open (at most `max_size`), concurrently.
    pub async fn warm(&self, n: usize) -> Result<(), PoolError> {
        let n = n.min(self.inner.status().max_size);
        let mut opening = tokio::task::JoinSet::new();
        for _ in 0..n.saturating_sub(self.inner.status().size) {
            let pool = self.clone();
            opening.spawn(async move { pool.get().await });
        }
        // Every connection is held until all are open, so that each `get` opens a new one.
        let mut held = Vec::with_capacity(n);
        while let Some(result) = opening.join_next().await {
            let opened = result.map_err(|e| {
                PoolError::Connect(ConnectError::new(
                    ErrorClass::Other,
                    format!("opening a connection stopped: {e}"),
                ))
            })?;
            held.push(opened?);
        }
        drop(held);
        Ok(())
    }

    /// Sizes: open connections, idle ones, callers waiting.
    pub fn status(&self) -> managed::Status {
        self.inner.status()
    }

    /// What the pool has done so far.
    pub fn stats(&self) -> PoolStats {
        let c = &self.inner.manager().counters;
        PoolStats {
            connections_opened: c.opened.load(Ordering::Relaxed),
            connect_failures: c.failures.load(Ordering::Relaxed),
            expired: c.expired.load(Ordering::Relaxed),
            unhealthy: c.unhealthy.load(Ordering::Relaxed),
            wrong_kind: c.wrong_kind.load(Ordering::Relaxed),
        }
    }

    /// Where the pool's tokens come from, if it logs in with IAM tokens.
    pub fn tokens(&self) -> Option<&TokenSource> {
        self.inner.manager().credentials.tokens()
    }

    /// The credentials stage the pool connects through.
    pub fn credentials(&self) -> &Credentials {
        &self.inner.manager().credentials
    }

    /// The options in effect.
    pub fn options(&self) -> PoolOptions {
        self.inner.manager().options
    }

    /// Closes the pool: idle connections are dropped, waiting callers get [`PoolError::Closed`].
    pub fn close(&self) {
        self.inner.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn the_recycle_probe_reads_answers_as_libpq_does() {
        use TargetSessionAttrs as T;
        for (target, value, accepted) in [
            (T::ReadWrite, Some("off"), true),
            (T::ReadWrite, Some("on"), false),
            (T::ReadOnly, Some("on"), true),
            (T::ReadOnly, Some("off"), false),
            (T::Primary, Some("f"), true),
            (T::Primary, Some("t"), false),
            (T::Standby, Some("t"), true),
            (T::Standby, Some("f"), false),
            (T::ReadWrite, None, false),
            (T::Standby, None, false),
            (T::Any, None, true),
            (T::PreferStandby, Some("f"), true),
        ] {
            assert_eq!(probe_accepts(target, value), accepted, "{target} {value:?}");
        }
    }

    #[test]
    fn build_and_get_futures_are_send() {
        // Pools are built and used from spawned tasks: their futures must be `Send` (a
        // reference to a non-`Sync` value held across an await breaks that silently).
        let env = MapEnv::new();
        let yaml =
            "provider: aws\nhost: db.abc.us-east-1.rds.amazonaws.com\nuser: app\niam_auth: true\n";
        let config = crate::config::load_str(yaml, "t.yaml", &env).expect("valid");
        let plan = crate::provider::plan(&config, &env).expect("a plan");
        let build = Pool::builder(plan, Arc::new(env)).build();
        assert_send(&build);
        drop(build);
    }

    /// A token provider that always fails with one kind of error.
    #[derive(Debug)]
    struct Failing(crate::iam::TokenErrorKind);

    impl crate::iam::CredentialProvider for Failing {
        fn name(&self) -> &'static str {
            "iam:test"
        }

        fn key(&self) -> String {
            format!("failing-{}", self.0.as_str())
        }

        fn fetch(&self) -> crate::iam::TokenFuture<'_> {
            let kind = self.0;
            Box::pin(async move {
                Err(crate::iam::TokenError::new(
                    "iam:test",
                    kind,
                    "the identity service said no",
                ))
            })
        }
    }

    #[tokio::test]
    async fn a_token_errors_kind_stays_visible_through_the_pool_and_the_catalog() {
        use crate::error::Action;
        use crate::iam::{TokenError, TokenErrorKind};
        let env = MapEnv::new();
        let yaml =
            "provider: aws\nhost: db.abc.us-east-1.rds.amazonaws.com\nuser: app\niam_auth: true\n";
        let config = crate::config::load_str(yaml, "t.yaml", &env).expect("valid");
        let plan = crate::provider::plan(&config, &env).expect("a plan");
        let env: Arc<dyn Environment> = Arc::new(env);
        for (kind, action) in [
            (TokenErrorKind::Unavailable, Action::Retry),
            (TokenErrorKind::Denied, Action::FixPermissions),
            (TokenErrorKind::Config, Action::FixConfig),
        ] {
            let err = Pool::builder(plan.clone(), Arc::clone(&env))
                .tokens(TokenSource::PerConnect(Arc::new(Failing(kind))))
                .build()
                .await
                .expect_err("the first connection needs a token");
            // The class says only "credentials"; the action tells retryable from fatal.
            assert_eq!(err.class(), ErrorClass::Credentials);
            assert_eq!(err.action(), action, "{kind:?}");
            let token = std::error::Error::source(&err)
                .and_then(|connect| connect.source())
                .and_then(|e| e.downcast_ref::<TokenError>())
                .expect("the token error at the bottom of the chain");
            assert_eq!(token.kind(), kind);
            let catalog = crate::catalog::CatalogError::from(err);
            assert_eq!(catalog.action(), action, "{kind:?} through the catalog");
            assert!(std::error::Error::source(&catalog).is_some());
            let any = crate::Error::from(catalog);
            assert_eq!(any.action(), action, "{kind:?} through the crate's error");
            assert_eq!(any.class(), ErrorClass::Credentials);
        }
    }
}
