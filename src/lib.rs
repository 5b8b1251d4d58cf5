//! tea-pgcloud: The Edge Agent's long-term-memory catalog on managed PostgreSQL.
//!
//! The paved path, re-exported here at the crate root:
//!
//! ```text
//! YAML -> load_str / load_file -> CatalogConfig -> plan -> ConnectPlan
//!      -> Credentials::for_plan -> Credentials::connect | Pool | PostgresCatalog
//! ```
//!
//! The offline half turns a catalog configuration (YAML, `settings.ltm.catalog`) into a
//! [`ConnectPlan`] and needs no server and no cloud:
//!
//! ```
//! use tea_pgcloud::{MapEnv, load_str, plan};
//! let yaml = "
//! settings:
//!   ltm:
//!     catalog:
//!       type: postgres
//!       provider: gcp
//!       project: my-project
//!       region: us-central1
//!       instance: ltm-catalog
//!       database: ltm
//! ";
//! let env = MapEnv::new();
//! let config = load_str(yaml, "agent.yaml", &env)?;
//! let plan = plan(&config, &env)?;
//! assert_eq!(plan.hosts[0].host, "/cloudsql/my-project:us-central1:ltm-catalog");
//! assert_eq!(plan.tls.as_str(), "disable"); // a unix socket never uses TLS
//! # Ok::<(), tea_pgcloud::Error>(())
//! ```
//!
//! The live half: [`Credentials`] sets up what the plan's user and password need (a secrets
//! backend, [`secrets`]; an IAM / Entra token provider, [`iam`]) and connects with libpq's TLS
//! semantics ([`connect`]); [`Pool`] keeps connections that survive token rotation (it asks
//! the credentials stage at every new physical connection); [`PostgresCatalog`] is the
//! catalog on top. Every error converts into [`Error`], whose [`Error::action`] says whether to
//! retry, fix the configuration, fix permissions or fix the server:
//!
//! ```no_run
//! # async fn demo() -> Result<(), tea_pgcloud::Error> {
//! use std::sync::Arc;
//! use tea_pgcloud::{Credentials, Pool, PostgresCatalog, ProcessEnv, load_file, plan};
//! let env = Arc::new(ProcessEnv);
//! let config = load_file("agent.yaml", env.as_ref())?;
//! let plan = plan(&config, env.as_ref())?;
//! // One connection, as `tea-pgcloud ping` makes it:
//! let credentials = Credentials::for_plan(plan.clone(), env.clone()).await?;
//! let connected = credentials.connect().await?;
//! # let _ = connected;
//! // A pool, as the catalog keeps one:
//! let pool = Pool::builder(plan, env.clone()).build().await?;
//! let client = pool.get().await?;
//! # let _ = client;
//! // The catalog, from the same configuration:
//! let catalog = PostgresCatalog::connect(&config, env).await?;
//! let entry = catalog.get_entry("notes/today").await?;
//! # let _ = entry;
//! # Ok(()) }
//! ```
//!
//! Cargo features: `aws`, `gcp` and `azure` (default) bring the official SDKs for the secrets
//! backends and the IAM token providers; `conformance` adds the live suite (`conformance`:
//! launcher, certificate factory, libpq oracle, the TLS matrix, the cloud emulators); `docker`
//! adds the container launcher (testcontainers) and the Docker API version shim. Each cloud's
//! names and rules ([`cloud`]) are compiled whatever the features, so that a plan needs none.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod catalog;
pub mod cloud;
pub mod config;
#[cfg(feature = "conformance")]
#[path = "../conformance/mod.rs"]
pub mod conformance;
pub mod connect;
pub mod conninfo;
pub mod credentials;
pub mod env;
pub mod error;
pub mod iam;
mod lines;
pub mod plan;
pub mod pool;
pub mod provider;
#[cfg(feature = "aws")]
pub mod rds_bundle;
pub mod secret;
pub mod secrets;
mod shared;
pub mod sslmode;
pub mod support;
pub mod text;
pub mod vectors;
mod yaml;

pub use catalog::{CatalogError, PostgresCatalog};
pub use config::{CatalogConfig, load_file, load_str};
pub use connect::{ConnectError, Connected};
pub use credentials::{Credentials, Login};
pub use env::{Environment, MapEnv, ProcessEnv, SharedEnv};
pub use error::{Action, ConfigError, ErrorClass};
pub use iam::TokenError;
pub use plan::ConnectPlan;
pub use pool::{Pool, PoolError, PoolOptions, PooledClient};
pub use provider::{build_provider_connection_string, plan};
pub use secret::Secret;
pub use secrets::SecretError;

/// Any error of this crate: each stage's own error, kept whole ([`Error::source`] is the
/// stage error's source: the credential source's error under a connection error).
///
/// [`Error::class`] is the contract's class (`ping --json`, the vector files);
/// [`Error::action`] is what the caller should do, visible through every layer: a token
/// endpoint that is down is [`Action::Retry`] whether the token was asked for by
/// [`Credentials::connect`], a [`Pool`] or a [`PostgresCatalog`].
///
/// [`Error::source`]: std::error::Error::source
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The configuration or the plan ([`load_str`], [`plan()`]).
    Config(ConfigError),
    /// Setting up the credentials, or connecting ([`Credentials`]).
    Connect(ConnectError),
    /// Getting a connection from a [`Pool`].
    Pool(PoolError),
    /// A catalog operation ([`PostgresCatalog`]).
    Catalog(CatalogError),
    /// A secrets backend, called directly ([`secrets`]).
    Secret(SecretError),
    /// A token provider, called directly ([`iam`]).
    Token(TokenError),
}

impl Error {
    /// The contract's class (`config`, `credentials`, `auth-failed`, ...).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Config(e) => e.class(),
            Self::Connect(e) => e.class(),
            Self::Pool(e) => e.class(),
            Self::Catalog(e) => e.class(),
            Self::Secret(e) => e.class(),
            Self::Token(_) => ErrorClass::Credentials,
        }
    }

    /// What the caller should do about it.
    pub fn action(&self) -> Action {
        match self {
            Self::Config(_) => Action::FixConfig,
            Self::Connect(e) => e.action(),
            Self::Pool(e) => e.action(),
            Self::Catalog(e) => e.action(),
            Self::Secret(e) => e.kind().action(),
            Self::Token(e) => e.kind().action(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(e) => e.fmt(f),
            Self::Connect(e) => e.fmt(f),
            Self::Pool(e) => e.fmt(f),
            Self::Catalog(e) => e.fmt(f),
            Self::Secret(e) => e.fmt(f),
            Self::Token(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    /// The stage error's own source (the display is the stage error's), so that a report that
    /// walks the chain says each message once.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(e) => e.source(),
            Self::Connect(e) => e.source(),
            Self::Pool(e) => e.source(),
            Self::Catalog(e) => e.source(),
            Self::Secret(e) => e.source(),
            Self::Token(e) => e.source(),
        }
    }
}

macro_rules! from_stage_error {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Self::$variant(e)
            }
        })*
    };
}

from_stage_error!(
    Config(ConfigError),
    Connect(ConnectError),
    Pool(PoolError),
    Catalog(CatalogError),
    Secret(SecretError),
    Token(TokenError),
);
