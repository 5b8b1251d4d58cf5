//! Connecting as libpq does: the plan's hosts in order, libpq's `sslmode` semantics (including
//! `allow` and `prefer` fallbacks that tokio-postgres lacks), libpq's certificate checks, and
//! errors reduced to the classes shared with `ping` and the conformance matrix.
//!
//! | `tls` | first attempt | second attempt |
//! |---|---|---|
//! | `disable` | plain | - |
//! | `allow` | plain | TLS (plain again if the server says `N`), when the server refused the plain login (SQLSTATE class 28: pg_hba, password) |
//! | `prefer` | TLS (plain if the server answers the SSLRequest with `N`) | plain, when the TLS handshake failed, or the server refused the login made over TLS (class 28) |
//! | `require`, `verify-ca`, `verify-full` | TLS | - |
//!
//! What TLS checks is the plan's [`TlsPolicy::verify`](crate::sslmode::TlsPolicy::verify): a root certificate file turns on chain
//! checks in every mode, as in libpq. A unix-socket host never uses TLS. As in libpq, a
//! connection that cannot be opened (or that times out) moves on to the next address and host;
//! a server that answers SQLSTATE 57P03 (`cannot_connect_now`), or that lets the client in but
//! is not of the kind `target_session_attrs` asks for, moves on to the next host
//! (`session`); any other answer of a reached server (an error, a refused certificate, no TLS)
//! ends the attempt. `load_balance_hosts=random` shuffles the hosts, then each host's
//! addresses; `prefer-standby` makes a second pass accepting any server.
//!
//! `connect_timeout` (at least 2 s, as in libpq) bounds each address's whole attempt, the
//! check of the session's kind included. The futures need a tokio runtime with its time
//! driver enabled.

mod crl;
mod guard;
mod hostname;
mod keyfile;
mod pgpass;
mod session;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres::{Client, NoTls};

use crate::env::Environment;
use crate::error::{Action, ErrorClass};
use crate::iam::TokenError;
use crate::plan::{
    ChannelBinding, ConnectPlan, HostPort, LoadBalanceHosts, Source, TargetSessionAttrs,
};
use crate::secret::Secret;
use crate::secrets::SecretError;
use crate::sslmode::{SslMode, Verify};
use guard::{Guard, Start, Violation};
pub use session::SessionState;
use tls::{ClientIdentity, Connector, Roots};

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
    /// The first query (`SHOW server_version`), only for a server that did not report its
    /// version at start-up (about 0 otherwise).
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
    /// What the server reports about the session (`in_hot_standby`,
    /// `default_transaction_read_only`), kept current while the connection runs.
    pub session: Arc<SessionState>,
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

/// What lies under a [`ConnectError`] that came from a credential source: the source's own
/// error, so that a caller can tell a retryable failure (a token endpoint that is down) from
/// a fatal one (an identity the service refuses).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// An IAM / Entra token could not be had.
    Token(TokenError),
    /// A secrets backend failed.
    Secret(SecretError),
}

impl Cause {
    fn scrubbed(self, tainted: &crate::text::Tainted) -> Self {
        match self {
            Self::Token(e) => Self::Token(TokenError::new(
                e.provider(),
                e.kind(),
                tainted.scrub(e.message()),
            )),
            Self::Secret(e) => Self::Secret(SecretError::new(
                e.backend(),
                e.kind(),
                tainted.scrub(e.message()),
            )),
        }
    }
}

/// A failed connection: its class and libpq-like messages, one per attempt, and the credential
/// source's error when that is where it failed ([`ConnectError::cause`], also its
/// [`std::error::Error::source`]). Never holds a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    class: ErrorClass,
    messages: Vec<String>,
    cause: Option<Box<Cause>>,
}

impl ConnectError {
    /// An error of `class` with one message (which must not hold a secret).
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            messages: vec![message.into()],
            cause: None,
        }
    }

    /// What the caller can do about it.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// What the caller should do: the credential source's answer when it failed (a token
    /// endpoint that is down is [`Action::Retry`], a refused identity
    /// [`Action::FixPermissions`]), else the class's.
    pub fn action(&self) -> Action {
        match self.cause.as_deref() {
            Some(Cause::Token(e)) => e.kind().action(),
            Some(Cause::Secret(e)) => e.kind().action(),
            None => self.class.action(),
        }
    }

    /// The credential source's error, when the connection failed there.
    pub fn cause(&self) -> Option<&Cause> {
        self.cause.as_deref()
    }

    /// The message of each attempt, first attempt first.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    /// The same error with every value of `tainted` taken out of its messages (the cause's
    /// too).
    pub fn scrubbed(mut self, tainted: &crate::text::Tainted) -> Self {
        if !tainted.is_empty() {
            for message in &mut self.messages {
                *message = tainted.scrub(message);
            }
            self.cause = self.cause.map(|c| Box::new(c.scrubbed(tainted)));
        }
        self
    }
}

impl From<TokenError> for ConnectError {
    /// A token that could not be had: class `credentials`, the token error kept as the cause.
    fn from(e: TokenError) -> Self {
        Self {
            class: ErrorClass::Credentials,
            messages: vec![e.to_string()],
            cause: Some(Box::new(Cause::Token(e))),
        }
    }
}

