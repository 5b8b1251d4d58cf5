//! TLS for tokio-postgres with libpq's verification rules, over rustls (ring).
//!
//! tokio-postgres knows only disable / prefer / require and leaves verification to the
//! connector. This connector verifies as libpq does for the mode at hand:
//! [`Verify::None`] accepts any certificate (but still checks the handshake signatures),
//! [`Verify::Ca`] checks the chain against the root certificates, [`Verify::Full`] also checks
//! the host name by libpq's rules ([`super::hostname`]). It records what happened (the
//! negotiated version and cipher, or why the certificate was refused) for the caller.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore,
    SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::guard::{Guard, Start};
use super::hostname::{self, NameCheck};
use crate::error::ErrorClass;
use crate::sslmode::Verify;

/// What a TLS attempt came to, filled in by the connector while tokio-postgres drives it.
#[derive(Debug, Clone, Default)]
pub(super) struct TlsReport {
    /// The connector ran: the server accepted the SSLRequest.
    pub started: bool,
    /// The negotiated protocol (`TLSv1.3`) and cipher suite, after a handshake.
    pub negotiated: Option<(String, String)>,
    /// Why the server certificate was refused, with libpq-like wording.
    pub refused: Option<(ErrorClass, String)>,
    /// How long the handshake took.
    pub handshake: Option<std::time::Duration>,
}

/// Shared slot the connector writes its report into.
pub(super) type ReportSlot = Arc<Mutex<TlsReport>>;

fn update(slot: &ReportSlot, f: impl FnOnce(&mut TlsReport)) {
    // A poisoned lock only means another thread panicked mid-update; the report is still
    // the best information there is.
    let mut report = slot.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut report);
}

/// libpq-style server certificate verification.
#[derive(Debug)]
struct LibpqVerifier {
    verify: Verify,
    roots: Arc<Roots>,
    host: String,
    algorithms: WebPkiSupportedAlgorithms,
    report: ReportSlot,
}

impl LibpqVerifier {
    fn refuse(&self, class: ErrorClass, message: String, error: TlsError) -> TlsError {
        update(&self.report, |r| r.refused = Some((class, message)));
        error
    }
}

