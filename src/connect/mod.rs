//! Connecting as libpq does: the plan's hosts in order, libpq's `sslmode` semantics (including
//! `allow` and `prefer` fallbacks that tokio-postgres lacks), libpq's certificate checks, and
//! errors reduced to the classes shared with `ping` and the conformance matrix.
//!
//! | `tls` | first attempt | second attempt |
//! |---|---|---|
//! | `disable` | plain | - |
//! | `allow` | plain | TLS, when the server refused the plain attempt (an error response) |
//! | `prefer` | TLS (plain if the server answers the SSLRequest with `N`) | plain, when the TLS handshake failed or the server refused the TLS attempt |
//! | `require`, `verify-ca`, `verify-full` | TLS | - |
//!
//! What TLS checks is [`ConnectPlan::tls_verify`]: a root certificate file turns on chain
//! checks in every mode, as in libpq. A unix-socket host never uses TLS. When a host cannot be
//! reached (or its TLS handshake fails), the next address and then the next host is tried;
//! when a server answers with an error (pg_hba, password), libpq stops there, and so does this.

pub mod hostname;
pub mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres::{Client, NoTls};

use crate::env::Environment;
use crate::error::ErrorClass;
use crate::plan::{ConnectPlan, HostPort};
use crate::secret::Secret;
use crate::sslmode::{SslMode, Verify};
use tls::{ClientIdentity, Connector, Roots};

/// libpq's smallest connect timeout: a `connect_timeout` of 1 is taken as 2 seconds.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What was negotiated on a TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite.
    pub cipher: String,
    /// What was checked of the server certificate.
    pub verified: Verify,
}

/// How long each phase took, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    /// Opening the TCP or unix-socket connection (the successful attempt).
    pub connect_ms: f64,
    /// The TLS handshake, when TLS was used.
    pub tls_ms: Option<f64>,
    /// SSL negotiation, TLS and authentication (tokio-postgres's start-up).
    pub startup_ms: f64,
    /// The first query (`SHOW server_version`).
    pub query_ms: f64,
    /// Everything, every attempt included.
    pub total_ms: f64,
}

/// An open connection and how it was made.
pub struct Connected {
    /// The client; its connection task runs on the tokio runtime.
    pub client: Client,
    /// The host that answered.
    pub host: HostPort,
    /// TLS details, or `None` for a plain connection.
    pub tls: Option<TlsInfo>,
    /// The server's `server_version`.
    pub server_version: String,
    /// Phase timings.
    pub timings: Timings,
}

impl fmt::Debug for Connected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connected")
            .field("host", &self.host)
            .field("tls", &self.tls)
            .field("server_version", &self.server_version)
            .finish_non_exhaustive()
    }
}

/// A failed connection: its class and libpq-like messages, one per attempt. Never holds a
/// password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    class: ErrorClass,
    messages: Vec<String>,
}

impl ConnectError {
    fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            messages: vec![message.into()],
        }
    }

    /// An error of `class` with one message (which must not hold a secret).
    pub fn from_parts(class: ErrorClass, message: impl Into<String>) -> Self {
        Self::new(class, message)
    }

    /// What the caller can do about it.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// The message of each attempt, first attempt first.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.messages.join("; "))
    }
}

impl std::error::Error for ConnectError {}

/// The user name and password to log in with, when the plan does not carry them.
#[derive(Debug, Clone, Default)]
pub struct Login {
    /// The user; the plan's user wins, then this, then the operating-system user.
    pub user: Option<String>,
    /// The password or token; the plan's literal password wins.
    pub password: Option<Secret>,
}

/// Why one attempt failed.
#[derive(Debug)]
enum Failure {
    /// Nothing answered, or the TLS handshake failed: try the next address or host.
    Unreachable(String),
    /// The TLS handshake failed, or the certificate was refused.
    Tls(ErrorClass, String),
    /// TLS was required and the server does not do it.
    NoTls,
    /// The server answered with an error.
    Server(ErrorClass, String),
}

impl Failure {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Unreachable(_) => ErrorClass::Unreachable,
            Self::Tls(class, _) | Self::Server(class, _) => *class,
            Self::NoTls => ErrorClass::ServerNoTls,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Unreachable(m) | Self::Tls(_, m) | Self::Server(_, m) => m.clone(),
            Self::NoTls => "server does not support SSL, but SSL was required".to_string(),
        }
    }
}

struct Success {
    client: Client,
    tls: Option<tls::TlsReport>,
    connect: Duration,
    startup: Duration,
}