impl From<SecretError> for ConnectError {
    /// A secrets fetch that failed: class `credentials`, the secrets error kept as the cause.
    fn from(e: SecretError) -> Self {
        Self {
            class: ErrorClass::Credentials,
            messages: vec![e.to_string()],
            cause: Some(Box::new(Cause::Secret(e))),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::text::escape_controls(&self.messages.join("; ")))
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.cause.as_deref()? {
            Cause::Token(e) => Some(e),
            Cause::Secret(e) => Some(e),
        }
    }
}

/// The user name and password to log in with, when the plan does not carry them, and where
/// each came from ([`crate::credentials::Credentials::login`] fills the sources; `connect`
/// reads only the values).
#[derive(Debug, Clone, Default)]
pub struct Login {
    /// The user; the plan's user wins, then this, then the operating-system user.
    pub user: Option<String>,
    /// The password or token; the plan's literal password wins.
    pub password: Option<Secret>,
    /// Where the user name came from (`literal`, `env:NAME`, `secret:aws:prod/ltm#username`).
    pub user_from: Source,
    /// Where the password came from.
    pub password_from: Source,
}

impl Login {
    /// A login with these values and no recorded sources.
    pub fn new(user: Option<String>, password: Option<Secret>) -> Self {
        Self {
            user,
            password,
            ..Self::default()
        }
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum Failure {
    /// The connection could not be opened, or the attempt timed out: libpq tries the next
    /// address and host.
    Unreachable(String),
    /// The TLS handshake failed or the certificate was refused (`prefer` then retries plain).
    Tls(ErrorClass, String),
    /// TLS was required and the server does not do it.
    NoTls,
    /// The server answered with an error. `login` marks SQLSTATE class 28 (pg_hba.conf,
    /// password), the refusals after which libpq's `allow` and `prefer` try the other way;
    /// `tls` whether TLS was in use.
    Server {
        class: ErrorClass,
        message: String,
        login: bool,
        tls: bool,
    },
    /// The server sent what libpq refuses before the session is up ([`Violation`]), or asked
    /// for authentication `require_auth` does not allow (class `auth-failed`): libpq stops
    /// there, without the `allow` / `prefer` retry.
    Protocol(ErrorClass, String),
    /// The connection broke after it was opened.
    Broken(String),
    /// A socket option could not be set (libpq's `setsockopt(...) failed`): libpq tries the
    /// next address.
    Socket(String),
    /// The unix socket's peer is not the `requirepeer` user: libpq stops there.
    Peer(String),
    /// The server said SQLSTATE 57P03 (`cannot_connect_now`: starting up, shutting down, a
    /// standby not yet accepting connections): libpq tries the next host, not the next address.
    NotNow(ErrorClass, String),
}

impl Failure {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Unreachable(_) => ErrorClass::Unreachable,
            Self::Tls(class, _)
            | Self::Server { class, .. }
            | Self::Protocol(class, _)
            | Self::NotNow(class, _) => *class,
            Self::NoTls => ErrorClass::ServerNoTls,
            Self::Broken(_) | Self::Socket(_) | Self::Peer(_) => ErrorClass::Other,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Unreachable(m) | Self::Tls(_, m) | Self::Server { message: m, .. } => m.clone(),
            Self::Protocol(_, m)
            | Self::Broken(m)
            | Self::Socket(m)
            | Self::Peer(m)
            | Self::NotNow(_, m) => m.clone(),
            Self::NoTls => "server does not support SSL, but SSL was required".to_string(),
        }
    }
}

struct Success {
    client: Client,
    state: Arc<SessionState>,
    tls: Option<tls::TlsReport>,
    connect: Duration,
    startup: Duration,
}

