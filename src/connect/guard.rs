//! libpq's limits on what a server may send before the session is up, enforced on the byte
//! stream under tokio-postgres.
//!
//! tokio-postgres trusts the length word of every message: a server that declares 2^31-1
//! bytes gets them buffered, and a 64 MiB ErrorResponse is read whole and printed. libpq reads
//! the start-up with suspicion (`PQconnectPoll` in `fe-connect.c`, `pqParseInput3` in
//! `fe-protocol3.c`), and so does [`Guard`], which sits between the socket (or the TLS
//! stream) and tokio-postgres until the first ReadyForQuery:
//!
//! | when | libpq's rule | here |
//! |---|---|---|
//! | the answer to SSLRequest | one byte, `S`, `N` or `E`; bytes that came with the `S` stay in libpq's buffer (OpenSSL reads the socket), and once the handshake has succeeded they are refused: they were not encrypted and may have been injected ("received unencrypted data after SSL response"); a failed handshake is a TLS failure as any other | the same: the guard sets the injection flag, and the connector refuses after a successful handshake |
//! | before AuthenticationOk | only `R` (8 to 2000 bytes) and `E` (8 to 30000 bytes; a longer one is taken for a pre-3.0 server's error and fails) | the same |
//! | after AuthenticationOk, until ReadyForQuery | a message type that cannot be long (not `T D d V E N A`) may not exceed 30000 bytes ("lost synchronization with server") | the same, and a long type may not exceed [`MAX_STARTUP_LONG_MESSAGE`] |
//! | notices during start-up | each one goes to the notice processor | the first [`MAX_STARTUP_NOTICE_BYTES`] bytes of them reach tokio-postgres (which keeps them in memory until the connection runs); the rest are dropped |
//! | everything else before ReadyForQuery | kept | at most [`MAX_STARTUP_BYTES`] |
//!
//! The last three rows are bounds libpq does not have: a real server sends a few hundred bytes
//! after authentication; a hostile one could otherwise grow the client's memory until the
//! connect timeout. After ReadyForQuery the guard reads straight through, so queries pay
//! nothing for it. A refusal is an [`io::Error`] holding a [`Violation`]; `connect` finds it
//! in tokio-postgres's error and reports it as libpq would, without retrying.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// libpq's largest authentication request (`R`) before authentication completes.
pub(super) const MAX_AUTH_REQUEST: u32 = 2000;
/// libpq's largest ErrorResponse before authentication completes; a longer one is taken for a
/// pre-3.0 server's error message.
pub(super) const MAX_STARTUP_ERROR: u32 = 30000;
/// libpq's largest message of a type that cannot be long (`fe-protocol3.c`).
pub(super) const MAX_SHORT_MESSAGE: u32 = 30000;
/// The largest ErrorResponse or NoticeResponse accepted after authentication and before
/// ReadyForQuery (libpq has no such bound).
pub(super) const MAX_STARTUP_LONG_MESSAGE: u32 = 1 << 20;
/// How many bytes of NoticeResponses during start-up are passed on; later ones are dropped.
pub(super) const MAX_STARTUP_NOTICE_BYTES: usize = 64 << 10;
/// How many bytes of other messages the start-up may take after authentication.
pub(super) const MAX_STARTUP_BYTES: usize = 1 << 20;

/// How much is read from the stream at a time while the guard parses.
const CHUNK: usize = 8192;