enum Endpoint {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

async fn open(endpoint: &Endpoint, timeout: Option<Duration>) -> Result<Box<dyn Stream>, Failure> {
    let fut = async {
        match endpoint {
            Endpoint::Tcp(addr) => tokio::net::TcpStream::connect(addr)
                .await
                .map(|s| {
                    let _ = s.set_nodelay(true);
                    Box::new(s) as Box<dyn Stream>
                })
                .map_err(|e| {
                    Failure::Unreachable(format!("connection to server at {addr} failed: {e}"))
                }),
            Endpoint::Unix(path) => tokio::net::UnixStream::connect(path)
                .await
                .map(|s| Box::new(s) as Box<dyn Stream>)
                .map_err(|e| {
                    Failure::Unreachable(format!(
                        "connection to server on socket \"{}\" failed: {e}",
                        path.display()
                    ))
                }),
        }
    };
    within(timeout, fut).await?
}

/// Runs `fut` within `limit` (libpq's `connect_timeout`, applied to each phase of an attempt).
async fn within<T>(
    limit: Option<Duration>,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Failure> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| Failure::Unreachable("timeout expired".to_string())),
        None => Ok(fut.await),
    }
}

/// A byte stream tokio-postgres can run over.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

fn classify_db_error(e: &tokio_postgres::Error) -> Option<(ErrorClass, String)> {
    let db = e.as_db_error()?;
    let message = format!("{}: {}", db.severity(), db.message());
    // pg_hba.conf refusals and credential failures share SQLSTATE class 28
    // (invalid_authorization_specification, invalid_password); tell them apart as libpq's
    // readers do, by the message.
    let class = if db.message().contains("pg_hba.conf") {
        ErrorClass::Rejected
    } else if db.code().code().starts_with("28") {
        ErrorClass::AuthFailed
    } else {
        ErrorClass::Other
    };
    Some((class, message))
}

/// One attempt on one endpoint: plain (`connector` `None`) or TLS.
async fn attempt(
    config: &tokio_postgres::Config,
    endpoint: &Endpoint,
    connector: Option<&Connector>,
    wire: WireSslMode,
    timeout: Option<Duration>,
) -> Result<Success, Failure> {
    let started = Instant::now();
    let stream = open(endpoint, timeout).await?;
    let connect = started.elapsed();
    let mut config = config.clone();
    config.ssl_mode(if connector.is_some() {
        wire
    } else {
        WireSslMode::Disable
    });
    let startup_started = Instant::now();
    let result = match connector {
        Some(connector) => {
            connector.reset();
            match within(timeout, config.connect_raw(stream, connector.clone())).await? {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    Ok((client, Some(connector.report())))
                }
                Err(e) => Err(tls_failure(&e, &connector.report(), wire)),
            }
        }
        None => match within(timeout, config.connect_raw(stream, NoTls)).await? {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                Ok((client, None))
            }
            Err(e) => Err(match classify_db_error(&e) {
                Some((class, message)) => Failure::Server(class, message),
                None => Failure::Unreachable(format!("connection failed: {e}")),
            }),
        },
    };
    let (client, report) = result?;
    // Under `prefer` the server may have said no to TLS: the connection is then plain.
    let tls = report.filter(|r| r.negotiated.is_some());
    Ok(Success {
        client,
        tls,
        connect,
        startup: startup_started.elapsed(),
    })
}

fn tls_failure(e: &tokio_postgres::Error, report: &tls::TlsReport, wire: WireSslMode) -> Failure {
    if let Some((class, message)) = classify_db_error(e) {
        return Failure::Server(class, message);
    }
    if let Some((class, message)) = &report.refused {
        return Failure::Tls(*class, message.clone());
    }
    if !report.started && wire == WireSslMode::Require {
        return Failure::NoTls;
    }
    if report.started && report.negotiated.is_none() {
        return Failure::Tls(ErrorClass::Other, format!("SSL error: {e}"));
    }
    Failure::Unreachable(format!("connection failed: {e}"))
}

