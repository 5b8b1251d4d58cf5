//! A hostile PostgreSQL server: just enough of the v3 protocol to misbehave in one chosen way
//! ([`Mode`]), and a record of what each client did on it ([`ConnectionRecord`]).
//!
//! [`HostileServer::start`] listens on `127.0.0.1` (an ephemeral port) and serves every
//! connection in the same [`Mode`], on its own thread with its own tokio runtime, until it is
//! dropped; dropping it closes every connection. A client is judged by what the server saw,
//! not by what the client says: whether TLS was negotiated, whether a startup packet came,
//! whether a password came (and over what), whether the login got as far as `ReadyForQuery`
//! (the client is then connected), and how many bytes the server sent.
//!
//! Every mode that reaches authentication asks for a **cleartext** password
//! (`AuthenticationCleartextPassword`), so a client that would send its password at that point
//! is caught sending it, readable.
//!
//! # TLS
//!
//! A client's `SSLRequest` is answered with `S` and a real rustls handshake with the identity
//! given to [`HostileServer::start`] (a [`Pem`] from the [certificate factory](super::certs)),
//! except where the mode is about the answer itself ([`Mode::NoTls`], [`Mode::GarbageAfterS`],
//! [`Mode::PlaintextAfterS`], [`Mode::CloseMidHandshake`]). After the handshake the mode plays
//! out over TLS as it would in plain text. A `GSSENCRequest` is always answered `N`. The modes
//! about the `SSLRequest` answer treat a plain startup packet (`sslmode=disable`, the first
//! attempt of `allow`, the fallback of `prefer`) as [`Mode::Baseline`] does.
//!
//! # Bounds
//!
//! Nothing here runs away: a connection lives at most [`MAX_CONNECTION_TIME`], a mode that
//! streams stops after [`MAX_BYTES_SENT`] bytes or as soon as a write fails (the client
//! closed), frontend packets larger than [`MAX_FRONTEND_MESSAGE`] end the connection, and the
//! server streams its big messages from a small buffer instead of building them in memory.
//!
//! ```no_run
//! use tea_pgcloud::conformance::certs::{CertFactory, ServerCertKind};
//! use tea_pgcloud::conformance::hostile::{HostileServer, Mode};
//! let factory = CertFactory::new()?;
//! let server = HostileServer::start(Mode::TarpitAfterLogin, &factory.server(ServerCertKind::Good)?)?;
//! // ... point a client at 127.0.0.1:server.port() with a password, then:
//! let seen = server.summary();
//! assert!(!seen.ready, "a tarpit never lets a client in");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use super::certs::Pem;

/// How long one connection may live, whatever the mode and whatever the client does.
pub const MAX_CONNECTION_TIME: Duration = Duration::from_secs(20);

/// How many bytes a streaming mode ([`Mode::EndlessNotices`], [`Mode::HugeLength`]'s trickle)
/// sends on one connection at most.
pub const MAX_BYTES_SENT: u64 = 256 * 1024 * 1024;

/// The size of [`Mode::HugeError`]'s message text: 64 MiB.
pub const HUGE_ERROR_BYTES: usize = 64 * 1024 * 1024;

/// The length [`Mode::HugeLength`]'s message header declares: 2^31 - 1, the largest an int32
/// length can say.
pub const HUGE_LENGTH: u32 = i32::MAX as u32;

/// The largest startup-phase packet accepted (the PostgreSQL server's own
/// `MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET: usize = 10_000;

/// The largest frontend message accepted after the startup packet.
pub const MAX_FRONTEND_MESSAGE: usize = 1024 * 1024;

/// The `server_version` this server reports.
pub const SERVER_VERSION: &str = "15.0";

/// What [`Mode::HugeLength`] trickles after the header, and how often.
const TRICKLE: (&[u8], Duration) = (b"xxxxxxxxxxxxxxxx", Duration::from_millis(100));

/// How much garbage [`Mode::GarbageAfterS`] sends after its `S`: more than the TLS record its
/// first bytes seem to announce, so that a client's TLS library has a whole "record" to reject
/// instead of waiting for the rest of it.
pub const GARBAGE_BYTES: usize = 64 * 1024;

/// The size of the chunks big messages are streamed in.
const CHUNK: usize = 64 * 1024;