enum Endpoint {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

/// A new TCP connection's options: no Nagle delay, and libpq's keepalive settings
/// ([`crate::plan::Keepalives`]) in libpq's order (`SO_KEEPALIVE`, `TCP_KEEPIDLE`,
/// `TCP_KEEPINTVL`, `TCP_KEEPCNT`, `TCP_USER_TIMEOUT`). An option the kernel refuses is
/// libpq's `setsockopt(NAME) failed: REASON`, and the attempt moves on to the next address.
fn configure_tcp(
    stream: &tokio::net::TcpStream,
    keepalives: &crate::plan::Keepalives,
) -> Result<(), String> {
    use socket2::TcpKeepalive;
    let _ = stream.set_nodelay(true);
    if !keepalives.on {
        return Ok(());
    }
    let socket = socket2::SockRef::from(stream);
    let failed = |name: &str, e: std::io::Error| {
        let reason = match e.raw_os_error() {
            Some(code) => {
                let text = std::io::Error::from_raw_os_error(code).to_string();
                text.split(" (os error")
                    .next()
                    .unwrap_or_default()
                    .to_string()
            }
            None => e.to_string(),
        };
        format!("setsockopt({name}) failed: {reason}")
    };
    let secs = |n: i32| Duration::from_secs(u64::from(n.unsigned_abs()));
    socket
        .set_keepalive(true)
        .map_err(|e| failed("SO_KEEPALIVE", e))?;
    if let Some(idle) = keepalives.idle {
        socket
            .set_tcp_keepalive(&TcpKeepalive::new().with_time(secs(idle)))
            .map_err(|e| failed("TCP_KEEPIDLE", e))?;
    }
    if let Some(interval) = keepalives.interval {
        socket
            .set_tcp_keepalive(&TcpKeepalive::new().with_interval(secs(interval)))
            .map_err(|e| failed("TCP_KEEPINTVL", e))?;
    }
    if let Some(count) = keepalives.count {
        socket
            .set_tcp_keepalive(&TcpKeepalive::new().with_retries(count.unsigned_abs()))
            .map_err(|e| failed("TCP_KEEPCNT", e))?;
    }
    if let Some(timeout) = keepalives.user_timeout {
        let timeout =
            (timeout > 0).then(|| Duration::from_millis(u64::from(timeout.unsigned_abs())));
        socket
            .set_tcp_user_timeout(timeout)
            .map_err(|e| failed("TCP_USER_TIMEOUT", e))?;
    }
    Ok(())
}

/// libpq's `requirepeer` on a unix socket: the server process's user, by its uid, must be the
/// one named, else libpq's `requirepeer specifies "X", but actual peer user name is "Y"`.
fn check_peer(stream: &tokio::net::UnixStream, required: &str) -> Result<(), Failure> {
    let uid = stream
        .peer_cred()
        .map_err(|e| Failure::Peer(format!("could not get peer credentials: {e}")))?
        .uid();
    let name = user_name(&uid.to_string())
        .ok_or_else(|| Failure::Peer(format!("could not look up local user ID {uid}")))?;
    if name != required {
        return Err(Failure::Peer(format!(
            "requirepeer specifies \"{required}\", but actual peer user name is \"{name}\""
        )));
    }
    Ok(())
}

async fn open(
    endpoint: &Endpoint,
    keepalives: &crate::plan::Keepalives,
    requirepeer: Option<&str>,
) -> Result<Box<dyn Stream>, Failure> {
    match endpoint {
        Endpoint::Tcp(addr) => {
            let stream = tokio::net::TcpStream::connect(*addr).await.map_err(|e| {
                Failure::Unreachable(format!("connection to server at {addr} failed: {e}"))
            })?;
            configure_tcp(&stream, keepalives).map_err(Failure::Socket)?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        }
        Endpoint::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path.clone())
                .await
                .map_err(|e| {
                    Failure::Unreachable(format!(
                        "connection to server on socket \"{}\" failed: {e}",
                        path.display()
                    ))
                })?;
            if let Some(required) = requirepeer {
                check_peer(&stream, required)?;
            }
            Ok(Box::new(stream) as Box<dyn Stream>)
        }
    }
}

/// Runs `fut` within `limit`; running out is "timeout expired", which moves on to the next
/// address as in libpq.
async fn within<T>(
    limit: Option<Duration>,
    fut: std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, Failure>> + Send + '_>>,
) -> Result<T, Failure> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| Failure::Unreachable("timeout expired".to_string()))?,
        None => fut.await,
    }
}

/// A byte stream tokio-postgres can run over.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

fn server_failure(e: &tokio_postgres::Error, tls: bool) -> Option<Failure> {
    let db = e.as_db_error()?;
    let message = format!(
        "{}: {}",
        crate::text::foreign(db.severity()),
        crate::text::foreign(db.message())
    );
    // pg_hba.conf refusals and credential failures share SQLSTATE class 28
    // (invalid_authorization_specification, invalid_password); tell them apart as libpq's
    // readers do, by the message.
    let login = db.code().code().starts_with("28");
    let class = if db.message().contains("pg_hba.conf") {
        ErrorClass::Rejected
    } else if login {
        ErrorClass::AuthFailed
    } else {
        ErrorClass::Other
    };
    if db.code() == &tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW {
        return Some(Failure::NotNow(class, message));
    }
    Some(Failure::Server {
        class,
        message,
        login,
        tls,
    })
}

/// The server asked for a password and none was given (tokio-postgres: "password missing"):
/// libpq's `fe_sendauth: no password supplied`, an authentication failure on the client's side
/// (no retry the other way under `allow` / `prefer`).
fn missing_password(e: &tokio_postgres::Error, tls: bool) -> Option<Failure> {
    chain_mentions(e, "password missing").then(|| Failure::Server {
        class: ErrorClass::AuthFailed,
        message: "fe_sendauth: no password supplied".to_string(),
        login: false,
        tls,
    })
}

/// Whether `e` or one of its sources says `needle`.
fn chain_mentions(e: &tokio_postgres::Error, needle: &str) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.to_string().contains(needle) {
            return true;
        }
        source = err.source();
    }
    false
}

/// The rustls error somewhere in `e`'s chain of sources (inside an `io::Error` too).
fn rustls_error(e: &tokio_postgres::Error) -> Option<rustls::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(tls.clone());
        }
        source = err.source();
    }
    None
}

/// What every attempt of one connection applies: the socket's keepalives, the unix socket's
/// `requirepeer`, and `require_auth` on the server's authentication requests.
struct SessionRules<'a> {
    keepalives: &'a crate::plan::Keepalives,
    requirepeer: Option<&'a str>,
    require_auth: Option<Arc<crate::plan::RequireAuth>>,
}