/// Loads the trust anchors of a root certificate file, or the OS store for `system`.
fn load_roots(path: &str) -> Result<Roots, ConnectError> {
    let mut roots = RootCertStore::empty();
    if path == "system" {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(ConnectError::new(
                ErrorClass::Config,
                "could not load system root certificate paths: no certificates found",
            ));
        }
        return Ok(Roots {
            store: roots,
            certs: Vec::new(),
        });
    }
    if !Path::new(path).exists() {
        return Err(ConnectError::new(
            ErrorClass::Config,
            format!(
                "root certificate file \"{path}\" does not exist\nEither provide the file or change sslmode to disable server certificate verification."
            ),
        ));
    }
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            ConnectError::new(
                ErrorClass::Config,
                format!("could not read root certificate file \"{path}\": {e}"),
            )
        })?;
    for cert in &certs {
        roots.add(cert.clone()).map_err(|e| {
            ConnectError::new(
                ErrorClass::Config,
                format!("could not read root certificate file \"{path}\": {e}"),
            )
        })?;
    }
    Ok(Roots {
        store: roots,
        certs,
    })
}

/// libpq's client certificate: `sslcert` / `sslkey`, else `~/.postgresql/postgresql.crt` and
/// `.key` when the certificate file exists.
fn client_identity(
    plan: &ConnectPlan,
    env: &dyn Environment,
) -> Result<Option<ClientIdentity>, ConnectError> {
    let home = env.var("HOME").filter(|h| !h.is_empty());
    let default = |name: &str| home.as_ref().map(|h| format!("{h}/.postgresql/{name}"));
    let cert_path = match plan.params.get("sslcert").filter(|c| !c.is_empty()) {
        Some(path) => path.to_string(),
        None => match default("postgresql.crt") {
            Some(path) => path,
            None => return Ok(None),
        },
    };
    if !Path::new(&cert_path).is_file() {
        return Ok(None);
    }
    let key_path = plan
        .params
        .get("sslkey")
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .or_else(|| default("postgresql.key"))
        .unwrap_or_default();
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            ConnectError::new(
                ErrorClass::Config,
                format!("could not read certificate file \"{cert_path}\": {e}"),
            )
        })?;
    if !Path::new(&key_path).is_file() {
        return Err(ConnectError::new(
            ErrorClass::Config,
            format!("certificate present, but not private key file \"{key_path}\""),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
        ConnectError::new(
            ErrorClass::Config,
            format!("could not load private key file \"{key_path}\": {e}"),
        )
    })?;
    Ok(Some(ClientIdentity { certs, key }))
}

fn wire_config(
    plan: &ConnectPlan,
    login: &Login,
    env: &dyn Environment,
) -> Result<tokio_postgres::Config, ConnectError> {
    let mut config = tokio_postgres::Config::new();
    let user = plan
        .user
        .clone()
        .or_else(|| login.user.clone())
        .or_else(|| env.var("USER").filter(|u| !u.is_empty()))
        .ok_or_else(|| {
            ConnectError::new(
                ErrorClass::Config,
                "no user name: set user (or credentials)",
            )
        })?;
    config.user(&user);
    if let Some(password) = plan.password.as_ref().or(login.password.as_ref()) {
        config.password(password.expose());
    }
    config.dbname(plan.dbname.as_deref().unwrap_or(&user));
    if let Some(name) = plan.params.get("application_name") {
        config.application_name(name);
    }
    if let Some(options) = plan.params.get("options") {
        config.options(options);
    }
    Ok(config)
}

