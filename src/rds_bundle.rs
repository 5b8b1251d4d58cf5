//! `ssl_bundle: auto`: AWS's RDS global CA bundle, downloaded, verified and cached, to serve as
//! the root certificate file of RDS connections (the plan's `sslrootcert`).
//!
//! Making a plan never touches the network: the plan only names the bundle
//! ([`ConnectPlan::rds_bundle`]: the URL, an optional pinned SHA-256 and the cache file).
//! Before connecting, [`ensure`] makes the file exist:
//!
//! 1. a cache file younger than [`MAX_AGE`] that still verifies is used as it is, without a
//!    request;
//! 2. otherwise the bundle is downloaded (reqwest over rustls with ring, [`DOWNLOAD_TIMEOUT`],
//!    at most [`MAX_SIZE`] bytes), verified ([`verify_bundle`]: PEM, at least one certificate,
//!    every certificate X.509 with `basicConstraints CA:TRUE`, the pin when one is configured)
//!    and written atomically (a temporary file in the same directory, then a rename), the
//!    directory created when missing. A bundle that fails verification is never written;
//! 3. when the download fails for a reason worth retrying later ([`BundleErrorKind::Unavailable`]:
//!    no connection, a timeout, HTTP 5xx, 408 or 429) and an older cache file still verifies,
//!    that file is used ("stale-if-error"): [`Ensured::source`] says so, with the error. A
//!    refusal (HTTP 4xx), an invalid bundle or a pin mismatch is an error even then, since
//!    it means the configuration or the server is wrong, not slow.
//!
//! Nothing is logged. Files are read and written with blocking calls: the bundle is small
//! (the real one is about 160 KiB) and fetched about once a week.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tea_pgcloud::{config, connect, env::ProcessEnv, provider, rds_bundle};
//! let env = ProcessEnv;
//! let config = config::load_str(
//!     "provider: aws\nhost: ltm.abc123.us-east-1.rds.amazonaws.com\nuser: app\nssl_bundle: auto\n",
//!     "agent.yaml",
//!     &env,
//! )?;
//! let plan = provider::plan(&config, &env)?;
//! rds_bundle::ensure(&plan).await?; // the plan's sslrootcert now exists
//! let connected = connect::connect(&plan, &connect::Login::default(), &env).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{PemObject, SectionKind};

use crate::cloud::aws::{BundleUrl, BundleUrlHost};
use crate::plan::{ConnectPlan, RdsBundle};
use crate::shared::{FnWallClock, SystemWallClock, WallClock};

/// How old a cache file may be and still be used without asking the server: 7 days. AWS adds
/// a CA to the global bundle long before any instance uses it, so a week-old bundle trusts
/// every RDS server that a fresh one does, while a revised bundle still arrives within a week.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The largest bundle accepted: 1 MiB (the real one is about 160 KiB). A larger body is
/// refused while it is read, not after.
pub const MAX_SIZE: usize = 1 << 20;

/// How long one download may take, connecting, redirects and the body included: 30 s.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long opening the connection to the server may take: 10 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Redirects followed at most (each to an https URL, or http to a loopback address).
const MAX_REDIRECTS: usize = 5;

/// What the caller can do about a [`BundleError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BundleErrorKind {
    /// The configuration is wrong: a URL that is not https, a server that refuses (HTTP 4xx:
    /// a wrong `ssl_bundle_url`), no system root certificates to check the server with. Do not
    /// retry before changing something.
    Config,
    /// The server could not be reached, timed out, or failed (HTTP 5xx, 408, 429): retry later.
    /// With a cache file that still verifies, [`ensure`] uses it instead.
    Unavailable,
    /// What was served (or found) is not a CA bundle: not PEM, no certificate, a certificate
    /// that does not parse or is not a CA, a block that is not a certificate, too large.
    Invalid,
    /// The bundle is valid but its SHA-256 is not the pinned one (`ssl_bundle_sha256`).
    PinMismatch,
    /// The cache file could not be written.
    Io,
}

impl BundleErrorKind {
    /// A stable lower-case name: `config`, `unavailable`, `invalid`, `pin-mismatch`, `io`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Unavailable => "unavailable",
            Self::Invalid => "invalid",
            Self::PinMismatch => "pin-mismatch",
            Self::Io => "io",
        }
    }
}

impl fmt::Display for BundleErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the bundle could not be provided. The message names the YAML key at issue
/// (`ssl_bundle`, `ssl_bundle_url` or `ssl_bundle_sha256`) and the URL (without its query
/// string). The bundle is public: no secret is involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleError {
    kind: BundleErrorKind,
    message: String,
}