impl LibpqVerifier {
    /// The chain WebPKI verified, leaf first and the trusted root's certificate last (as
    /// OpenSSL's chain has it); just the leaf if the root's certificate is not found again.
    fn verified_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Vec<CertificateDer<'static>> {
        let mut chain = vec![end_entity.clone().into_owned()];
        let Ok(ee) = webpki::EndEntityCert::try_from(end_entity) else {
            return chain;
        };
        let Ok(path) = ee.verify_for_usage(
            self.algorithms.all,
            &self.roots.store.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        ) else {
            return chain;
        };
        chain.extend(
            path.intermediate_certificates()
                .map(|c| c.der().into_owned()),
        );
        let anchor = path.anchor();
        if let Some(root) = self.roots.certs.iter().find(|root| {
            webpki::anchor_from_trusted_cert(root).is_ok_and(|a| {
                a.subject.as_ref() == anchor.subject.as_ref()
                    && a.subject_public_key_info.as_ref() == anchor.subject_public_key_info.as_ref()
            })
        }) {
            chain.push(root.clone());
        }
        chain
    }
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if self.verify == Verify::None {
            return Ok(ServerCertVerified::assertion());
        }
        let cert = ParsedCertificate::try_from(end_entity).map_err(|e| {
            self.refuse(
                ErrorClass::UntrustedCert,
                format!("SSL error: cannot parse the server certificate: {e}"),
                TlsError::InvalidCertificate(CertificateError::BadEncoding),
            )
        })?;
        // OpenSSL trusts a certificate that is itself in the root file (a self-signed server
        // certificate used as its own root), within its validity; WebPKI would call it a CA
        // used as an end entity.
        let pinned = self
            .roots
            .certs
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref());
        let chain = if pinned {
            within_validity(end_entity, now)
        } else {
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                &self.roots.store,
                intermediates,
                now,
                self.algorithms.all,
            )
        };
        if let Err(e) = chain {
            // WebPKI checks dates before the issuer: call a certificate expired only when it
            // would be trusted inside its validity period, else it is untrusted anyway.
            let dated = matches!(
                &e,
                TlsError::InvalidCertificate(
                    CertificateError::Expired
                        | CertificateError::ExpiredContext { .. }
                        | CertificateError::NotValidYet
                        | CertificateError::NotValidYetContext { .. },
                )
            );
            let trusted_when_valid = dated
                && valid_moment(end_entity).is_some_and(|then| {
                    pinned
                        || verify_server_cert_signed_by_trust_anchor(
                            &cert,
                            &self.roots.store,
                            intermediates,
                            then,
                            self.algorithms.all,
                        )
                        .is_ok()
                });
            let class = if trusted_when_valid {
                ErrorClass::ExpiredCert
            } else {
                ErrorClass::UntrustedCert
            };
            return Err(self.refuse(
                class,
                format!("SSL error: certificate verify failed: {e}"),
                e,
            ));
        }
        // OpenSSL checks revocation once the chain is built, before libpq looks at the name.
        if let Some(crls) = &self.roots.crls {
            let chain = if pinned {
                vec![end_entity.clone()]
            } else {
                self.verified_chain(end_entity, intermediates, now)
            };
            let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
            if let Err(revoked) = crls.check(&chain, now) {
                let error = if revoked.0 == "certificate revoked" {
                    CertificateError::Revoked
                } else {
                    CertificateError::UnknownRevocationStatus
                };
                return Err(self.refuse(
                    ErrorClass::UntrustedCert,
                    format!("SSL error: certificate verify failed: {}", revoked.0),
                    TlsError::InvalidCertificate(error),
                ));
            }
        }
        if self.verify == Verify::Full {
            match hostname::check(end_entity.as_ref(), &self.host) {
                NameCheck::Match => {}
                NameCheck::NoMatch(names) => {
                    return Err(self.refuse(
                        ErrorClass::HostnameMismatch,
                        hostname::mismatch_message(&names, &self.host),
                        TlsError::InvalidCertificate(CertificateError::NotValidForName),
                    ));
                }
                NameCheck::Invalid(message) => {
                    return Err(self.refuse(
                        ErrorClass::HostnameMismatch,
                        message,
                        TlsError::InvalidCertificate(CertificateError::NotValidForName),
                    ));
                }
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The trust anchors of a root certificate file, and the certificates themselves.
#[derive(Debug)]
pub(super) struct Roots {
    /// The anchors, for chain building.
    pub store: RootCertStore,
    /// The certificates as read, to recognise a server certificate that is itself trusted.
    pub certs: Vec<CertificateDer<'static>>,
    /// The revocation lists every certificate of the chain is checked against, when libpq
    /// would check them (`sslcrl`, `sslcrldir`, `~/.postgresql/root.crl`).
    pub crls: Option<super::crl::Crls>,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            store: RootCertStore::empty(),
            certs: Vec::new(),
            crls: None,
        }
    }
}

/// A moment inside the certificate's validity period (its last second).
fn valid_moment(cert: &CertificateDer<'_>) -> Option<UnixTime> {
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let last = parsed.validity().not_after.timestamp().checked_sub(1)?;
    Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(last).ok()?,
    )))
}

