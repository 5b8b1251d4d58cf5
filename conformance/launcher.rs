//! Throwaway PostgreSQL servers for the conformance suite (DESIGN.md, "Launching PostgreSQL for
//! tests"). [`PgServer`] is a server from either launcher, chosen by [`Launcher`]
//! (`TEA_PG_LAUNCHER`: `native`, `docker` or `auto`), and holds it as a [`Server`], the trait
//! every launched server implements:
//!
//! - `native` (`conformance::native`, [`NativeServer`]): the machine's own server binaries;
//! - `docker` (cargo feature `docker`, `conformance::docker`, `DockerServer`): a container
//!   through testcontainers, image `TEA_PG_IMAGE`.
//!
//! Either way the server listens on 127.0.0.1, has the login role `tea` with a random
//! SCRAM-SHA-256 password, and runs a [`Profile`]: the TLS files the server presents and its
//! `pg_hba.conf` lines. [`PgServer::apply`] switches to another profile, proven in effect before
//! it returns; dropping the [`PgServer`] stops the server and removes what it left behind, also
//! when a test panics, and a watchdog does the same when the launching process ends without
//! dropping it (`conformance::server`, "When the launching process ends").
//!
//! The shared types and the native launcher's public items are re-exported here, so that paths
//! such as `conformance::launcher::{Profile, TlsFiles, LaunchError, NativeServer, find_bindir}`
//! keep working.

use std::env;
use std::path::{Path, PathBuf};

#[cfg(feature = "docker")]
use super::docker::DockerServer;
pub use super::native::{NativeServer, find_bindir};
pub use super::server::{ApplyMode, LaunchError, Profile, Server, TlsFiles, WATCHDOG_NAME};

/// Which launcher runs PostgreSQL (DESIGN.md, "Launching PostgreSQL for tests").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launcher {
    /// The machine's server binaries ([`find_bindir`]).
    Native,
    /// A container from this image (`name:tag`), through testcontainers (cargo feature
    /// `docker`).
    Docker {
        /// The image, e.g. `tea-pgcloud/postgres:17` or `postgres:17-alpine`.
        image: String,
    },
}

impl Launcher {
    /// The launcher `TEA_PG_LAUNCHER` names (`native`, `docker` or `auto`; unset means `auto`).
    /// `auto` picks the native binaries when they exist, else Docker when an engine answers,
    /// else fails saying how to get either. The Docker image is `TEA_PG_IMAGE` (see
    /// `conformance::docker::default_image`).
    pub fn from_env() -> Result<Self, LaunchError> {
        let name = env::var("TEA_PG_LAUNCHER").unwrap_or_default();
        Self::parse(if name.trim().is_empty() {
            "auto"
        } else {
            name.trim()
        })
    }

    /// `native`, `docker` or `auto` (see [`Launcher::from_env`]).
    pub fn parse(name: &str) -> Result<Self, LaunchError> {
        match name {
            "native" => Ok(Self::Native),
            "docker" => Self::docker_default(),
            "auto" => {
                let native = match find_bindir() {
                    Ok(_) => return Ok(Self::Native),
                    Err(e) => e,
                };
                match Self::docker_default() {
                    Ok(docker) if docker_engine_answers() => Ok(docker),
                    _ => Err(LaunchError::new(format!(
                        "no PostgreSQL to launch: {}; and no Docker engine answers (start one and \
                         build with `--features docker`, then TEA_PG_LAUNCHER=docker)",
                        native.what()
                    ))),
                }
            }
            other => Err(LaunchError::new(format!(
                "TEA_PG_LAUNCHER / --launcher: unknown launcher {other:?} (expected native, \
                 docker or auto)"
            ))),
        }
    }

    #[cfg(feature = "docker")]
    fn docker_default() -> Result<Self, LaunchError> {
        Ok(Self::Docker {
            image: super::docker::default_image(),
        })
    }

    #[cfg(not(feature = "docker"))]
    fn docker_default() -> Result<Self, LaunchError> {
        Err(LaunchError::new(
            "the docker launcher is not in this build: build with `--features docker`",
        ))
    }