impl BundleError {
    fn new(kind: BundleErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What the caller can do about it.
    pub fn kind(&self) -> BundleErrorKind {
        self.kind
    }

    /// The whole message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::text::escape_controls(&self.message))
    }
}

impl std::error::Error for BundleError {}

/// Where the bundle that [`BundleFetcher::ensure`] provides came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleSource {
    /// The cache file, younger than the maximum age; no request was made.
    Cache,
    /// Downloaded now, verified and written to the cache file.
    Downloaded,
    /// The download failed with `error` (of kind [`BundleErrorKind::Unavailable`]); the older
    /// cache file, which still verifies, is used ("stale-if-error").
    Stale {
        /// Why the download failed.
        error: BundleError,
    },
}

/// A bundle in place: the file to use as the root certificate, and how it got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    /// The cache file (the plan's `sslrootcert`).
    pub path: PathBuf,
    /// Where it came from.
    pub source: BundleSource,
    /// How many CA certificates it holds.
    pub certificates: usize,
    /// Its SHA-256, in lower-case hex (what `ssl_bundle_sha256` would pin).
    pub sha256: String,
}

/// A clock given as a function, what [`BundleFetcher::clock`] takes. The fetcher keeps it as a
/// [`WallClock`] (`shared.rs`, the crate's one wall clock).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Downloads and caches RDS bundles. [`ensure`] uses the defaults; tests and callers that need
/// another maximum age, size limit, timeout or clock build their own.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tea_pgcloud::rds_bundle::BundleFetcher;
/// let fetcher = BundleFetcher::new()
///     .max_age(Duration::from_secs(24 * 60 * 60))
///     .timeout(Duration::from_secs(5))
///     .clock(|| SystemTime::now() + Duration::from_secs(3600));
/// # let _ = fetcher;
/// ```
#[derive(Clone)]
pub struct BundleFetcher {
    max_age: Duration,
    max_size: usize,
    timeout: Duration,
    connect_timeout: Duration,
    clock: Arc<dyn WallClock>,
}