/// The protocol codes of the startup phase (`pqcomm.h`).
const PROTOCOL_3: u32 = 196_608;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// How the server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Well behaved: TLS when asked, cleartext password, `AuthenticationOk`, `ParameterStatus`
    /// (`server_version` [`SERVER_VERSION`] and the usual others), `BackendKeyData`,
    /// `ReadyForQuery`, then answers simple and extended queries (`SHOW server_version`, and
    /// psql's `pg_stat_ssl` probe with the truth about this connection).
    Baseline,
    /// Answers an `SSLRequest` with `N`, then a [`Mode::Baseline`] login in plain text.
    NoTls,
    /// Answers an `SSLRequest` with `S`, then garbage instead of a TLS ServerHello.
    GarbageAfterS,
    /// Answers an `SSLRequest` with `S` and, in the same write, an
    /// `AuthenticationCleartextPassword` in plain text (CVE-2021-23222: data a man in the
    /// middle could inject before the handshake). A client that goes on with the handshake
    /// and then answers that request is caught sending its password.
    PlaintextAfterS,
    /// After the startup packet: an `ErrorResponse` of [`HUGE_ERROR_BYTES`] of text.
    HugeError,
    /// After the startup packet: an `ErrorResponse` header declaring [`HUGE_LENGTH`] bytes,
    /// then a trickle of bytes that never completes it.
    HugeLength,
    /// After the startup packet: an `Authentication` request header declaring [`HUGE_LENGTH`]
    /// bytes, then silence.
    HugeLengthAuth,
    /// After the startup packet: `NoticeResponse`s, without end.
    EndlessNotices,
    /// After a cleartext password login and `AuthenticationOk`: `NoticeResponse`s, without end.
    EndlessNoticesAfterAuth,
    /// Reads the startup packet and never answers.
    TarpitBeforeLogin,
    /// Cleartext password login, `AuthenticationOk`, then never a `ReadyForQuery`.
    TarpitAfterLogin,
    /// Answers an `SSLRequest` with `S`, reads the ClientHello and sends half of its first
    /// handshake flight, then closes.
    CloseMidHandshake,
    /// Asks for a cleartext password, reads it, sends the first half of `AuthenticationOk`,
    /// then closes.
    CloseMidAuth,
}

impl Mode {
    /// Every mode, the baseline first.
    pub const ALL: [Mode; 13] = [
        Self::Baseline,
        Self::NoTls,
        Self::GarbageAfterS,
        Self::PlaintextAfterS,
        Self::HugeError,
        Self::HugeLength,
        Self::HugeLengthAuth,
        Self::EndlessNotices,
        Self::EndlessNoticesAfterAuth,
        Self::TarpitBeforeLogin,
        Self::TarpitAfterLogin,
        Self::CloseMidHandshake,
        Self::CloseMidAuth,
    ];

    /// The mode's name (`baseline`, `no-tls`, `garbage-after-s`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::NoTls => "no-tls",
            Self::GarbageAfterS => "garbage-after-s",
            Self::PlaintextAfterS => "plaintext-after-s",
            Self::HugeError => "huge-error",
            Self::HugeLength => "huge-length",
            Self::HugeLengthAuth => "huge-length-auth",
            Self::EndlessNotices => "endless-notices",
            Self::EndlessNoticesAfterAuth => "endless-notices-after-auth",
            Self::TarpitBeforeLogin => "tarpit-before-login",
            Self::TarpitAfterLogin => "tarpit-after-login",
            Self::CloseMidHandshake => "close-mid-handshake",
            Self::CloseMidAuth => "close-mid-auth",
        }
    }

    /// Parses what [`Mode::as_str`] prints.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether the mode is about the answer to an `SSLRequest`, and plays the baseline to a
    /// plain startup packet.
    fn about_ssl_answer(self) -> bool {
        matches!(
            self,
            Self::NoTls | Self::GarbageAfterS | Self::PlaintextAfterS | Self::CloseMidHandshake
        )
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What carried a message: plain TCP or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Plain TCP, readable by anyone on the path.
    Plain,
    /// Inside a TLS session.
    Tls,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The client closed the connection (or sent `Terminate`, or a write to it failed).
    ClientClosed,
    /// The mode closed it, as planned.
    ModeClosed,
    /// [`MAX_CONNECTION_TIME`] ran out.
    TimeLimit,
    /// [`MAX_BYTES_SENT`] was reached.
    ByteLimit,
    /// The client sent something this server does not take (a bad packet, a failed TLS
    /// handshake); the text says what.
    Refused(String),
}