    /// `native`, or `docker (IMAGE)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Native => "native".to_owned(),
            Self::Docker { image } => format!("docker ({image})"),
        }
    }

    /// Starts a server with `profile`.
    pub fn start(&self, profile: &Profile) -> Result<PgServer, LaunchError> {
        match self {
            Self::Native => NativeServer::start(profile).map(PgServer::new),
            #[cfg(feature = "docker")]
            Self::Docker { image } => DockerServer::start(image, profile).map(PgServer::new),
            #[cfg(not(feature = "docker"))]
            Self::Docker { .. } => Err(LaunchError::new(
                "the docker launcher is not in this build: build with `--features docker`",
            )),
        }
    }
}

#[cfg(feature = "docker")]
fn docker_engine_answers() -> bool {
    super::docker::engine_answers()
}

#[cfg(not(feature = "docker"))]
fn docker_engine_answers() -> bool {
    false
}

/// A running PostgreSQL server from either launcher, with the login role `tea` (random SCRAM
/// password) and a [`Profile`] applied; stopped and cleaned up on drop, also when a test panics.
///
/// It owns the launcher's [`Server`] and forwards to it; it is `Send` and `Sync`, so that a
/// server can live in a `static` shared by a test target's threads.
#[derive(Debug)]
pub struct PgServer(Box<dyn Server + Send + Sync>);

impl PgServer {
    /// A TLS server for tests and benches: its certificate is `factory`'s good server
    /// certificate (names `localhost` and 127.0.0.1, signed by the factory's root), with these
    /// `pg_hba.conf` lines; `client_ca` sets `ssl_ca_file` to the root, for client
    /// certificates.
    ///
    /// # Panics
    /// When the certificate or the server cannot be made (a test cannot go on without them).
    pub fn start_tls(
        name: &str,
        factory: &super::certs::CertFactory,
        hba: &[&str],
        client_ca: bool,
    ) -> Self {
        let pem = factory
            .server(super::certs::ServerCertKind::Good)
            .expect("a server certificate");
        Self::start_tls_serving(name, factory, &pem, hba, client_ca)
    }

    /// [`PgServer::start_tls`] serving the given certificate (and chain) and key.
    pub fn start_tls_serving(
        name: &str,
        factory: &super::certs::CertFactory,
        pem: &super::certs::Pem,
        hba: &[&str],
        client_ca: bool,
    ) -> Self {
        Self::start(&Profile::new(
            name,
            Some(TlsFiles {
                cert_pem: pem.cert.clone(),
                key_pem: pem.key.clone(),
                client_ca_pem: client_ca.then(|| factory.root_pem().to_string()),
            }),
            hba.iter().copied(),
        ))
        .expect("a TLS server")
    }

    /// Holds a server that a launcher started.
    pub fn new(server: impl Server + Send + Sync) -> Self {
        Self(Box::new(server))
    }

    /// Starts a server with the launcher of [`Launcher::from_env`].
    pub fn start(profile: &Profile) -> Result<PgServer, LaunchError> {
        Launcher::from_env()?.start(profile)
    }

    /// Starts a server from the machine's binaries, whatever `TEA_PG_LAUNCHER` says (for tests
    /// of what only the native launcher has: its directory, restarts, the unix socket).
    pub fn start_native(profile: &Profile) -> Result<PgServer, LaunchError> {
        Launcher::Native.start(profile)
    }