fn within_validity(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), TlsError> {
    let (_, parsed) = X509Certificate::from_der(cert.as_ref())
        .map_err(|_| TlsError::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = parsed.validity();
    if now < validity.not_before.timestamp() {
        return Err(TlsError::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > validity.not_after.timestamp() {
        return Err(TlsError::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

/// Everything needed to make TLS connections for one host.
#[derive(Clone)]
pub(super) struct Connector {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    report: ReportSlot,
    refusal: Option<String>,
    direct: bool,
    /// Set by the socket's [`Guard`] when bytes came with the `S` answer to SSLRequest.
    injected: Arc<std::sync::atomic::AtomicBool>,
    /// Set when the server asked for a client certificate (a CertificateRequest).
    cert_requested: Arc<std::sync::atomic::AtomicBool>,
    /// Set when a certificate was handed over in answer.
    cert_sent: Arc<std::sync::atomic::AtomicBool>,
    /// `sslcertmode`.
    cert_mode: crate::plan::CertMode,
    /// `require_auth`, for the guard over the TLS stream.
    require_auth: Option<Arc<crate::plan::RequireAuth>>,
}

/// The client certificate (if any), handed over when the server asks; the asking is recorded
/// for `sslcertmode=require`.
#[derive(Debug)]
struct RecordingResolver {
    key: Option<Arc<rustls::sign::CertifiedKey>>,
    requested: Arc<std::sync::atomic::AtomicBool>,
    sent: Arc<std::sync::atomic::AtomicBool>,
}

impl rustls::client::ResolvesClientCert for RecordingResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.requested
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // rustls sends the certificate when its key can sign with one of the schemes.
        let usable = self
            .key
            .as_ref()
            .is_some_and(|k| k.key.choose_scheme(sigschemes).is_some());
        self.sent.store(usable, std::sync::atomic::Ordering::SeqCst);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// A client certificate and its key.
pub(super) struct ClientIdentity {
    /// The chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

impl Connector {
    /// A connector that verifies as `verify` says against `roots`, checking names against
    /// `host` (the libpq `host`, not `hostaddr`). `direct` (libpq 17's `sslnegotiation=direct`)
    /// offers ALPN `postgresql`, which a PostgreSQL 17 server requires of a direct TLS
    /// connection.
    pub(super) fn new(
        verify: Verify,
        roots: Arc<Roots>,
        host: &str,
        client: Option<ClientIdentity>,
        direct: bool,
        versions: crate::sslmode::TlsVersions,
        sni: bool,
    ) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let report = ReportSlot::default();
        let verifier = Arc::new(LibpqVerifier {
            verify,
            roots,
            host: host.to_string(),
            algorithms: provider.signature_verification_algorithms,
            report: report.clone(),
        });
        // libpq's ssl_min_protocol_version / ssl_max_protocol_version, as the plan read them.
        let offered: Vec<&'static rustls::SupportedProtocolVersion> = [
            (crate::sslmode::TlsVersion::Tls12, &rustls::version::TLS12),
            (crate::sslmode::TlsVersion::Tls13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (versions.min..=versions.max).contains(v))
        .map(|(_, rustls_version)| rustls_version)
        .collect();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&offered)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let key = match client {
            Some(identity) => Some(Arc::new(rustls::sign::CertifiedKey::from_der(
                identity.certs,
                identity.key,
                &provider,
            )?)),
            None => None,
        };
        let cert_requested = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cert_sent = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut config = builder.with_client_cert_resolver(Arc::new(RecordingResolver {
            key,
            requested: cert_requested.clone(),
            sent: cert_sent.clone(),
        }));
        if direct {
            config.alpn_protocols = vec![b"postgresql".to_vec()];
        }
        // libpq's sslsni: off takes the host name out of the ClientHello.
        config.enable_sni = sni;
        // libpq sends SNI only for host names, never for IP literals; rustls does the same
        // for an IpAddress server name. A host that is not a valid DNS name gets no SNI.
        let server_name = match ServerName::try_from(host.to_string()) {
            Ok(name) => name,
            Err(_) => ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()),
        };
        Ok(Self {
            config: Arc::new(config),
            server_name,
            report,
            refusal: None,
            direct,
            injected: Arc::default(),
            cert_requested,
            cert_sent,
            cert_mode: crate::plan::CertMode::Allow,
            require_auth: None,
        })
    }

    /// Applies libpq 16's `sslcertmode` (`require`: the handshake must carry a
    /// CertificateRequest) and `require_auth` (checked by the guard over the TLS stream).
    pub(super) fn with_session_rules(
        mut self,
        cert_mode: crate::plan::CertMode,
        require_auth: Option<Arc<crate::plan::RequireAuth>>,
    ) -> Self {
        self.cert_mode = cert_mode;
        self.require_auth = require_auth;
        self
    }

    /// A connector that fails as soon as the server agrees to TLS, with a configuration error
    /// (`class` `config`): libpq looks for the root certificate file only then, so a server
    /// that refuses TLS is reported as such first.
    pub(super) fn refusing(mut self, message: impl Into<String>) -> Self {
        self.refusal = Some(message.into());
        self
    }

    /// What the last attempt through this connector came to.
    pub(super) fn report(&self) -> TlsReport {
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether TLS starts at once (`sslnegotiation=direct`), with no SSLRequest first.
    pub(super) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Clears the report (and the injection flag) before another attempt.
    pub(super) fn reset(&self) {
        update(&self.report, |r| *r = TlsReport::default());
        self.injected
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.cert_requested
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.cert_sent
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// The flag the socket's [`Guard`] sets when bytes come with the `S` answer to SSLRequest
    /// ([`Guard::with_injection_flag`]); a handshake that succeeds after that is refused.
    pub(super) fn injection_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.injected.clone()
    }
}

impl<S> TlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            update(&self.report, |r| r.started = true);
            if let Some(message) = &self.refusal {
                update(&self.report, |r| {
                    r.refused = Some((ErrorClass::Config, message.clone()));
                });
                return Err(io::Error::other(message.clone()));
            }
            let started = std::time::Instant::now();
            let connector = tokio_rustls::TlsConnector::from(self.config.clone());
            let tls = connector.connect(self.server_name.clone(), stream).await?;
            // libpq checks its buffer once the handshake is done: bytes that came with the `S`
            // were not encrypted, and may have been put there by a man in the middle.
            if self.injected.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    super::guard::Violation::UnencryptedAfterSsl,
                ));
            }
            // libpq 16 (open_client_SSL): sslcertmode=require needs the server to have asked
            // for a certificate, and one to have been sent.
            let asked = self
                .cert_requested
                .load(std::sync::atomic::Ordering::SeqCst);
            let sent = self.cert_sent.load(std::sync::atomic::Ordering::SeqCst);
            if self.cert_mode == crate::plan::CertMode::Require && !(asked && sent) {
                let message = if asked {
                    "server accepted connection without a valid SSL certificate"
                } else {
                    "server did not request an SSL certificate"
                }
                .to_string();
                update(&self.report, |r| {
                    r.refused = Some((ErrorClass::AuthFailed, message.clone()));
                });
                return Err(io::Error::other(message));
            }
            let (_, connection) = tls.get_ref();
            let version = connection
                .protocol_version()
                .map(|v| match v {
                    rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                    rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            let cipher = connection
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default();
            let binding = channel_binding(connection.peer_certificates());
            update(&self.report, |r| {
                r.negotiated = Some((version, cipher));
                r.handshake = Some(started.elapsed());
            });
            Ok(RustlsStream {
                inner: Guard::new(tls, Start::Messages)
                    .with_require_auth(self.require_auth.clone()),
                binding,
            })
        })
    }
}