/// What happened on one connection, as the server saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// The client sent an `SSLRequest`.
    pub ssl_request: bool,
    /// The client sent a `GSSENCRequest`.
    pub gss_request: bool,
    /// A TLS handshake completed.
    pub tls: bool,
    /// A startup packet came (its channel).
    pub startup: Option<Channel>,
    /// The `user` of the startup packet.
    pub user: Option<String>,
    /// A `PasswordMessage` came (its channel). Only its arrival is kept, never its text.
    pub password: Option<Channel>,
    /// `AuthenticationOk` was sent.
    pub authenticated: bool,
    /// `ReadyForQuery` was sent after the login: the client is connected.
    pub ready: bool,
    /// Queries answered (simple `Query`, or extended `Execute`).
    pub queries: u32,
    /// The client sent `Terminate`.
    pub terminated: bool,
    /// Bytes written to the socket (TLS records included).
    pub bytes_sent: u64,
    /// Bytes read from the socket.
    pub bytes_received: u64,
    /// Why the connection ended; `None` while it is open.
    pub end: Option<End>,
}

/// What all connections to a server came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Connections accepted.
    pub connections: usize,
    /// Some connection completed a TLS handshake.
    pub tls: bool,
    /// Some connection sent a startup packet.
    pub startup: bool,
    /// Some connection sent a password.
    pub password: bool,
    /// Some connection sent a password in plain text.
    pub password_plain: bool,
    /// Some connection reached `ReadyForQuery`: a client was connected.
    pub ready: bool,
    /// Queries answered, over all connections.
    pub queries: u32,
    /// Bytes sent, over all connections.
    pub bytes_sent: u64,
    /// Every connection has ended.
    pub all_ended: bool,
}

impl Summary {
    /// The summary of `records`.
    pub fn of(records: &[ConnectionRecord]) -> Self {
        let any = |f: fn(&ConnectionRecord) -> bool| records.iter().any(f);
        Self {
            connections: records.len(),
            tls: any(|r| r.tls),
            startup: any(|r| r.startup.is_some()),
            password: any(|r| r.password.is_some()),
            password_plain: any(|r| r.password == Some(Channel::Plain)),
            ready: any(|r| r.ready),
            queries: records.iter().map(|r| r.queries).sum(),
            bytes_sent: records.iter().map(|r| r.bytes_sent).sum(),
            all_ended: records.iter().all(|r| r.end.is_some()),
        }
    }
}

/// The server could not be started.
#[derive(Debug)]
pub struct HostileError {
    message: String,
}

impl HostileError {
    fn new(what: &str, error: impl fmt::Display) -> Self {
        Self {
            message: format!("hostile server: {what}: {error}"),
        }
    }
}

impl fmt::Display for HostileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostileError {}

/// One record per accepted connection, each shared with the task serving it.
type Records = Arc<Mutex<Vec<Arc<Mutex<ConnectionRecord>>>>>;