    /// `native` or `docker`.
    pub fn launcher(&self) -> &'static str {
        self.0.launcher()
    }

    /// Switches to another profile; the new profile is proven in effect before this returns.
    pub fn apply(&mut self, profile: &Profile) -> Result<(), LaunchError> {
        self.0.apply(profile)
    }

    /// [`PgServer::apply`], choosing how (native only: a container's server is its main
    /// process, so the docker launcher always reloads and refuses [`ApplyMode::Restart`]).
    pub fn apply_with(
        &mut self,
        profile: &Profile,
        mode: ApplyMode,
    ) -> Result<ApplyMode, LaunchError> {
        self.0.apply_with(profile, mode)
    }

    /// The TCP port, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// The TCP host to connect to: `127.0.0.1`.
    pub fn host(&self) -> &str {
        self.0.host()
    }

    /// The unix socket directory (native only; a container's socket is not on the host).
    pub fn socket_dir(&self) -> Option<&Path> {
        self.0.socket_dir()
    }

    /// The server's private directory (native only).
    pub fn dir(&self) -> Option<&Path> {
        self.0.dir()
    }

    /// The server binaries in use (native only).
    pub fn bindir(&self) -> Option<&Path> {
        self.0.bindir()
    }

    /// The server log's path (native only; a container's log is read with
    /// [`PgServer::log_tail`]).
    pub fn log_path(&self) -> Option<PathBuf> {
        self.0.log_path()
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.0.log_tail(lines)
    }

    /// The login role the tests connect as: `tea`.
    pub fn user(&self) -> &str {
        self.0.user()
    }

    /// The role's password: random per server (hex), never logged.
    pub fn password(&self) -> &str {
        self.0.password()
    }

    /// The superuser `postgres`'s password for logins over TCP; `None` for the native launcher,
    /// whose superuser logs in over the unix socket ([`PgServer::socket_dir`]) with `trust`.
    pub fn superuser_password(&self) -> Option<&str> {
        self.0.superuser_password()
    }

    /// The server's version, e.g. `15.18`.
    pub fn server_version(&self) -> &str {
        self.0.server_version()
    }

    /// The profile in effect.
    pub fn profile(&self) -> &Profile {
        self.0.profile()
    }

    /// Runs SQL as the superuser (`psql -X -q -At -v ON_ERROR_STOP=1`, SQL on standard input)
    /// for harness set-up such as `ALTER ROLE`; returns each query's rows, one per line, `|`
    /// between columns, no command tags.
    pub fn admin_sql(&self, sql: &str) -> Result<String, LaunchError> {
        self.0.admin_sql(sql)
    }

    /// Creates database `db` owned by `owner` (PostgreSQL 15 lets only the owner create
    /// tables in a new database's `public` schema). Both names are quoted as identifiers.
    pub fn create_database(&self, db: &str, owner: &str) -> Result<(), LaunchError> {
        let ident = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        self.admin_sql(&format!(
            "CREATE DATABASE {} OWNER {}",
            ident(db),
            ident(owner)
        ))
        .map(|_| ())
    }

    /// The container behind a docker-launched server.
    #[cfg(feature = "docker")]
    pub fn docker(&self) -> Option<&DockerServer> {
        let server: &dyn std::any::Any = &*self.0;
        server.downcast_ref()
    }

    /// A `tokio_postgres` configuration for the superuser: over the unix socket (native) or
    /// over TCP with its password (docker); `dbname` `postgres`, no TLS.
    pub fn superuser_config(&self) -> tokio_postgres::Config {
        self.0.superuser_config()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_names_parse() {
        assert_eq!(Launcher::parse("native").ok(), Some(Launcher::Native));
        let err = Launcher::parse("podman").expect_err("unknown");
        assert!(err.what().contains("unknown launcher \"podman\""), "{err}");
        assert!(err.what().contains("native, docker or auto"), "{err}");
        match Launcher::parse("docker") {
            #[cfg(feature = "docker")]
            Ok(Launcher::Docker { image }) => assert!(image.contains(':'), "{image}"),
            #[cfg(not(feature = "docker"))]
            Err(e) => assert!(e.what().contains("--features docker"), "{e}"),
            other => panic!("unexpected {other:?}"),
        }
        // Native binaries exist on this machine: auto picks them.
        assert_eq!(Launcher::parse("auto").ok(), Some(Launcher::Native));
        assert_eq!(Launcher::Native.describe(), "native");
        assert_eq!(
            Launcher::Docker {
                image: "postgres:17-alpine".into()
            }
            .describe(),
            "docker (postgres:17-alpine)"
        );
    }
}