/// One attempt on one endpoint: plain (`connector` `None`) or TLS, within `timeout`.
async fn attempt(
    config: &tokio_postgres::Config,
    endpoint: &Endpoint,
    connector: Option<&Connector>,
    wire: WireSslMode,
    timeout: Option<Duration>,
    rules: &SessionRules<'_>,
) -> Result<Success, Failure> {
    within(
        timeout,
        Box::pin(async {
            let started = Instant::now();
            let stream = open(endpoint, rules.keepalives, rules.requirepeer).await?;
            let connect = started.elapsed();
            if let Some(c) = connector {
                c.reset();
            }
            let stream = match connector {
                None => Guard::new(stream, Start::Messages),
                Some(c) if c.is_direct() => Guard::new(stream, Start::Through),
                Some(c) => {
                    Guard::new(stream, Start::SslResponse).with_injection_flag(c.injection_flag())
                }
            }
            .with_require_auth(rules.require_auth.clone());
            let mut config = config.clone();
            let startup_started = Instant::now();
            let (client, state, report) = match connector {
                Some(connector) => {
                    config.ssl_mode(wire);
                    // Boxed as `Send` here, where the compiler can prove it: the generic `connect_raw`
                    // future defeats that proof in callers (rust-lang/rust#64552), and the pool
                    // needs a `Send` connect.
                    let raw: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> =
                        Box::pin(config.connect_raw(stream, connector.clone()));
                    match raw.await {
                        Ok((client, connection)) => {
                            let (task, state) = session::watch(connection);
                            tokio::spawn(task);
                            (client, state, Some(connector.report()))
                        }
                        Err(e) => return Err(tls_failure(&e, &connector.report())),
                    }
                }
                None => {
                    config.ssl_mode(WireSslMode::Disable);
                    let raw: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> =
                        Box::pin(config.connect_raw(stream, NoTls));
                    match raw.await {
                        Ok((client, connection)) => {
                            let (task, state) = session::watch(connection);
                            tokio::spawn(task);
                            (client, state, None)
                        }
                        Err(e) => {
                            return Err(violation(&e)
                                .or_else(|| server_failure(&e, false))
                                .or_else(|| missing_password(&e, false))
                                .unwrap_or_else(|| Failure::Broken(broken_message(&e))));
                        }
                    }
                }
            };
            // Under `prefer` the server may have said no to TLS: the connection is then plain.
            let tls = report.filter(|r| r.negotiated.is_some());
            Ok(Success {
                client,
                state,
                tls,
                connect,
                startup: startup_started.elapsed(),
            })
        }),
    )
    .await
}

fn broken_message(e: &tokio_postgres::Error) -> String {
    format!(
        "server closed the connection unexpectedly ({})",
        crate::text::foreign(&e.to_string())
    )
}

/// What the server sent that libpq refuses, found in tokio-postgres's error.
fn violation(e: &tokio_postgres::Error) -> Option<Failure> {
    Violation::find(e).map(|v| {
        let class = match v {
            Violation::AuthRequirement(_) => ErrorClass::AuthFailed,
            _ => ErrorClass::Other,
        };
        Failure::Protocol(class, v.to_string())
    })
}

fn tls_failure(e: &tokio_postgres::Error, report: &tls::TlsReport) -> Failure {
    if let Some(failure) = violation(e) {
        return failure;
    }
    if let Some(failure) = server_failure(e, report.negotiated.is_some()) {
        return failure;
    }
    if let Some(failure) = missing_password(e, report.negotiated.is_some()) {
        return failure;
    }
    if let Some((class, message)) = &report.refused {
        return Failure::Tls(*class, message.clone());
    }
    if !report.started && chain_mentions(e, "server does not support TLS") {
        return Failure::NoTls;
    }
    if report.started && report.negotiated.is_none() {
        // The server ended the handshake with an alert: about our client certificate,
        // when it is one of these (libpq's readers call that an authentication failure).
        let class = match rustls_error(e) {
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::BadCertificate
                | rustls::AlertDescription::UnknownCA
                | rustls::AlertDescription::CertificateRequired
                | rustls::AlertDescription::CertificateUnknown
                | rustls::AlertDescription::CertificateExpired
                | rustls::AlertDescription::AccessDenied,
            )) => ErrorClass::AuthFailed,
            _ => ErrorClass::Other,
        };
        return Failure::Tls(
            class,
            format!("SSL error: {}", crate::text::foreign(&e.to_string())),
        );
    }
    Failure::Broken(broken_message(e))
}