/// `tls-server-end-point` channel binding (RFC 5929): the hash of the server certificate with
/// its signature's hash, MD5 and SHA-1 taken as SHA-256. Unknown algorithms bind nothing, and
/// SCRAM then runs without channel binding, as libpq's default `channel_binding=prefer` allows.
fn channel_binding(peer: Option<&[CertificateDer<'static>]>) -> Option<Vec<u8>> {
    let der = peer?.first()?;
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    let algorithm = match oid.as_str() {
        // md5/sha1/sha256 with RSA, ecdsa-with-SHA1/SHA256, RSASSA-PSS defaults
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.10045.4.1"
        | "1.2.840.10045.4.3.2" => &ring::digest::SHA256,
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => &ring::digest::SHA384,
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => &ring::digest::SHA512,
        _ => return None,
    };
    Some(
        ring::digest::digest(algorithm, der.as_ref())
            .as_ref()
            .to_vec(),
    )
}

/// The TLS stream handed to tokio-postgres.
/// What the server sends inside TLS is checked by libpq's start-up limits ([`Guard`]).
pub(super) struct RustlsStream<S> {
    inner: Guard<tokio_rustls::client::TlsStream<S>>,
    binding: Option<Vec<u8>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
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

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        match &self.binding {
            Some(hash) => ChannelBinding::tls_server_end_point(hash.clone()),
            None => ChannelBinding::none(),
        }
    }
}