impl fmt::Debug for BundleFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleFetcher")
            .field("max_age", &self.max_age)
            .field("max_size", &self.max_size)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for BundleFetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl BundleFetcher {
    /// The defaults: [`MAX_AGE`], [`MAX_SIZE`], [`DOWNLOAD_TIMEOUT`], [`CONNECT_TIMEOUT`] and
    /// the system clock.
    pub fn new() -> Self {
        Self {
            max_age: MAX_AGE,
            max_size: MAX_SIZE,
            timeout: DOWNLOAD_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            clock: Arc::new(SystemWallClock),
        }
    }

    /// How old a cache file may be and still be used without a request.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The largest bundle accepted, in bytes.
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// How long one download may take in all.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.connect_timeout = self.connect_timeout.min(timeout);
        self
    }

    /// The clock that cache files' modification times are compared with. A modification time
    /// in the clock's future makes the file stale (one download sets it right).
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(FnWallClock(clock));
        self
    }

    /// Makes `bundle.path` hold a verified bundle: the cache file when it is fresh and
    /// verifies, else a download, else (when the download is [`BundleErrorKind::Unavailable`])
    /// an older cache file that verifies. See the module documentation.
    pub async fn ensure(&self, bundle: &RdsBundle) -> Result<Ensured, BundleError> {
        self.provide(bundle, false).await
    }

    /// Downloads the bundle whatever the cache file's age (after a server certificate the
    /// cached bundle did not trust, say); falls back to the cache file as
    /// [`BundleFetcher::ensure`] does.
    pub async fn refresh(&self, bundle: &RdsBundle) -> Result<Ensured, BundleError> {
        self.provide(bundle, true).await
    }

    async fn provide(&self, bundle: &RdsBundle, force: bool) -> Result<Ensured, BundleError> {
        let path = PathBuf::from(&bundle.path);
        let pin = bundle.sha256.as_deref();
        let cached = self.read_cache(&path, pin);
        if let Some(cached) = &cached
            && cached.fresh
            && !force
        {
            return Ok(Ensured {
                path,
                source: BundleSource::Cache,
                certificates: cached.certificates,
                sha256: cached.sha256.clone(),
            });
        }
        let shown = shown_url(&bundle.url);
        let body = match self.download(&bundle.url, &shown).await {
            Ok(body) => body,
            Err(error) => {
                return match cached {
                    Some(cached) if error.kind == BundleErrorKind::Unavailable => Ok(Ensured {
                        path,
                        source: BundleSource::Stale { error },
                        certificates: cached.certificates,
                        sha256: cached.sha256,
                    }),
                    _ => Err(error),
                };
            }
        };
        let certificates = verify(&body, pin).map_err(|problem| {
            problem.into_error(
                &format!("downloaded from {shown}"),
                " (the cache was not written)",
            )
        })?;
        write_atomically(&path, &body).map_err(|e| {
            BundleError::new(
                BundleErrorKind::Io,
                format!(
                    "ssl_bundle: auto: cannot write the RDS CA bundle downloaded from {shown} to {}: {e}",
                    path.display()
                ),
            )
        })?;
        Ok(Ensured {
            path,
            source: BundleSource::Downloaded,
            certificates,
            sha256: sha256_hex(&body),
        })
    }

    /// The cache file, when it exists and verifies; whether it is fresh.
    fn read_cache(&self, path: &Path, pin: Option<&str>) -> Option<Cached> {
        let metadata = std::fs::metadata(path).ok()?;
        if !metadata.is_file() || metadata.len() > self.max_size as u64 {
            return None;
        }
        let modified = metadata.modified().ok()?;
        let bytes = std::fs::read(path).ok()?;
        let certificates = verify(&bytes, pin).ok()?;
        let fresh = self
            .clock
            .now()
            .duration_since(modified)
            .is_ok_and(|age| age <= self.max_age);
        Some(Cached {
            fresh,
            certificates,
            sha256: sha256_hex(&bytes),
        })
    }

    async fn download(&self, url: &str, shown: &str) -> Result<Vec<u8>, BundleError> {
        let fail = |kind, what: String| {
            BundleError::new(
                kind,
                format!("ssl_bundle: auto: cannot download the RDS CA bundle from {shown}: {what}"),
            )
        };
        let parsed = match reqwest::Url::parse(url) {
            Ok(parsed) => parsed,
            Err(e) => {
                return Err(fail(
                    BundleErrorKind::Config,
                    format!("ssl_bundle_url is not a valid URL ({e})"),
                ));
            }
        };
        if let Some(problem) =
            crate::cloud::aws::bundle_url_problem(url).or_else(|| parsed_url_problem(&parsed))
        {
            return Err(fail(
                BundleErrorKind::Config,
                format!("ssl_bundle_url {problem}"),
            ));
        }
        let client = self
            .client(is_loopback(&parsed))
            .map_err(|e| fail(e.0, e.1))?;
        let mut response = client
            .get(parsed)
            .send()
            .await
            .map_err(|e| fail(transport_kind(&e), self.describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let kind = if status.is_server_error()
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            {
                BundleErrorKind::Unavailable
            } else {
                BundleErrorKind::Config
            };
            let hint = if kind == BundleErrorKind::Config {
                " (check ssl_bundle_url)"
            } else {
                ""
            };
            return Err(fail(
                kind,
                format!("the server answered HTTP {status}{hint}"),
            ));
        }
        let too_large = || {
            BundleError::new(
                BundleErrorKind::Invalid,
                format!(
                    "ssl_bundle: auto: the RDS CA bundle downloaded from {shown} is not valid: larger than {} bytes (the cache was not written)",
                    self.max_size
                ),
            )
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_size as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(transport_kind(&e), self.describe(&e)))?
        {
            if body.len() + chunk.len() > self.max_size {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A client for one download: rustls with ring and the system's root certificates (nothing
    /// installed process-wide), redirects only to acceptable URLs, no proxy for loopback.
    fn client(&self, loopback: bool) -> Result<reqwest::Client, (BundleErrorKind, String)> {
        let mut roots = RootCertStore::empty();
        if !loopback {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system certificate that webpki cannot use is skipped, as libpq would.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err((
                    BundleErrorKind::Config,
                    "no system root certificates to check the server's with (install the ca-certificates package)".into(),
                ));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| (BundleErrorKind::Config, format!("TLS set-up failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if parsed_url_problem(attempt.url()).is_some() {
                attempt.error(
                    "redirected to a URL that is neither https nor http to a loopback address",
                )
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .redirect(redirects);
        if loopback {
            builder = builder.no_proxy();
        }
        builder.build().map_err(|e| {
            (
                BundleErrorKind::Config,
                format!("cannot build the HTTP client: {e}"),
            )
        })
    }

    /// A reqwest error as a phrase, without the URL (shown already) and with its causes.
    fn describe(&self, error: &reqwest::Error) -> String {
        if error.is_timeout() {
            return format!("timed out after {} s", self.timeout.as_secs_f64());
        }
        let mut text = if error.is_connect() {
            "cannot connect".to_string()
        } else if error.is_redirect() {
            "a redirect was refused".to_string()
        } else if error.is_body() || error.is_decode() {
            "the connection failed while the body was read".to_string()
        } else {
            "the request failed".to_string()
        };
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.ends_with(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        text
    }
}

/// A cache file that verifies.
struct Cached {
    fresh: bool,
    certificates: usize,
    sha256: String,
}

/// Makes the plan's bundle file exist, with the defaults of [`BundleFetcher::new`]; returns its
/// path, or `None` when the plan has no `ssl_bundle: auto`. Call it before
/// [`crate::connect::connect`].
pub async fn ensure(plan: &ConnectPlan) -> Result<Option<PathBuf>, BundleError> {
    Ok(ensure_with(&BundleFetcher::new(), plan)
        .await?
        .map(|ensured| ensured.path))
}

/// [`ensure`] with a fetcher of the caller's, returning everything it learnt (where the
/// bundle came from, a download error that a stale cache file covered).
pub async fn ensure_with(
    fetcher: &BundleFetcher,
    plan: &ConnectPlan,
) -> Result<Option<Ensured>, BundleError> {
    match &plan.rds_bundle {
        Some(bundle) => fetcher.ensure(bundle).await.map(Some),
        None => Ok(None),
    }
}

/// Checks a CA bundle: PEM holding at least one certificate and nothing else, every
/// certificate X.509 (as x509-parser and webpki read it) with `basicConstraints CA:TRUE`, and,
/// with `pin` (64 hex digits), a SHA-256 of the bytes equal to the pin. Returns the number of
/// certificates.
///
/// ```
/// use tea_pgcloud::rds_bundle::{verify_bundle, BundleErrorKind};
/// let err = verify_bundle(b"<html>not found</html>", None).unwrap_err();
/// assert_eq!(err.kind(), BundleErrorKind::Invalid);
/// assert!(err.message().contains("no certificate"));
/// ```
pub fn verify_bundle(bytes: &[u8], pin: Option<&str>) -> Result<usize, BundleError> {
    verify(bytes, pin).map_err(|problem| problem.into_error("", ""))
}

/// The lower-case hex SHA-256 of `bytes`: the form of `ssl_bundle_sha256` and of
/// [`Ensured::sha256`].
///
/// ```
/// assert_eq!(
///     tea_pgcloud::rds_bundle::sha256_hex(b""),
///     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::shared::sha256_hex(bytes)
}

/// What is wrong with a bundle, before it is known where the bundle came from.
enum Problem {
    Invalid(String),
    Pin { actual: String, pinned: String },
}

impl Problem {
    /// The error, with `origin` (`downloaded from URL`) after "the RDS CA bundle" and `tail`
    /// at the end.
    fn into_error(self, origin: &str, tail: &str) -> BundleError {
        let origin = if origin.is_empty() {
            String::new()
        } else {
            format!(" {origin}")
        };
        match self {
            Self::Invalid(why) => BundleError::new(
                BundleErrorKind::Invalid,
                format!("ssl_bundle: auto: the RDS CA bundle{origin} is not valid: {why}{tail}"),
            ),
            Self::Pin { actual, pinned } => BundleError::new(
                BundleErrorKind::PinMismatch,
                format!(
                    "ssl_bundle_sha256: the RDS CA bundle{origin} has SHA-256 {actual}, not the pinned {pinned}{tail}"
                ),
            ),
        }
    }
}

fn verify(bytes: &[u8], pin: Option<&str>) -> Result<usize, Problem> {
    let mut certificates = Vec::new();
    for (index, section) in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes).enumerate() {
        match section {
            Ok((SectionKind::Certificate, der)) => certificates.push(der),
            Ok((kind, _)) => {
                return Err(Problem::Invalid(format!(
                    "PEM block {} is a {kind:?}, and a bundle holds certificates only",
                    index + 1
                )));
            }
            Err(e) => {
                return Err(Problem::Invalid(format!(
                    "PEM block {} does not decode: {e}",
                    index + 1
                )));
            }
        }
    }
    if certificates.is_empty() {
        return Err(Problem::Invalid(
            "no certificate in it (a bundle is PEM: -----BEGIN CERTIFICATE----- blocks)".into(),
        ));
    }
    let count = certificates.len();
    let mut store = RootCertStore::empty();
    for (index, der) in certificates.into_iter().enumerate() {
        let which = format!("certificate {} of {count}", index + 1);
        let (rest, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| Problem::Invalid(format!("{which} does not parse as X.509: {e}")))?;
        if !rest.is_empty() {
            return Err(Problem::Invalid(format!(
                "{which} has {} bytes after its end",
                rest.len()
            )));
        }
        let subject: String = cert.subject().to_string().chars().take(80).collect();
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(Problem::Invalid(format!(
                "{which} ({subject}) is not a CA certificate (no basicConstraints CA:TRUE)"
            )));
        }
        store.add(CertificateDer::from(der)).map_err(|e| {
            Problem::Invalid(format!(
                "{which} ({subject}) cannot serve as a trust anchor: {e}"
            ))
        })?;
    }
    if let Some(pinned) = pin {
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(pinned.trim()) {
            return Err(Problem::Pin {
                actual,
                pinned: pinned.to_ascii_lowercase(),
            });
        }
    }
    Ok(count)
}

/// What is wrong with a URL as the HTTP client reads it (a redirect target, or the configured
/// URL after parsing): a user name or password, or neither https nor http to loopback.
/// The URL as the HTTP client parsed it, for the bundle-URL rule that the text already passed
/// ([`crate::cloud::aws::bundle_url_problem`]): the same rule, applied to what will be
/// requested.
fn parsed_parts(url: &reqwest::Url) -> BundleUrl<'_> {
    let host = url.host_str().unwrap_or_default();
    let (name, bracketed) = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => (v6, true),
        None => (host, false),
    };
    BundleUrl {
        scheme: url.scheme(),
        credentials: !url.username().is_empty() || url.password().is_some(),
        host: if name.is_empty() {
            Err("is not a valid URL (no host)")
        } else {
            Ok(BundleUrlHost { name, bracketed })
        },
    }
}

/// Why the bundle-URL rule refuses the parsed `url` (a download's or a redirect's), or `None`.
fn parsed_url_problem(url: &reqwest::Url) -> Option<&'static str> {
    parsed_parts(url).problem()
}

fn is_loopback(url: &reqwest::Url) -> bool {
    parsed_parts(url).host.is_ok_and(|host| host.is_loopback())
}

/// What a transport failure means for the caller.
fn transport_kind(error: &reqwest::Error) -> BundleErrorKind {
    if error.is_redirect() || error.is_builder() {
        BundleErrorKind::Config
    } else {
        BundleErrorKind::Unavailable
    }
}

/// The URL as messages show it: without a query string or fragment (a presigned mirror URL
/// carries its signature there) and without a user name or password (refused anyway).
fn shown_url(url: &str) -> String {
    let (base, cut) = match url.find(['?', '#']) {
        Some(at) => (&url[..at], true),
        None => (url, false),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => format!("{scheme}://…@{}", &rest[at + 1..]),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    if cut { format!("{base}?…") } else { base }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// that a reader (another process connecting) sees the old file or the new one, never half of
/// one. Creates the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_query() {
        assert_eq!(
            shown_url("https://m.example/b.pem?X-Amz-Signature=abc"),
            "https://m.example/b.pem?…"
        );
        assert_eq!(
            shown_url("https://m.example/b.pem"),
            "https://m.example/b.pem"
        );
        assert_eq!(
            shown_url("https://u:pw@m.example/b.pem?q"),
            "https://…@m.example/b.pem?…"
        );
        assert_eq!(shown_url("not a url"), "not a url");
    }

    #[test]
    fn only_loopback_may_be_plain_http() {
        let problem = |u: &str| parsed_url_problem(&reqwest::Url::parse(u).expect("a URL"));
        assert_eq!(problem("https://truststore.pki.rds.amazonaws.com/x"), None);
        assert_eq!(problem("http://127.0.0.1:1/x"), None);
        assert_eq!(problem("http://[::1]:1/x"), None);
        assert_eq!(problem("http://LOCALHOST/x"), None);
        assert!(problem("http://10.1.1.1/x").is_some());
        assert!(problem("ftp://127.0.0.1/x").is_some());
        assert!(problem("https://u:p@example.com/x").is_some());
    }

    #[test]
    fn non_certificate_blocks_are_refused() {
        let pem = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let err = verify_bundle(pem, None).expect_err("a key is not a bundle");
        assert_eq!(err.kind(), BundleErrorKind::Invalid);
        assert!(err.message().contains("PrivateKey"), "{err}");
    }

    #[test]
    fn an_https_client_builds_without_a_process_crypto_provider() {
        let fetcher = BundleFetcher::new();
        // Loopback skips the system roots, which a minimal build machine may lack.
        assert!(fetcher.client(true).is_ok());
    }

    #[test]
    fn atomic_write_creates_the_directory_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("tea-pgcloud-bundle-{}", std::process::id()));
        let path = dir.join("a/b/bundle.pem");
        write_atomically(&path, b"one").expect("written");
        write_atomically(&path, b"two").expect("replaced");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.join("a/b"))
            .expect("listed")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["bundle.pem"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