/// Loads the trust anchors of a root certificate file, or the OS store for `system`.
///
/// `system` is what libpq gets from OpenSSL's default paths: the operating system's store, plus
/// the PEM file `SSL_CERT_FILE` and the PEM files in the directory `SSL_CERT_DIR` when `env` sets
/// them (OpenSSL reads those two variables to replace its default file and directory; here they
/// add to the store, which gives the same trust for a certificate authority they name).
/// The trusted roots of `path` (a file, or `system`), with the revocation lists libpq reads
/// beside a root file (`crl`: the plan's `sslcrl` file and `sslcrldir` directories).
fn load_roots(
    path: &str,
    crl: (Option<&str>, Option<&str>),
    env: &dyn Environment,
) -> Result<Roots, String> {
    let mut roots = RootCertStore::empty();
    if path == "system" {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        let mut extra: Vec<std::path::PathBuf> = Vec::new();
        if let Some(file) = env.var("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
            extra.push(file.into());
        }
        if let Some(dir) = env.var("SSL_CERT_DIR").filter(|v| !v.is_empty()) {
            for dir in dir.split(':').filter(|d| !d.is_empty()) {
                if let Ok(entries) = std::fs::read_dir(dir) {
                    extra.extend(entries.flatten().map(|e| e.path()));
                }
            }
        }
        for file in extra {
            if let Ok(bytes) = read_pem_file(&file.to_string_lossy()) {
                for cert in CertificateDer::pem_slice_iter(&bytes).flatten() {
                    let _ = roots.add(cert);
                }
            }
        }
        if roots.is_empty() {
            return Err(
                "could not load system root certificate paths: no certificates found".to_string(),
            );
        }
        return Ok(Roots {
            store: roots,
            certs: Vec::new(),
            crls: None,
        });
    }
    if !env.file_exists(path).unwrap_or(false) {
        return Err(format!(
            "root certificate file \"{path}\" does not exist; either provide the file or change sslmode to disable server certificate verification."
        ));
    }
    let certs = read_certificates(path)
        .map_err(|e| format!("could not read root certificate file \"{path}\": {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "could not read root certificate file \"{path}\": no certificate or crl found"
        ));
    }
    for cert in &certs {
        roots
            .add(cert.clone())
            .map_err(|e| format!("could not read root certificate file \"{path}\": {e}"))?;
    }
    // libpq reads revocation lists only beside a root certificate file; OpenSSL trusts the
    // certificates it finds in the list file too.
    let loaded = crl::load(crl.0, crl.1);
    let mut certs = certs;
    for cert in loaded.roots {
        if roots.add(cert.clone()).is_ok() {
            certs.push(cert);
        }
    }
    Ok(Roots {
        store: roots,
        certs,
        crls: loaded.crls,
    })
}

/// The most a certificate, root certificate or key file may hold: a PEM bundle of every public
/// CA is under 1 MiB. A larger file (or a device that never ends, such as `/dev/zero`) is
/// refused after this many bytes instead of being read into memory.
pub const MAX_PEM_FILE: u64 = 8 << 20;

/// The bytes of a PEM file, at most [`MAX_PEM_FILE`] of them.
fn read_pem_file(path: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(format!("larger than {MAX_PEM_FILE} bytes"));
    }
    Ok(bytes)
}

/// The certificates of a PEM file; none is an error, as OpenSSL's "no start line".
fn read_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_pem_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate found (no PEM start line)".to_string());
    }
    Ok(certs)
}

/// libpq's rule for private key files: a regular file, with no group or world access
/// (`0600`), or group read only (`0640`) when root owns the file.
fn check_key_permissions(path: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("could not access private key file \"{path}\": {e}"))?;
    if !meta.is_file() {
        return Err(format!("private key file \"{path}\" is not a regular file"));
    }
    let mode = meta.mode();
    let allowed = if meta.uid() == 0 { 0o7740 } else { 0o7700 };
    if mode & 0o777 & !allowed != 0 {
        return Err(format!(
            "private key file \"{path}\" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root"
        ));
    }
    Ok(())
}

/// libpq's client certificate: `sslcert` / `sslkey`, else `~/.postgresql/postgresql.crt` and
/// `.key` when the certificate file exists. Read only when a TLS attempt starts, as in libpq:
/// an error here does not stop a plain connection. As in libpq, only a certificate path where
/// nothing exists means "no client certificate"; anything else there (a directory, a device,
/// an empty or unreadable file) must load, or the TLS attempt fails.
fn client_identity(
    plan: &ConnectPlan,
    env: &dyn Environment,
) -> Result<Option<ClientIdentity>, String> {
    // sslcertmode=disable: no certificate is sent, and libpq does not read the files.
    if plan.tls.cert_mode == crate::plan::CertMode::Disable {
        return Ok(None);
    }
    let Some(cert_path) = plan.tls.client_cert.clone() else {
        return Ok(None);
    };
    match env.file_exists(&cert_path) {
        Ok(false) => return Ok(None),
        Ok(true) => {}
        Err(e) => {
            return Err(format!(
                "could not open certificate file \"{cert_path}\": {e}"
            ));
        }
    }
    let key_path = plan.tls.client_key.clone().unwrap_or_default();
    let certs = read_certificates(&cert_path)
        .map_err(|e| format!("could not read certificate file \"{cert_path}\": {e}"))?;
    if !env.file_exists(&key_path).unwrap_or(false) {
        return Err(format!(
            "certificate present, but not private key file \"{key_path}\""
        ));
    }
    check_key_permissions(&key_path)?;
    let key = read_pem_file(&key_path)
        .and_then(|bytes| keyfile::private_key(&bytes, plan.sslpassword.as_ref()))
        .map_err(|e| format!("could not load private key file \"{key_path}\": {e}"))?;
    Ok(Some(ClientIdentity { certs, key }))
}