/// A running hostile server; dropping it stops it and closes every connection.
pub struct HostileServer {
    mode: Mode,
    addr: SocketAddr,
    records: Records,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl fmt::Debug for HostileServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostileServer")
            .field("mode", &self.mode)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HostileServer {
    /// Starts a server in `mode` on `127.0.0.1` (an ephemeral port), serving TLS with
    /// `identity` (a certificate chain and its key) where the mode accepts TLS.
    pub fn start(mode: Mode, identity: &Pem) -> Result<Self, HostileError> {
        let config = Arc::new(server_config(identity)?);
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| HostileError::new("cannot listen on 127.0.0.1", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| HostileError::new("cannot make the listener non-blocking", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| HostileError::new("no local address", e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HostileError::new("cannot start a runtime", e))?;
        let records = Records::default();
        let (shutdown, stop) = oneshot::channel();
        let shared = records.clone();
        let thread = thread::Builder::new()
            .name(format!("hostile-{mode}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = stop => {}
                        () = accept_loop(listener, mode, config, shared) => {}
                    }
                });
                // Dropping the runtime here cancels every connection task: their sockets close.
            })
            .map_err(|e| HostileError::new("cannot start a thread", e))?;
        Ok(Self {
            mode,
            addr,
            records,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The mode served.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The address listened on (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A copy of every connection's record so far, in the order they were accepted.
    pub fn connections(&self) -> Vec<ConnectionRecord> {
        lock(&self.records)
            .iter()
            .map(|r| lock(r).clone())
            .collect()
    }

    /// What all connections so far came to.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.connections())
    }

    /// Waits until every connection accepted so far has ended, for at most `limit`; returns
    /// whether they all did. A client that exits leaves its last bytes in the socket for the
    /// server to read: wait for this before judging it by [`HostileServer::summary`].
    pub fn settle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.summary().all_ended {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The thread may have ended already; then nobody listens, which is fine.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic in the server thread has been reported by the panic hook already.
            let _ = thread.join();
        }
    }
}

/// A lock that survives a panicked holder: records are plain data, always consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Changes a connection's record.
fn note(record: &Mutex<ConnectionRecord>, change: impl FnOnce(&mut ConnectionRecord)) {
    change(&mut lock(record));
}

/// The rustls server configuration for `identity` (ring, TLS 1.2 and 1.3, no client auth).
fn server_config(identity: &Pem) -> Result<rustls::ServerConfig, HostileError> {
    let chain = CertificateDer::pem_slice_iter(identity.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HostileError::new("bad certificate PEM", e))?;
    let key = PrivateKeyDer::from_pem_slice(identity.key.as_bytes())
        .map_err(|e| HostileError::new("bad key PEM", e))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| HostileError::new("TLS versions", e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| HostileError::new("certificate and key", e))
}

async fn accept_loop(
    listener: TcpListener,
    mode: Mode,
    config: Arc<rustls::ServerConfig>,
    records: Records,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let record = Arc::new(Mutex::new(ConnectionRecord::default()));
        lock(&records).push(record.clone());
        let config = config.clone();
        tokio::spawn(async move {
            let end = match tokio::time::timeout(
                MAX_CONNECTION_TIME,
                serve(stream, mode, config, record.clone()),
            )
            .await
            {
                Err(_) => End::TimeLimit,
                Ok(Ok(end)) => end,
                Ok(Err(e)) if is_client_gone(&e) => End::ClientClosed,
                Ok(Err(e)) => End::Refused(e.to_string()),
            };
            note(&record, |r| r.end = Some(end));
        });
    }
}

/// Whether `e` means the client went away.
fn is_client_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

/// A refusal: the client sent something this server does not take.
fn refused(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// The socket, counting the bytes that cross it into the connection's record.
struct Counted {
    inner: TcpStream,
    record: Arc<Mutex<ConnectionRecord>>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            note(&self.record, |r| r.bytes_received += read);
        }
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            note(&self.record, |r| r.bytes_sent += n as u64);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One connection, from the first packet to its end.
async fn serve(
    stream: TcpStream,
    mode: Mode,
    config: Arc<rustls::ServerConfig>,
    record: Arc<Mutex<ConnectionRecord>>,
) -> io::Result<End> {
    // Small writes (an `S`, a request) must leave at once, as a server's do.
    stream.set_nodelay(true)?;
    let mut plain = Counted {
        inner: stream,
        record: record.clone(),
    };
    // At most a GSSENCRequest, then an SSLRequest, then the startup packet.
    for _ in 0..3 {
        let (code, body) = read_startup_packet(&mut plain).await?;
        match code {
            GSSENC_REQUEST => {
                note(&record, |r| r.gss_request = true);
                plain.write_all(b"N").await?;
            }
            SSL_REQUEST => {
                note(&record, |r| r.ssl_request = true);
                return ssl_request(plain, mode, config, record).await;
            }
            PROTOCOL_3 => {
                note(&record, |r| r.startup = Some(Channel::Plain));
                note_user(&record, &body);
                let mode = if mode.about_ssl_answer() {
                    Mode::Baseline
                } else {
                    mode
                };
                let mut session = Session {
                    stream: plain,
                    channel: Channel::Plain,
                    tls_version: None,
                    record,
                };
                return session.play(mode).await;
            }
            CANCEL_REQUEST => return Ok(End::ModeClosed),
            other => return Err(refused(format!("unsupported protocol code {other}"))),
        }
    }
    Err(refused("too many negotiation packets"))
}

/// The answer to an `SSLRequest`, and what follows it.
async fn ssl_request(
    mut plain: Counted,
    mode: Mode,
    config: Arc<rustls::ServerConfig>,
    record: Arc<Mutex<ConnectionRecord>>,
) -> io::Result<End> {
    match mode {
        Mode::NoTls => {
            plain.write_all(b"N").await?;
            let (code, body) = read_startup_packet(&mut plain).await?;
            if code != PROTOCOL_3 {
                return Err(refused(format!(
                    "expected a startup packet, got code {code}"
                )));
            }
            note(&record, |r| r.startup = Some(Channel::Plain));
            note_user(&record, &body);
            let mut session = Session {
                stream: plain,
                channel: Channel::Plain,
                tls_version: None,
                record,
            };
            session.play(Mode::Baseline).await
        }
        Mode::GarbageAfterS => {
            // Read as a TLS record header, the text declares a record of 0x502f bytes
            // ("P/"); OpenSSL waits for all of it before it judges the record, so send more.
            let mut garbage = b"S".to_vec();
            while garbage.len() < GARBAGE_BYTES {
                garbage.extend_from_slice(b"HTTP/1.0 400 this is no TLS ServerHello\r\n");
            }
            plain.write_all(&garbage).await?;
            drain(&mut plain).await
        }
        Mode::PlaintextAfterS => {
            let mut bytes = b"S".to_vec();
            bytes.extend_from_slice(&auth_request(3));
            plain.write_all(&bytes).await?;
            // A client that answers the injected request before any handshake.
            let mut first = [0u8; 1];
            if plain.inner.peek(&mut first).await? == 0 {
                return Ok(End::ClientClosed);
            }
            if first[0] == b'p' {
                read_message(&mut plain).await?;
                note(&record, |r| r.password = Some(Channel::Plain));
                return Ok(End::ModeClosed);
            }
            let mut tls = TlsAcceptor::from(config)
                .accept(plain)
                .await
                .map_err(|e| refused(format!("TLS handshake: {e}")))?;
            note(&record, |r| r.tls = true);
            let (code, body) = read_startup_packet(&mut tls).await?;
            if code != PROTOCOL_3 {
                return Err(refused(format!(
                    "expected a startup packet, got code {code}"
                )));
            }
            note(&record, |r| r.startup = Some(Channel::Tls));
            note_user(&record, &body);
            // Nothing more is sent: a client that answers now answers the injected request.
            let (tag, _) = read_message(&mut tls).await?;
            if tag == b'p' {
                note(&record, |r| r.password = Some(Channel::Tls));
            }
            Ok(End::ModeClosed)
        }
        Mode::CloseMidHandshake => {
            plain.write_all(b"S").await?;
            half_handshake(&mut plain, config).await
        }
        _ => {
            plain.write_all(b"S").await?;
            let mut tls = TlsAcceptor::from(config)
                .accept(plain)
                .await
                .map_err(|e| refused(format!("TLS handshake: {e}")))?;
            let tls_version = match tls.get_ref().1.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
                Some(rustls::ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
                _ => Some("TLS"),
            };
            note(&record, |r| r.tls = true);
            let (code, body) = read_startup_packet(&mut tls).await?;
            if code != PROTOCOL_3 {
                return Err(refused(format!(
                    "expected a startup packet, got code {code}"
                )));
            }
            note(&record, |r| r.startup = Some(Channel::Tls));
            note_user(&record, &body);
            let mut session = Session {
                stream: tls,
                channel: Channel::Tls,
                tls_version,
                record,
            };
            session.play(mode).await
        }
    }
}

/// Reads the ClientHello, sends the first half of the server's answer, and closes.
async fn half_handshake(plain: &mut Counted, config: Arc<rustls::ServerConfig>) -> io::Result<End> {
    let mut tls =
        rustls::ServerConnection::new(config).map_err(|e| refused(format!("TLS state: {e}")))?;
    let mut buf = vec![0u8; 16 * 1024];
    while !tls.wants_write() {
        let n = plain.read(&mut buf).await?;
        if n == 0 {
            return Ok(End::ClientClosed);
        }
        let mut input = &buf[..n];
        while !input.is_empty() {
            tls.read_tls(&mut input)?;
            tls.process_new_packets()
                .map_err(|e| refused(format!("TLS handshake: {e}")))?;
        }
    }
    let mut flight = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut flight)?;
    }
    let half = flight.len().div_ceil(2);
    plain.write_all(&flight[..half]).await?;
    plain.flush().await?;
    Ok(End::ModeClosed)
}