/// What the server sent that libpq would not accept. Its `Display` is libpq's message (or,
/// for the bounds libpq lacks, one in the same style); it never quotes more than a bounded
/// part of the server's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Violation {
    /// The answer to SSLRequest was not `S`, `N` or `E`.
    InvalidSslResponse(u8),
    /// Bytes came with `S`, before the TLS handshake (reported once the handshake succeeds).
    UnencryptedAfterSsl,
    /// The server answered SSLRequest with an error (libpq reports it and stops).
    ErrorAfterSslRequest(String),
    /// Before authentication completed, a message other than `R` and `E`, or an `R` of a
    /// length outside 8 to 2000 bytes.
    ExpectedAuthentication(u8),
    /// Before authentication completed, an `E` of a length outside 8 to 30000 bytes.
    OversizedStartupError(u32),
    /// A message whose length word is impossible or over the limit for its type.
    LostSync(u8, u32),
    /// More than [`MAX_STARTUP_BYTES`] between authentication and ReadyForQuery.
    StartupTooLong,
    /// An authentication request `require_auth` does not allow (libpq's text), refused before
    /// tokio-postgres sees it.
    AuthRequirement(String),
}

fn printable(kind: u8) -> String {
    if kind.is_ascii_graphic() {
        (kind as char).to_string()
    } else {
        format!("\\x{kind:02x}")
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSslResponse(b) => write!(
                f,
                "received invalid response to SSL negotiation: {}",
                printable(*b)
            ),
            Self::UnencryptedAfterSsl => {
                f.write_str("received unencrypted data after SSL response")
            }
            Self::ErrorAfterSslRequest(message) => f.write_str(message),
            Self::ExpectedAuthentication(b) => write!(
                f,
                "expected authentication request from server, but received {}",
                printable(*b)
            ),
            Self::OversizedStartupError(len) => write!(
                f,
                "server sent an error message of {len} bytes before authentication (libpq accepts 8 to {MAX_STARTUP_ERROR}): not a PostgreSQL 3.0 server"
            ),
            Self::LostSync(b, len) => write!(
                f,
                "lost synchronization with server: got message type \"{}\", length {len}",
                printable(*b)
            ),
            Self::StartupTooLong => write!(
                f,
                "server sent more than {MAX_STARTUP_BYTES} bytes between authentication and ready-for-query"
            ),
            Self::AuthRequirement(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Violation {}

impl Violation {
    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// The violation somewhere in `error`'s chain of sources, if any.
    pub(super) fn find(error: &(dyn std::error::Error + 'static)) -> Option<Violation> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(err) = source {
            if let Some(v) = err.downcast_ref::<Violation>() {
                return Some(v.clone());
            }
            if let Some(io) = err.downcast_ref::<io::Error>()
                && let Some(v) = io.get_ref().and_then(|i| i.downcast_ref::<Violation>())
            {
                return Some(v.clone());
            }
            source = err.source();
        }
        None
    }
}

/// Where the guard's stream begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// The server's answer to an SSLRequest comes first.
    SslResponse,
    /// Protocol messages from the first byte (a plain connection, or inside TLS).
    Messages,
    /// Nothing to check (TLS records under direct negotiation: the TLS stream has its own guard).
    Through,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    SslResponse,
    /// `E` answered the SSLRequest: its message is collected, then reported.
    SslError,
    BeforeAuth,
    AfterAuth,
    Through,
}

/// A stream that enforces libpq's start-up limits on what it reads (see the module docs).
/// Writes go straight through.
#[derive(Debug)]
pub(super) struct Guard<S> {
    inner: S,
    phase: Phase,
    /// Bytes checked and ready for the reader, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
    header: [u8; 5],
    header_len: usize,
    /// Body bytes left of the current message.
    body_left: usize,
    kind: u8,
    forward: bool,
    /// The first body bytes of an `R` (its request code), or an `E` after SSLRequest.
    body: Vec<u8>,
    notice_bytes: usize,
    startup_bytes: usize,
    /// Set when bytes came with `S`; see [`Guard::with_injection_flag`].
    injected: Option<Arc<AtomicBool>>,
    /// `require_auth`, checked on each authentication request.
    require_auth: Option<Arc<crate::plan::RequireAuth>>,
    /// Whether the client has finished its side of authentication (a password request was
    /// answered, or the SASL exchange reached its final message).
    client_finished: bool,
}

impl<S> Guard<S> {
    /// Sets `flag` when bytes come with the `S` answer to SSLRequest. Those bytes are dropped,
    /// as libpq leaves them in its own buffer while OpenSSL reads the socket; whoever completes
    /// the TLS handshake then refuses the connection when the flag is set.
    pub(super) fn with_injection_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.injected = Some(flag);
        self
    }

    /// Checks every authentication request against `require_auth` (libpq 16's
    /// `check_expected_areq`): one not allowed fails the read before tokio-postgres answers it.
    pub(super) fn with_require_auth(
        mut self,
        require_auth: Option<Arc<crate::plan::RequireAuth>>,
    ) -> Self {
        self.require_auth = require_auth;
        self
    }

    /// Guards `inner`, which begins as `start` says.
    pub(super) fn new(inner: S, start: Start) -> Self {
        Self {
            inner,
            phase: match start {
                Start::SslResponse => Phase::SslResponse,
                Start::Messages => Phase::BeforeAuth,
                Start::Through => Phase::Through,
            },
            out: Vec::new(),
            out_pos: 0,
            header: [0; 5],
            header_len: 0,
            body_left: 0,
            kind: 0,
            forward: true,
            body: Vec::new(),
            notice_bytes: 0,
            startup_bytes: 0,
            injected: None,
            require_auth: None,
            client_finished: false,
        }
    }

    /// Checks `data`, read from the stream, and queues what may be passed on.
    fn feed(&mut self, mut data: &[u8]) -> Result<(), Violation> {
        while !data.is_empty() {
            match self.phase {
                Phase::Through => {
                    self.out.extend_from_slice(data);
                    return Ok(());
                }
                Phase::SslResponse => {
                    let (first, rest) = (data[0], &data[1..]);
                    match first {
                        b'S' => {
                            if !rest.is_empty() {
                                match &self.injected {
                                    Some(flag) => flag.store(true, Ordering::SeqCst),
                                    None => return Err(Violation::UnencryptedAfterSsl),
                                }
                                // Never handed to TLS: libpq's buffer, not OpenSSL's socket.
                                self.out.push(b'S');
                                self.phase = Phase::Through;
                                return Ok(());
                            }
                            self.out.push(b'S');
                            self.phase = Phase::Through;
                        }
                        b'N' => {
                            self.out.push(b'N');
                            self.phase = Phase::BeforeAuth;
                        }
                        b'E' => {
                            self.phase = Phase::SslError;
                            self.header = [b'E', 0, 0, 0, 0];
                            self.header_len = 1;
                        }
                        other => return Err(Violation::InvalidSslResponse(other)),
                    }
                    data = rest;
                }
                _ if self.header_len < 5 => {
                    let take = (5 - self.header_len).min(data.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&data[..take]);
                    self.header_len += take;
                    data = &data[take..];
                    if self.header_len == 5 {
                        self.start_message()?;
                        if self.body_left == 0 {
                            self.end_message()?;
                        }
                    }
                }
                _ => {
                    let take = self.body_left.min(data.len());
                    let (chunk, rest) = data.split_at(take);
                    if self.phase == Phase::SslError || (self.kind == b'R' && self.body.len() < 4) {
                        let keep = if self.phase == Phase::SslError {
                            chunk.len()
                        } else {
                            (4 - self.body.len()).min(chunk.len())
                        };
                        self.body.extend_from_slice(&chunk[..keep]);
                    }
                    if self.forward {
                        self.out.extend_from_slice(chunk);
                    }
                    self.body_left -= take;
                    data = rest;
                    if self.body_left == 0 {
                        self.end_message()?;
                    }
                }
            }
        }
        Ok(())
    }

    fn start_message(&mut self) -> Result<(), Violation> {
        let kind = self.header[0];
        let len = u32::from_be_bytes([
            self.header[1],
            self.header[2],
            self.header[3],
            self.header[4],
        ]);
        self.kind = kind;
        self.body.clear();
        // An error answering SSLRequest is collected and reported, not passed on.
        self.forward = self.phase != Phase::SslError;
        match self.phase {
            Phase::SslError | Phase::BeforeAuth if kind == b'E' => {
                if !(8..=MAX_STARTUP_ERROR).contains(&len) {
                    return Err(Violation::OversizedStartupError(len));
                }
            }
            Phase::BeforeAuth if kind == b'R' => {
                if !(8..=MAX_AUTH_REQUEST).contains(&len) {
                    return Err(Violation::ExpectedAuthentication(kind));
                }
            }
            Phase::BeforeAuth => return Err(Violation::ExpectedAuthentication(kind)),
            _ => {
                let long = matches!(kind, b'T' | b'D' | b'd' | b'V' | b'E' | b'N' | b'A');
                let limit = if long {
                    MAX_STARTUP_LONG_MESSAGE
                } else {
                    MAX_SHORT_MESSAGE
                };
                if !(4..=limit).contains(&len) {
                    return Err(Violation::LostSync(kind, len));
                }
                if kind == b'N' {
                    self.notice_bytes += len as usize + 1;
                    self.forward = self.notice_bytes <= MAX_STARTUP_NOTICE_BYTES;
                } else {
                    self.startup_bytes += len as usize + 1;
                    if self.startup_bytes > MAX_STARTUP_BYTES {
                        return Err(Violation::StartupTooLong);
                    }
                }
            }
        }
        // The length word counts itself; 4 is checked above for every phase (8 for R and E).
        self.body_left = len.saturating_sub(4) as usize;
        if self.forward {
            self.out.extend_from_slice(&self.header);
        }
        Ok(())
    }

    fn end_message(&mut self) -> Result<(), Violation> {
        self.header_len = 0;
        match (self.phase, self.kind) {
            (Phase::SslError, _) => {
                return Err(Violation::ErrorAfterSslRequest(error_text(&self.body)));
            }
            (Phase::BeforeAuth, b'R') => {
                let code = u32::from_be_bytes([
                    self.body.first().copied().unwrap_or(0),
                    self.body.get(1).copied().unwrap_or(0),
                    self.body.get(2).copied().unwrap_or(0),
                    self.body.get(3).copied().unwrap_or(0),
                ]);
                if let Some(policy) = &self.require_auth {
                    policy
                        .check(code, self.client_finished)
                        .map_err(Violation::AuthRequirement)?;
                }
                use crate::plan::auth_request::{MD5, OK, PASSWORD, SASL_FIN};
                match code {
                    // tokio-postgres answers these with the password, or has checked the
                    // server's proof.
                    PASSWORD | MD5 | SASL_FIN => self.client_finished = true,
                    OK => self.phase = Phase::AfterAuth,
                    _ => {}
                }
            }
            (Phase::AfterAuth, b'Z') => self.phase = Phase::Through,
            _ => {}
        }
        Ok(())
    }
}

/// The severity and message fields of an ErrorResponse body, bounded and escaped.
fn error_text(body: &[u8]) -> String {
    let mut severity = "ERROR".to_string();
    let mut message = String::new();
    for field in body.split(|b| *b == 0) {
        let Some((&code, value)) = field.split_first() else {
            continue;
        };
        let value = String::from_utf8_lossy(value);
        match code {
            b'S' => severity = crate::text::foreign(&value),
            b'M' => message = crate::text::foreign(&value),
            _ => {}
        }
    }
    format!("{severity}: {message}")
}

impl<S: AsyncRead + Unpin> AsyncRead for Guard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.out_pos < this.out.len() {
                let n = (this.out.len() - this.out_pos).min(buf.remaining());
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.phase == Phase::Through {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of stream: the reader sees it as such.
                return Poll::Ready(Ok(()));
            }
            this.feed(read.filled()).map_err(Violation::into_io)?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn header(kind: u8, len: u32) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&len.to_be_bytes());
        out
    }

    /// Feeds `input` in pieces of `step` bytes; returns what was passed on, or the violation.
    fn run(start: Start, input: &[u8], step: usize) -> Result<Vec<u8>, Violation> {
        run_with(start, input, step, None)
    }

    fn run_with(
        start: Start,
        input: &[u8],
        step: usize,
        require_auth: Option<&str>,
    ) -> Result<Vec<u8>, Violation> {
        let policy = require_auth.map(|v| {
            Arc::new(
                crate::plan::RequireAuth::parse(Some(v))
                    .expect("valid")
                    .expect("set"),
            )
        });
        let mut guard = Guard::new((), start).with_require_auth(policy);
        for piece in input.chunks(step.max(1)) {
            guard.feed(piece)?;
        }
        Ok(guard.out)
    }

    fn startup() -> Vec<u8> {
        let mut s = message(b'R', &3u32.to_be_bytes()); // cleartext password request
        s.extend(message(b'R', &0u32.to_be_bytes())); // AuthenticationOk
        s.extend(message(b'S', b"server_version\x0015.0\x00"));
        s.extend(message(b'K', &[0, 0, 0, 1, 0, 0, 0, 2]));
        s.extend(message(b'Z', b"I"));
        s
    }

    /// A request `require_auth` does not allow fails before the message is complete in what
    /// the reader gets, in any split: tokio-postgres never sees it, so never answers it.
    #[test]
    fn require_auth_refuses_a_request_before_the_reader_has_it() {
        let request = message(b'R', &3u32.to_be_bytes()); // cleartext password
        for step in 1..=request.len() {
            let mut guard = Guard::new((), Start::Messages).with_require_auth(Some(Arc::new(
                crate::plan::RequireAuth::parse(Some("scram-sha-256"))
                    .expect("valid")
                    .expect("set"),
            )));
            // What poll_read hands over: the output of each read that did not fail (a failing
            // read returns the error, not its output).
            let (mut failed, mut delivered) = (None, 0);
            for piece in request.chunks(step) {
                if let Err(e) = guard.feed(piece) {
                    failed = Some(e);
                    break;
                }
                delivered = guard.out.len();
            }
            assert!(
                matches!(&failed, Some(Violation::AuthRequirement(m)) if m.contains("server requested a cleartext password")),
                "step {step}: {failed:?}"
            );
            assert!(
                delivered < request.len(),
                "step {step}: the whole request got out"
            );
        }
        // Allowed: the same start-up passes.
        assert!(run_with(Start::Messages, &startup(), 3, Some("password")).is_ok());
        // Trust (OK with no request) against a requirement.
        let trust = message(b'R', &0u32.to_be_bytes());
        assert!(matches!(
            run_with(Start::Messages, &trust, 2, Some("!none")),
            Err(Violation::AuthRequirement(m)) if m.contains("did not complete authentication")
        ));
        assert!(run_with(Start::Messages, &trust, 2, Some("none")).is_ok());
    }

    #[test]
    fn a_normal_startup_passes_unchanged_in_any_split() {
        let mut input = startup();
        input.extend(message(b'D', &vec![7u8; 100_000])); // after ReadyForQuery: unchecked
        for step in [1, 2, 3, 5, 7, 64, 100_000_000] {
            assert_eq!(run(Start::Messages, &input, step).as_ref(), Ok(&input));
        }
        let mut tls = vec![b'N'];
        tls.extend(startup());
        assert_eq!(run(Start::SslResponse, &tls, 1).as_ref(), Ok(&tls));
    }

    #[test]
    fn only_authentication_and_errors_come_before_authentication() {
        let notice = message(b'N', b"SNOTICE\x00Mhi\x00\x00");
        assert_eq!(
            run(Start::Messages, &notice, 4),
            Err(Violation::ExpectedAuthentication(b'N'))
        );
        let big_request = header(b'R', MAX_AUTH_REQUEST + 1);
        assert_eq!(
            run(Start::Messages, &big_request, 5),
            Err(Violation::ExpectedAuthentication(b'R'))
        );
        assert!(run(Start::Messages, &header(b'R', MAX_AUTH_REQUEST), 5).is_ok());
        let small_request = header(b'R', 7);
        assert_eq!(
            run(Start::Messages, &small_request, 5),
            Err(Violation::ExpectedAuthentication(b'R'))
        );
    }

    #[test]
    fn a_huge_error_or_length_is_refused_from_its_header() {
        assert_eq!(
            run(Start::Messages, &header(b'E', 64 << 20), 5),
            Err(Violation::OversizedStartupError(64 << 20))
        );
        assert_eq!(
            run(Start::Messages, &header(b'E', i32::MAX as u32), 1),
            Err(Violation::OversizedStartupError(i32::MAX as u32))
        );
        assert!(run(Start::Messages, &header(b'E', MAX_STARTUP_ERROR), 5).is_ok());
        let mut after = startup();
        after.truncate(after.len() - 6); // before ReadyForQuery
        after.extend(header(b'S', MAX_SHORT_MESSAGE + 1));
        assert_eq!(
            run(Start::Messages, &after, 9),
            Err(Violation::LostSync(b'S', MAX_SHORT_MESSAGE + 1))
        );
    }

    #[test]
    fn data_after_s_is_refused_and_any_other_answer_too() {
        assert_eq!(
            run(Start::SslResponse, b"SR\x00\x00\x00\x08", 64),
            Err(Violation::UnencryptedAfterSsl)
        );
        // With a flag, the bytes are dropped and the flag tells the connector.
        let flag = Arc::new(AtomicBool::new(false));
        let mut guard = Guard::new((), Start::SslResponse).with_injection_flag(flag.clone());
        guard
            .feed(b"SR\x00\x00\x00\x08")
            .expect("held for the handshake");
        guard.feed(b"\x16\x03\x03").expect("TLS records pass");
        assert_eq!(guard.out, b"S\x16\x03\x03");
        assert!(flag.load(Ordering::SeqCst));
        assert_eq!(run(Start::SslResponse, b"S", 64), Ok(b"S".to_vec()));
        assert_eq!(
            run(Start::SslResponse, b"X", 64),
            Err(Violation::InvalidSslResponse(b'X'))
        );
        let mut error = vec![b'E'];
        error.extend_from_slice(&message(b'E', b"SFATAL\x00Mno backends\x00\x00")[1..]);
        assert_eq!(
            run(Start::SslResponse, &error, 3),
            Err(Violation::ErrorAfterSslRequest(
                "FATAL: no backends".to_string()
            ))
        );
    }

    #[test]
    fn notices_during_startup_are_bounded_and_the_rest_dropped() {
        let mut input = startup();
        let ready = input.split_off(input.len() - 6);
        let notice = message(b'N', &[b'M'; 1000]);
        let count = MAX_STARTUP_NOTICE_BYTES / notice.len() + 50;
        for _ in 0..count {
            input.extend(&notice);
        }
        input.extend(&ready);
        let out = run(Start::Messages, &input, 777).expect("accepted");
        let kept = MAX_STARTUP_NOTICE_BYTES / notice.len();
        assert_eq!(out.len(), startup().len() + kept * notice.len());
        assert!(out.ends_with(&ready));
    }

    #[test]
    fn endless_parameters_after_authentication_are_refused() {
        let mut input = startup();
        input.truncate(input.len() - 6);
        let param = message(b'S', &[b'x'; 20_000]);
        for _ in 0..(MAX_STARTUP_BYTES / param.len() + 2) {
            input.extend(&param);
        }
        assert_eq!(
            run(Start::Messages, &input, 4096),
            Err(Violation::StartupTooLong)
        );
    }
}