/// The plan's refusals ([`crate::support::refusal`]) asked again of a plan that may have been
/// built or changed by hand: the same words as the plan error.
fn check_supported(plan: &ConnectPlan, env: &dyn Environment) -> Result<(), ConnectError> {
    match crate::support::refusal(&plan.params, env) {
        Some(refusal) => Err(ConnectError::new(ErrorClass::Config, refusal.message)),
        None => Ok(()),
    }
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
        .or_else(os_user)
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
    if let Some(name) = &plan.application_name {
        config.application_name(name);
    }
    if let Some(options) = plan.params.get("options") {
        config.options(options);
    }
    match plan.channel_binding {
        ChannelBinding::Prefer => {}
        ChannelBinding::Disable => {
            config.channel_binding(tokio_postgres::config::ChannelBinding::Disable);
        }
        ChannelBinding::Require => {
            config.channel_binding(tokio_postgres::config::ChannelBinding::Require);
        }
    }
    Ok(config)
}

/// The name of the process's effective user, as libpq's default user (Linux: the effective
/// uid from `/proc/self/status`, looked up in `/etc/passwd`).
fn os_user() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .to_string();
    user_name(&euid)
}

/// The name `/etc/passwd` gives the user with this uid.
fn user_name(uid: &str) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_string())
    })
}

/// Connects by the plan, with libpq's TLS semantics. `env` gives `HOME` (for libpq's default
/// client certificate and root certificate) and `USER` (the default user name, else the
/// process's own user), and says which files exist.
pub async fn connect(
    plan: &ConnectPlan,
    login: &Login,
    env: &dyn Environment,
) -> Result<Connected, ConnectError> {
    // Messages quote host names and addresses; none that came from the environment.
    let started = Instant::now();
    let result = connect_unscrubbed(plan, login, env)
        .await
        .map_err(|e| e.scrubbed(&plan.tainted));
    let elapsed_ms = started.elapsed().as_millis();
    match &result {
        Ok(connected) => tracing::info!(
            host = %shown_host(plan, &connected.host.host),
            port = connected.host.port,
            tls = connected.tls.as_ref().map_or("none", |t| t.version.as_str()),
            verified = connected.tls.as_ref().map_or("none", |t| t.verified.as_str()),
            elapsed_ms,
            "connected"
        ),
        Err(e) => {
            tracing::warn!(class = e.class.as_str(), elapsed_ms, error = %e, "connect failed")
        }
    }
    result
}

/// A host as logs show it: a name that came from the environment is not shown, as in errors.
fn shown_host<'a>(plan: &ConnectPlan, host: &'a str) -> &'a str {
    if plan.tainted.any_within(host) {
        "<from the environment>"
    } else {
        host
    }
}