/// Reads and discards until the client closes.
async fn drain<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<End> {
    let mut buf = vec![0u8; 16 * 1024];
    while stream.read(&mut buf).await? > 0 {}
    Ok(End::ClientClosed)
}

/// Keeps the `user` of a startup packet's body (after the protocol code).
fn note_user(record: &Mutex<ConnectionRecord>, body: &[u8]) {
    let mut fields = body.split(|b| *b == 0);
    while let (Some(key), Some(value)) = (fields.next(), fields.next()) {
        if key == b"user" {
            let user = String::from_utf8_lossy(value).into_owned();
            note(record, |r| r.user = Some(user));
            return;
        }
    }
}

/// A startup-phase packet: its protocol code and the rest of its body.
async fn read_startup_packet<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<(u32, Vec<u8>)> {
    let len = stream.read_u32().await? as usize;
    if !(8..=MAX_STARTUP_PACKET).contains(&len) {
        return Err(refused(format!("startup packet of {len} bytes")));
    }
    let code = stream.read_u32().await?;
    let mut body = vec![0u8; len - 8];
    stream.read_exact(&mut body).await?;
    Ok((code, body))
}

/// A frontend message after the startup packet: its tag and body.
async fn read_message<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<(u8, Vec<u8>)> {
    let tag = stream.read_u8().await?;
    let len = stream.read_u32().await? as usize;
    if !(4..=MAX_FRONTEND_MESSAGE).contains(&len) {
        return Err(refused(format!(
            "message {:?} of {len} bytes",
            char::from(tag)
        )));
    }
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).await?;
    Ok((tag, body))
}