/// Connects by the plan, with libpq's TLS semantics. `env` gives `HOME` (for libpq's default
/// client certificate) and `USER` (the default user name).
pub async fn connect(
    plan: &ConnectPlan,
    login: &Login,
    env: &dyn Environment,
) -> Result<Connected, ConnectError> {
    let started = Instant::now();
    // libpq 17's direct TLS (no SSLRequest) needs a PostgreSQL 17 server to be tested against;
    // until then it is refused rather than silently negotiated the old way.
    if plan.params.get("sslnegotiation") == Some("direct") {
        return Err(ConnectError::new(
            ErrorClass::Config,
            "sslnegotiation=direct is not supported yet (only the default, sslnegotiation=postgres)",
        ));
    }
    let config = wire_config(plan, login, env)?;
    let timeout = plan
        .params
        .get("connect_timeout")
        .and_then(|t| t.trim().parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t).max(MIN_CONNECT_TIMEOUT));
    // libpq reads the root file only once the server has agreed to TLS: a missing one is
    // reported then, after "server does not support SSL" would have been.
    let mut missing_root = None;
    let roots = match (&plan.sslrootcert, plan.tls_verify) {
        (Some(path), verify) if verify != Verify::None || path == "system" => {
            match load_roots(path) {
                Ok(roots) => Arc::new(roots),
                Err(e) => {
                    missing_root = Some(e.to_string());
                    Arc::new(Roots::default())
                }
            }
        }
        (None, Verify::Ca | Verify::Full) => {
            let home = env.var("HOME").unwrap_or_else(|| "~".to_string());
            missing_root = Some(format!(
                "root certificate file \"{home}/.postgresql/root.crt\" does not exist\nEither provide the file or change sslmode to disable server certificate verification."
            ));
            Arc::new(Roots::default())
        }
        _ => Arc::new(Roots::default()),
    };
    let identity = client_identity(plan, env)?;
    let identity_for = |_: ()| -> Option<ClientIdentity> {
        identity.as_ref().map(|i| ClientIdentity {
            certs: i.certs.clone(),
            key: i.key.clone_key(),
        })
    };

    let mut messages = Vec::new();
    let mut last_class = ErrorClass::Unreachable;
    for host in &plan.hosts {
        let endpoints: Vec<Endpoint> = if host.is_socket() {
            vec![Endpoint::Unix(
                Path::new(&host.host).join(format!(".s.PGSQL.{}", host.port)),
            )]
        } else {
            let target = host.hostaddr.as_deref().unwrap_or(&host.host);
            match tokio::net::lookup_host((target, host.port)).await {
                Ok(addrs) => addrs.map(Endpoint::Tcp).collect(),
                Err(e) => {
                    messages.push(format!(
                        "could not translate host name \"{}\" to address: {e}",
                        host.host
                    ));
                    continue;
                }
            }
        };
        let connector = if host.is_socket() || plan.tls == SslMode::Disable {
            None
        } else {
            let connector =
                Connector::new(plan.tls_verify, roots.clone(), &host.host, identity_for(()))
                    .map_err(|e| {
                        ConnectError::new(ErrorClass::Config, format!("TLS set-up failed: {e}"))
                    })?;
            Some(match &missing_root {
                Some(message) => connector.refusing(message.clone()),
                None => connector,
            })
        };
        for endpoint in &endpoints {
            let result = match (&connector, plan.tls) {
                (None, _) | (Some(_), SslMode::Disable) => {
                    attempt(&config, endpoint, None, WireSslMode::Disable, timeout).await
                }
                (Some(c), SslMode::Allow) => {
                    match attempt(&config, endpoint, None, WireSslMode::Disable, timeout).await {
                        Err(Failure::Server(_, first)) => {
                            messages.push(first);
                            attempt(&config, endpoint, Some(c), WireSslMode::Require, timeout).await
                        }
                        other => other,
                    }
                }
                (Some(c), SslMode::Prefer) => {
                    match attempt(&config, endpoint, Some(c), WireSslMode::Prefer, timeout).await {
                        Err(first @ (Failure::Tls(..) | Failure::Server(..))) => {
                            messages.push(first.message());
                            attempt(&config, endpoint, None, WireSslMode::Disable, timeout).await
                        }
                        other => other,
                    }
                }
                (Some(c), _) => {
                    attempt(&config, endpoint, Some(c), WireSslMode::Require, timeout).await
                }
            };
            match result {
                Ok(success) => {
                    return finish(success, host, plan.tls_verify, started).await;
                }
                Err(failure) => {
                    last_class = failure.class();
                    messages.push(failure.message());
                    // A server that answered has decided: libpq does not try further hosts.
                    if matches!(failure, Failure::Server(..)) {
                        return Err(ConnectError {
                            class: last_class,
                            messages,
                        });
                    }
                }
            }
        }
    }
    if messages.is_empty() {
        messages.push("no host to connect to".to_string());
    }
    Err(ConnectError {
        class: last_class,
        messages,
    })
}

async fn finish(
    success: Success,
    host: &HostPort,
    verify: Verify,
    started: Instant,
) -> Result<Connected, ConnectError> {
    let query_started = Instant::now();
    let server_version = success
        .client
        .query_one("SHOW server_version", &[])
        .await
        .map(|row| row.get::<_, String>(0))
        .map_err(|e| ConnectError::new(ErrorClass::Other, format!("first query failed: {e}")))?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let tls = success.tls.as_ref().and_then(|r| {
        r.negotiated.as_ref().map(|(version, cipher)| TlsInfo {
            version: version.clone(),
            cipher: cipher.clone(),
            verified: verify,
        })
    });
    Ok(Connected {
        client: success.client,
        host: host.clone(),
        timings: Timings {
            connect_ms: ms(success.connect),
            tls_ms: success.tls.as_ref().and_then(|r| r.handshake).map(ms),
            startup_ms: ms(success.startup),
            query_ms: ms(query_started.elapsed()),
            total_ms: ms(started.elapsed()),
        },
        tls,
        server_version,
    })
}