async fn connect_unscrubbed(
    plan: &ConnectPlan,
    login: &Login,
    env: &dyn Environment,
) -> Result<Connected, ConnectError> {
    let started = Instant::now();
    // libpq 17's `sslnegotiation=direct`: TLS at once, with ALPN `postgresql`.
    let direct = plan.tls.negotiation == crate::sslmode::Negotiation::Direct;
    check_supported(plan, env)?;
    let mut config = wire_config(plan, login, env)?;
    if direct {
        config.ssl_negotiation(tokio_postgres::config::SslNegotiation::Direct);
    }
    let timeout = plan.connect_timeout;

    // libpq reads the root file and the client certificate only once the server has agreed to
    // TLS: a problem with them is reported then (after "server does not support SSL" would
    // have been), and never stops a plain connection.
    let mut refusal = None;
    let roots = match (&plan.sslrootcert, plan.tls.verify) {
        (Some(path), verify) if verify != Verify::None || path == "system" => load_roots(
            path,
            (plan.tls.crl_file.as_deref(), plan.tls.crl_dirs.as_deref()),
            env,
        )
        .unwrap_or_else(|e| {
            refusal = Some(e);
            Roots::default()
        }),
        (None, Verify::Ca | Verify::Full) => {
            let home = env.var("HOME").unwrap_or_else(|| "~".to_string());
            refusal = Some(format!(
                "root certificate file \"{home}/.postgresql/root.crt\" does not exist; either provide the file or change sslmode to disable server certificate verification."
            ));
            Roots::default()
        }
        _ => Roots::default(),
    };
    let roots = Arc::new(roots);
    let require_auth = plan.require_auth.clone().map(Arc::new);
    let rules = SessionRules {
        keepalives: &plan.keepalives,
        requirepeer: plan.requirepeer.as_deref(),
        require_auth: require_auth.clone(),
    };
    let identity = match client_identity(plan, env) {
        Ok(identity) => identity,
        Err(e) => {
            refusal.get_or_insert(e);
            None
        }
    };

    // libpq's password file, when no password is given: looked up per host and port.
    let passfile = plan
        .passfile
        .as_deref()
        .filter(|_| plan.password.is_none() && login.password.is_none());
    let base_config = config;
    let mut messages = Vec::new();
    let mut last_class = ErrorClass::Unreachable;
    // libpq 16's `load_balance_hosts=random`: the hosts shuffled once, each host's addresses
    // when it is resolved.
    let mut hosts = plan.hosts.clone();
    if plan.load_balance_hosts == LoadBalanceHosts::Random {
        session::shuffle(&mut hosts);
    }
    // `prefer-standby`: when no host is a standby, libpq starts over from the first host and
    // takes any server.
    let only = [plan.target_session_attrs];
    let passes: &[TargetSessionAttrs] =
        if plan.target_session_attrs == TargetSessionAttrs::PreferStandby {
            &[TargetSessionAttrs::PreferStandby, TargetSessionAttrs::Any]
        } else {
            &only
        };
    for &target in passes {
        'hosts: for host in hosts.iter().cloned() {
            let mut config = base_config.clone();
            if let Some(path) = passfile {
                let user = config.get_user().unwrap_or_default().to_string();
                let dbname = config.get_dbname().unwrap_or_default().to_string();
                if let Some(password) =
                    pgpass::password_from_file(path, &host.host, host.port, &dbname, &user)
                {
                    config.password(password.expose());
                }
            }
            let endpoints: Vec<Endpoint> = if host.is_socket() {
                vec![Endpoint::Unix(
                    Path::new(&host.host).join(format!(".s.PGSQL.{}", host.port)),
                )]
            } else if let Some(addr) = &host.hostaddr {
                match addr.parse::<std::net::IpAddr>() {
                    Ok(ip) => vec![Endpoint::Tcp(SocketAddr::new(ip, host.port))],
                    Err(_) => {
                        return Err(ConnectError::new(
                            ErrorClass::Config,
                            format!("could not parse network address \"{addr}\""),
                        ));
                    }
                }
            } else {
                match tokio::net::lookup_host((host.host.clone(), host.port)).await {
                    Ok(addrs) => {
                        let mut endpoints: Vec<Endpoint> = addrs.map(Endpoint::Tcp).collect();
                        if plan.load_balance_hosts == LoadBalanceHosts::Random {
                            session::shuffle(&mut endpoints);
                        }
                        endpoints
                    }
                    Err(e) => {
                        messages.push(format!(
                            "could not translate host name \"{}\" to address: {e}",
                            host.host
                        ));
                        continue;
                    }
                }
            };
            let connector = if host.is_socket() || plan.tls.mode == SslMode::Disable {
                None
            } else {
                let client = identity.as_ref().map(|i| ClientIdentity {
                    certs: i.certs.clone(),
                    key: i.key.clone_key(),
                });
                let connector = Connector::new(
                    plan.tls.verify,
                    roots.clone(),
                    &host.host,
                    client,
                    direct,
                    plan.tls.versions,
                    plan.tls.sni,
                )
                .map_err(|e| {
                    ConnectError::new(ErrorClass::Config, format!("TLS set-up failed: {e}"))
                })?
                .with_session_rules(plan.tls.cert_mode, require_auth.clone());
                Some(match &refusal {
                    Some(message) => connector.refusing(message.clone()),
                    None => connector,
                })
            };
            for endpoint in endpoints {
                let endpoint = &endpoint;
                tracing::debug!(
                    host = %shown_host(plan, &host.host),
                    port = host.port,
                    socket = host.is_socket(),
                    sslmode = plan.tls.as_str(),
                    "connect attempt"
                );
                // One attempt on this endpoint: over TLS (with the host's connector) or plain.
                let try_once = |tls: bool, wire: WireSslMode| {
                    attempt(
                        &config,
                        endpoint,
                        connector.as_ref().filter(|_| tls),
                        wire,
                        timeout,
                        &rules,
                    )
                };
                let attempt_started = Instant::now();
                let result = match (&connector, plan.tls.mode) {
                    (None, _) | (Some(_), SslMode::Disable) => {
                        try_once(false, WireSslMode::Disable).await
                    }
                    (Some(_), SslMode::Allow) => {
                        match try_once(false, WireSslMode::Disable).await {
                            // Refused in plain text: libpq tries again, asking for TLS (and carrying
                            // on in plain if the server says no).
                            Err(first @ Failure::Server { login: true, .. }) => {
                                messages.push(first.message());
                                try_once(true, WireSslMode::Prefer).await
                            }
                            other => other,
                        }
                    }
                    (Some(_), SslMode::Prefer) => {
                        match try_once(true, WireSslMode::Prefer).await {
                            // The TLS attempt failed, or the login over TLS was refused: libpq
                            // tries once more in plain text.
                            Err(
                                first @ (Failure::Tls(..)
                                | Failure::Server {
                                    login: true,
                                    tls: true,
                                    ..
                                }),
                            ) => {
                                messages.push(first.message());
                                try_once(false, WireSslMode::Disable).await
                            }
                            other => other,
                        }
                    }
                    (Some(_), _) => try_once(true, WireSslMode::Require).await,
                };
                match result {
                    Ok(success) => {
                        // libpq's connect_timeout covers the whole attempt on this address,
                        // the check of the session's kind included.
                        let check_timeout = timeout.map_or(FIRST_QUERY_TIMEOUT, |t| {
                            t.saturating_sub(attempt_started.elapsed())
                        });
                        match session::check(&success.client, &success.state, target, check_timeout)
                            .await
                        {
                            Ok(()) => {
                                return finish(success, host, plan.tls.verify, started, timeout)
                                    .await;
                            }
                            // A server of the wrong kind: dropping the client says goodbye
                            // (Terminate); libpq moves on to the next host.
                            Err(session::Rejection::WrongKind(message)) => {
                                last_class = ErrorClass::TargetMismatch;
                                messages.push(message);
                                continue 'hosts;
                            }
                            Err(session::Rejection::QueryFailed(message)) => {
                                last_class = ErrorClass::Other;
                                messages.push(message);
                                continue 'hosts;
                            }
                        }
                    }
                    Err(Failure::NotNow(class, message)) => {
                        last_class = class;
                        messages.push(message);
                        continue 'hosts;
                    }
                    Err(failure) => {
                        last_class = failure.class();
                        messages.push(failure.message());
                        // Only a connection that could not be opened moves on; a server that was
                        // reached has given its answer.
                        if !matches!(failure, Failure::Unreachable(_) | Failure::Socket(_)) {
                            return Err(ConnectError {
                                class: last_class,
                                messages,
                                cause: None,
                            });
                        }
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
        cause: None,
    })
}

/// How long the first query may take when no `connect_timeout` is set.
const FIRST_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

async fn finish(
    success: Success,
    host: HostPort,
    verify: Verify,
    started: Instant,
    timeout: Option<Duration>,
) -> Result<Connected, ConnectError> {
    let query_started = Instant::now();
    let server_version = match success.state.server_version() {
        // Reported at start-up by every server since 7.4: no query needed.
        Some(version) => version,
        None => first_query(&success.client, timeout).await?,
    };
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
        host,
        timings: Timings {
            connect_ms: ms(success.connect),
            tls_ms: success.tls.as_ref().and_then(|r| r.handshake).map(ms),
            startup_ms: ms(success.startup),
            query_ms: ms(query_started.elapsed()),
            total_ms: ms(started.elapsed()),
        },
        tls,
        server_version,
        session: success.state,
    })
}

