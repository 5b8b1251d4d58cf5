//! tea-pgcloud: The Edge Agent's long-term-memory catalog on managed PostgreSQL.
//!
//! The offline core turns a catalog configuration (YAML, `settings.ltm.catalog`) into a
//! [`plan::ConnectPlan`]:
//!
//! ```text
//! YAML -> config::load_str -> (expand, validate) -> CatalogConfig -> provider::plan -> ConnectPlan
//! ```
//!
//! ```
//! use tea_pgcloud::{config, env::MapEnv, provider};
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
//! let config = config::load_str(yaml, "agent.yaml", &env)?;
//! let plan = provider::plan(&config, &env)?;
//! assert_eq!(plan.hosts[0].host, "/cloudsql/my-project:us-central1:ltm-catalog");
//! assert_eq!(plan.tls.as_str(), "disable"); // a unix socket never uses TLS
//! # Ok::<(), tea_pgcloud::error::Error>(())
//! ```
//!
//! [`connect::connect`] then opens a connection by the plan with libpq's TLS semantics;
//! [`credentials`] resolves the user name and password (secrets backends, [`secrets`]) or an
//! IAM / Entra token ([`iam`]), and [`pool::Pool`] keeps connections that survive token
//! rotation: it asks for credentials at every new physical connection.
//!
//! Cargo features: `aws`, `gcp` and `azure` (default) bring the official SDKs for the secrets
//! backends and the IAM token providers; `conformance` adds the live suite (`conformance`:
//! launcher, certificate factory, libpq oracle, the TLS matrix, the cloud emulators); `docker`
//! adds the container launcher (testcontainers) and the Docker API version shim. Each cloud's
//! names and rules ([`cloud`]) are compiled whatever the features, so that a plan needs none.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

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
pub mod lines;
pub mod plan;
pub mod pool;
pub mod provider;
#[cfg(feature = "aws")]
pub mod rds_bundle;
pub mod secret;
pub mod secrets;
pub mod shared;
pub mod sslmode;
pub mod text;
pub mod vectors;
pub mod yaml;