/// A backend message: tag, int32 length (itself included), body.
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    // Every message built here is small; the huge ones are streamed by hand.
    out.extend_from_slice(
        &u32::try_from(body.len() + 4)
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// `Authentication*` with the given code (0 ok, 3 cleartext password).
fn auth_request(code: u32) -> Vec<u8> {
    message(b'R', &code.to_be_bytes())
}

/// The fields of an `ErrorResponse` or `NoticeResponse`, terminator included.
fn fields(severity: &str, code: &str, text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (tag, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', text),
    ] {
        body.push(tag);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    body
}

/// A C string.
fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// The next C string of `body` from `at`, and where the one after it starts.
fn take_cstr(body: &[u8], at: usize) -> (String, usize) {
    let rest = body.get(at..).unwrap_or_default();
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    (
        String::from_utf8_lossy(&rest[..end]).into_owned(),
        at + end + 1,
    )
}

/// A column of a result: name, type OID, type length.
#[derive(Clone, Copy)]
struct Column {
    name: &'static str,
    oid: u32,
    len: i16,
}

/// What a query is answered with: one row.
struct Answer {
    columns: Vec<Column>,
    row: Vec<Option<String>>,
    tag: &'static str,
}

/// An established (or establishing) session on `stream`.
struct Session<S> {
    stream: S,
    channel: Channel,
    tls_version: Option<&'static str>,
    record: Arc<Mutex<ConnectionRecord>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Plays `mode` after the startup packet.
    async fn play(&mut self, mode: Mode) -> io::Result<End> {
        match mode {
            Mode::Baseline
            | Mode::NoTls
            | Mode::GarbageAfterS
            | Mode::PlaintextAfterS
            | Mode::CloseMidHandshake => {
                if let Some(end) = self.login().await? {
                    return Ok(end);
                }
                self.ready_for_queries().await
            }
            Mode::HugeError => self.huge_error().await,
            Mode::HugeLength => self.huge_length().await,
            Mode::HugeLengthAuth => {
                let mut head = vec![b'R'];
                head.extend_from_slice(&HUGE_LENGTH.to_be_bytes());
                self.stream.write_all(&head).await?;
                self.stream.flush().await?;
                drain(&mut self.stream).await
            }
            Mode::EndlessNotices => self.notices().await,
            Mode::EndlessNoticesAfterAuth => {
                if let Some(end) = self.login().await? {
                    return Ok(end);
                }
                self.notices().await
            }
            Mode::TarpitBeforeLogin => drain(&mut self.stream).await,
            Mode::TarpitAfterLogin => {
                if let Some(end) = self.login().await? {
                    return Ok(end);
                }
                drain(&mut self.stream).await
            }
            Mode::CloseMidAuth => {
                if let Some(end) = self.password().await? {
                    return Ok(end);
                }
                let ok = auth_request(0);
                self.stream.write_all(&ok[..ok.len() / 2]).await?;
                self.stream.flush().await?;
                Ok(End::ModeClosed)
            }
        }
    }

    /// Asks for a cleartext password and reads it; `Some` when the connection ended instead.
    async fn password(&mut self) -> io::Result<Option<End>> {
        self.stream.write_all(&auth_request(3)).await?;
        let (tag, _) = match read_message(&mut self.stream).await {
            Ok(m) => m,
            Err(e) if is_client_gone(&e) => return Ok(Some(End::ClientClosed)),
            Err(e) => return Err(e),
        };
        if tag != b'p' {
            return Err(refused(format!(
                "expected a password message, got {:?}",
                char::from(tag)
            )));
        }
        let channel = self.channel;
        note(&self.record, |r| r.password = Some(channel));
        Ok(None)
    }

    /// [`Session::password`], then `AuthenticationOk`.
    async fn login(&mut self) -> io::Result<Option<End>> {
        if let Some(end) = self.password().await? {
            return Ok(Some(end));
        }
        self.stream.write_all(&auth_request(0)).await?;
        note(&self.record, |r| r.authenticated = true);
        Ok(None)
    }

    /// The rest of a good login, then queries until the client leaves.
    async fn ready_for_queries(&mut self) -> io::Result<End> {
        let mut out = Vec::new();
        for (name, value) in [
            ("server_version", SERVER_VERSION),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("TimeZone", "UTC"),
            ("is_superuser", "off"),
        ] {
            let mut body = Vec::new();
            cstr(&mut body, name);
            cstr(&mut body, value);
            out.extend(message(b'S', &body));
        }
        let mut key = Vec::new();
        key.extend_from_slice(&4242u32.to_be_bytes());
        key.extend_from_slice(&0x5eed_5eedu32.to_be_bytes());
        out.extend(message(b'K', &key));
        out.extend(message(b'Z', b"I"));
        self.stream.write_all(&out).await?;
        note(&self.record, |r| r.ready = true);
        self.queries().await
    }

    /// Simple and extended queries, each answered with one row.
    async fn queries(&mut self) -> io::Result<End> {
        let mut statements: HashMap<String, String> = HashMap::new();
        // Portal name -> (query, binary result columns).
        let mut portals: HashMap<String, (String, bool)> = HashMap::new();
        loop {
            let (tag, body) = match read_message(&mut self.stream).await {
                Ok(m) => m,
                Err(e) if is_client_gone(&e) => return Ok(End::ClientClosed),
                Err(e) => return Err(e),
            };
            let mut out = Vec::new();
            match tag {
                b'Q' => {
                    let (query, _) = take_cstr(&body, 0);
                    let answer = self.answer(&query);
                    out.extend(row_description(&answer.columns, false));
                    out.extend(data_row(&answer, false));
                    out.extend(message(b'C', format!("{}\0", answer.tag).as_bytes()));
                    out.extend(message(b'Z', b"I"));
                    note(&self.record, |r| r.queries += 1);
                }
                b'P' => {
                    let (name, at) = take_cstr(&body, 0);
                    let (query, _) = take_cstr(&body, at);
                    statements.insert(name, query);
                    out.extend(message(b'1', b""));
                }
                b'B' => {
                    let (portal, at) = take_cstr(&body, 0);
                    let (statement, at) = take_cstr(&body, at);
                    let query = statements.get(&statement).cloned().unwrap_or_default();
                    let binary = binary_results(&body, at);
                    portals.insert(portal, (query, binary));
                    out.extend(message(b'2', b""));
                }
                b'D' => {
                    let kind = body.first().copied().unwrap_or(b'S');
                    let (name, _) = take_cstr(&body, 1);
                    if kind == b'S' {
                        let query = statements.get(&name).cloned().unwrap_or_default();
                        out.extend(message(b't', &0u16.to_be_bytes()));
                        out.extend(row_description(&self.answer(&query).columns, false));
                    } else {
                        let (query, binary) = portals.get(&name).cloned().unwrap_or_default();
                        out.extend(row_description(&self.answer(&query).columns, binary));
                    }
                }
                b'E' => {
                    let (portal, _) = take_cstr(&body, 0);
                    let (query, binary) = portals.get(&portal).cloned().unwrap_or_default();
                    let answer = self.answer(&query);
                    out.extend(data_row(&answer, binary));
                    out.extend(message(b'C', format!("{}\0", answer.tag).as_bytes()));
                    note(&self.record, |r| r.queries += 1);
                }
                b'C' => out.extend(message(b'3', b"")),
                b'S' => out.extend(message(b'Z', b"I")),
                b'H' => {}
                b'X' => {
                    note(&self.record, |r| r.terminated = true);
                    return Ok(End::ClientClosed);
                }
                other => {
                    out.extend(message(
                        b'E',
                        &fields(
                            "ERROR",
                            "0A000",
                            &format!("message {:?} is not served here", char::from(other)),
                        ),
                    ));
                    out.extend(message(b'Z', b"I"));
                }
            }
            if !out.is_empty() {
                self.stream.write_all(&out).await?;
            }
        }
    }

    /// The one row a query gets: psql's `pg_stat_ssl` probe gets the truth about this
    /// connection, anything else `server_version`.
    fn answer(&self, query: &str) -> Answer {
        if query.contains("pg_stat_ssl") {
            let ssl = if self.channel == Channel::Tls {
                "t"
            } else {
                "f"
            };
            return Answer {
                columns: vec![
                    Column {
                        name: "ssl",
                        oid: 16,
                        len: 1,
                    },
                    Column {
                        name: "version",
                        oid: 25,
                        len: -1,
                    },
                ],
                row: vec![Some(ssl.to_owned()), self.tls_version.map(str::to_owned)],
                tag: "SELECT 1",
            };
        }
        Answer {
            columns: vec![Column {
                name: "server_version",
                oid: 25,
                len: -1,
            }],
            row: vec![Some(SERVER_VERSION.to_owned())],
            tag: "SHOW",
        }
    }

    /// [`Mode::HugeError`]: one `ErrorResponse` of [`HUGE_ERROR_BYTES`] of text, streamed.
    async fn huge_error(&mut self) -> io::Result<End> {
        let head = b"SFATAL\0VFATAL\0C08P01\0M";
        let tail = b"\0\0";
        let len = 4 + head.len() + HUGE_ERROR_BYTES + tail.len();
        let mut start = vec![b'E'];
        start.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        start.extend_from_slice(head);
        self.stream.write_all(&start).await?;
        let chunk = vec![b'A'; CHUNK];
        let mut left = HUGE_ERROR_BYTES;
        while left > 0 {
            let n = left.min(CHUNK);
            self.stream.write_all(&chunk[..n]).await?;
            left -= n;
        }
        self.stream.write_all(tail).await?;
        self.stream.flush().await?;
        Ok(End::ModeClosed)
    }

    /// [`Mode::HugeLength`]: a header declaring [`HUGE_LENGTH`] bytes, then a trickle.
    async fn huge_length(&mut self) -> io::Result<End> {
        let mut head = vec![b'E'];
        head.extend_from_slice(&HUGE_LENGTH.to_be_bytes());
        self.stream.write_all(&head).await?;
        self.stream.flush().await?;
        let (bytes, every) = TRICKLE;
        let mut sent = 0u64;
        while sent < MAX_BYTES_SENT {
            tokio::time::sleep(every).await;
            self.stream.write_all(bytes).await?;
            self.stream.flush().await?;
            sent += bytes.len() as u64;
        }
        Ok(End::ByteLimit)
    }

    /// [`Mode::EndlessNotices`]: `NoticeResponse`s until the client leaves or
    /// [`MAX_BYTES_SENT`].
    async fn notices(&mut self) -> io::Result<End> {
        let text = format!("hostile notice, one of many: {}", "n".repeat(200));
        let one = message(b'N', &fields("NOTICE", "00000", &text));
        let mut batch = Vec::with_capacity(CHUNK + one.len());
        while batch.len() < CHUNK {
            batch.extend_from_slice(&one);
        }
        let mut sent = 0u64;
        while sent < MAX_BYTES_SENT {
            self.stream.write_all(&batch).await?;
            sent += batch.len() as u64;
        }
        self.stream.flush().await?;
        Ok(End::ByteLimit)
    }
}

/// Whether a `Bind` body, from its parameter format codes at `at` on, asks for binary results
/// (one result format code, 1: what tokio-postgres sends).
fn binary_results(body: &[u8], at: usize) -> bool {
    let i16_at = |at: usize| {
        body.get(at..at + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
    };
    let Some(formats) = i16_at(at) else {
        return false;
    };
    let mut at = at + 2 + 2 * usize::try_from(formats).unwrap_or(0);
    let Some(params) = i16_at(at) else {
        return false;
    };
    at += 2;
    for _ in 0..params {
        let Some(len) = body.get(at..at + 4) else {
            return false;
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        at += 4 + usize::try_from(len).unwrap_or(0);
    }
    i16_at(at) == Some(1) && i16_at(at + 2) == Some(1)
}

/// `RowDescription` for `columns`, in text or binary format.
fn row_description(columns: &[Column], binary: bool) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u16::try_from(columns.len()).unwrap_or(0).to_be_bytes());
    for c in columns {
        cstr(&mut body, c.name);
        body.extend_from_slice(&0u32.to_be_bytes()); // table OID
        body.extend_from_slice(&0u16.to_be_bytes()); // column number
        body.extend_from_slice(&c.oid.to_be_bytes());
        body.extend_from_slice(&c.len.to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes()); // type modifier
        body.extend_from_slice(&u16::from(binary).to_be_bytes());
    }
    message(b'T', &body)
}

/// `DataRow` for the answer's row, in text or binary format (only `bool` differs).
fn data_row(answer: &Answer, binary: bool) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u16::try_from(answer.row.len()).unwrap_or(0).to_be_bytes());
    for (value, column) in answer.row.iter().zip(&answer.columns) {
        match value {
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                let bytes = match (binary, column.oid) {
                    (true, 16) => vec![u8::from(v == "t")],
                    _ => v.as_bytes().to_vec(),
                };
                body.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(0).to_be_bytes());
                body.extend_from_slice(&bytes);
            }
        }
    }
    message(b'D', &body)
}