/// `SHOW server_version`, for a server that did not report it at start-up.
async fn first_query(client: &Client, timeout: Option<Duration>) -> Result<String, ConnectError> {
    let query = client.query_one("SHOW server_version", &[]);
    tokio::time::timeout(timeout.unwrap_or(FIRST_QUERY_TIMEOUT), query)
        .await
        .map_err(|_| ConnectError::new(ErrorClass::Other, "first query: timeout expired"))?
        .map_err(|e| {
            ConnectError::new(
                ErrorClass::Other,
                format!(
                    "first query failed: {}",
                    crate::text::foreign(&e.to_string())
                ),
            )
        })?
        .try_get::<_, String>(0)
        .map_err(|e| {
            ConnectError::new(
                ErrorClass::Other,
                format!("first query (SHOW server_version), column 0: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn loopback() -> (tokio::net::TcpListener, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback listener");
        let addr = listener.local_addr().expect("an address");
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        (listener, stream)
    }

    #[tokio::test]
    async fn tcp_sockets_get_libpqs_keepalive_settings() {
        use crate::plan::Keepalives;
        // libpq's defaults: keepalives on, the kernel's timings.
        let (_l, stream) = loopback().await;
        let socket = socket2::SockRef::from(&stream);
        assert!(
            !socket.keepalive().expect("SO_KEEPALIVE"),
            "off on a new socket"
        );
        configure_tcp(&stream, &Keepalives::default()).expect("set");
        assert!(
            socket.keepalive().expect("SO_KEEPALIVE"),
            "on, as libpq's default"
        );
        assert!(socket.tcp_nodelay().expect("TCP_NODELAY"));
        // Every timing, read back from the socket.
        let (_l, stream) = loopback().await;
        let socket = socket2::SockRef::from(&stream);
        let set = Keepalives {
            on: true,
            idle: Some(42),
            interval: Some(7),
            count: Some(5),
            user_timeout: Some(9000),
        };
        configure_tcp(&stream, &set).expect("set");
        assert_eq!(
            socket.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            Duration::from_secs(42)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().expect("TCP_KEEPINTVL"),
            Duration::from_secs(7)
        );
        assert_eq!(socket.tcp_keepalive_retries().expect("TCP_KEEPCNT"), 5);
        assert_eq!(
            socket.tcp_user_timeout().expect("TCP_USER_TIMEOUT"),
            Some(Duration::from_millis(9000))
        );
        // keepalives=0: nothing is set, not even the user timeout (libpq's `else if` chain).
        let (_l, stream) = loopback().await;
        let socket = socket2::SockRef::from(&stream);
        let off = Keepalives {
            on: false,
            user_timeout: Some(9000),
            ..Keepalives::default()
        };
        configure_tcp(&stream, &off).expect("nothing to set");
        assert!(!socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(socket.tcp_user_timeout().expect("TCP_USER_TIMEOUT"), None);
        // A value the kernel refuses fails as libpq says it.
        let (_l, stream) = loopback().await;
        let zero = Keepalives {
            idle: Some(0),
            ..Keepalives::default()
        };
        assert_eq!(
            configure_tcp(&stream, &zero),
            Err("setsockopt(TCP_KEEPIDLE) failed: Invalid argument".to_string())
        );
    }

    #[test]
    fn os_user_is_the_effective_user() {
        let id = std::process::Command::new("id")
            .arg("-un")
            .output()
            .expect("`id` runs");
        let expected = String::from_utf8_lossy(&id.stdout).trim().to_string();
        assert_eq!(os_user().as_deref(), Some(expected.as_str()));
    }

    #[test]
    fn key_files_open_to_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "x").expect("write");
        let path = key.to_str().expect("utf-8");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(check_key_permissions(path).is_ok());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = check_key_permissions(path).expect_err("world-readable");
        assert!(err.contains("has group or world access"), "{err}");
    }
}
