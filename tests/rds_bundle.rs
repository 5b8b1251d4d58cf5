//! `ssl_bundle: auto`: the RDS CA bundle downloaded from an emulator of AWS's truststore
//! (a generated bundle of two CAs), cached, refreshed, pinned and refused when it is not a CA
//! bundle; stale-if-error; and a live verify-full connection to a PostgreSQL whose server
//! certificate one of the bundle's CAs signed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tea_pgcloud::config::load_str;
use tea_pgcloud::conformance::certs::{CertFactory, ServerCertKind};
use tea_pgcloud::conformance::launcher::PgServer;
use tea_pgcloud::connect::{Login, connect};
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::error::ErrorClass;
use tea_pgcloud::plan::{ConnectPlan, RdsBundle};
use tea_pgcloud::provider::plan;
use tea_pgcloud::rds_bundle::{
    BundleErrorKind, BundleFetcher, BundleSource, MAX_AGE, ensure, ensure_with, sha256_hex,
    verify_bundle,
};
use tea_pgcloud::secret::Secret;
use tea_pgcloud::sslmode::Verify;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

mod common;

/// The path of AWS's global bundle on truststore.pki.rds.amazonaws.com.
const BUNDLE_PATH: &str = "/global/global-bundle.pem";
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// What the emulator serves, and its faults.
#[derive(Default)]
struct State {
    body: Mutex<Vec<u8>>,
    /// A status served instead of the bundle, every time (0: none).
    status: AtomicU16,
    /// How many of the next requests fail with `fail_status`.
    fail_next: AtomicU32,
    fail_status: AtomicU16,
    delay_ms: AtomicU64,
    served: AtomicUsize,
}

struct Responder(Arc<State>);

impl Respond for Responder {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let state = &self.0;
        state.served.fetch_add(1, Ordering::SeqCst);
        let delay = Duration::from_millis(state.delay_ms.load(Ordering::SeqCst));
        let failing = state
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let status = state.status.load(Ordering::SeqCst);
        let template = if failing {
            ResponseTemplate::new(state.fail_status.load(Ordering::SeqCst))
                .set_body_string("<Error><Code>InternalError</Code></Error>")
        } else if status != 0 {
            ResponseTemplate::new(status).set_body_string("<Error><Code>NoSuchKey</Code></Error>")
        } else {
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/x-pem-file")
                .set_body_bytes(state.body.lock().expect("body").clone())
        };
        template.set_delay(delay)
    }
}

/// An emulator of the truststore: `GET /global/global-bundle.pem` answers the bundle it is
/// given; every other path is 404. Counts the bundle requests it served.
struct BundleServer {
    server: MockServer,
    state: Arc<State>,
}

impl BundleServer {
    async fn start(body: &[u8]) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(State::default());
        *state.body.lock().expect("body") = body.to_vec();
        Mock::given(method("GET"))
            .and(path(BUNDLE_PATH))
            .respond_with(Responder(state.clone()))
            .mount(&server)
            .await;
        Self { server, state }
    }

    fn url(&self) -> String {
        format!("{}{BUNDLE_PATH}", self.server.uri())
    }

    /// The bundle requests served so far.
    fn requests(&self) -> usize {
        self.state.served.load(Ordering::SeqCst)
    }

    fn serve(&self, body: &[u8]) {
        *self.state.body.lock().expect("body") = body.to_vec();
    }

    /// Answers `status` instead of the bundle from now on.
    fn answer_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Fails the next `times` requests with `status` (a 5xx), then serves the bundle again.
    fn fail_next(&self, times: u32, status: u16) {
        self.state.fail_status.store(status, Ordering::SeqCst);
        self.state.fail_next.store(times, Ordering::SeqCst);
    }

    /// Delays every answer.
    fn slow(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

/// Two CA certificates (the factory's root and its unrelated second root), as a bundle.
fn two_ca_bundle(factory: &CertFactory) -> Vec<u8> {
    format!("{}{}", factory.root_pem(), factory.other_root_pem()).into_bytes()
}

fn cache_file(dir: &Path) -> PathBuf {
    dir.join("tea-pgcloud/rds-global-bundle.pem")
}

/// The plan of an aws catalog with `ssl_bundle: auto` from `url`, caching under `cache`.
fn auto_plan(url: &str, pin: Option<&str>, cache: &Path, port: u16, user: &str) -> ConnectPlan {
    let mut yaml = format!(
        "provider: aws\nhost: localhost\nport: {port}\nuser: {user}\ndatabase: postgres\nssl_bundle: auto\nssl_bundle_url: {url}\n"
    );
    if let Some(pin) = pin {
        yaml.push_str(&format!("ssl_bundle_sha256: {pin}\n"));
    }
    let env = cache_env(cache);
    let config = load_str(&yaml, "agent.yaml", &env).expect("valid YAML");
    plan(&config, &env).expect("a plan")
}

fn cache_env(cache: &Path) -> MapEnv {
    MapEnv::new()
        .with_var("XDG_CACHE_HOME", cache.display().to_string())
        .with_var("HOME", "/nonexistent-home")
}

fn bundle(url: &str, pin: Option<&str>, cache: &Path) -> RdsBundle {
    auto_plan(url, pin, cache, 5432, "app")
        .rds_bundle
        .expect("ssl_bundle: auto")
}

/// A fetcher whose clock runs `ahead` of the system's.
fn ahead(ahead: Duration) -> BundleFetcher {
    BundleFetcher::new().clock(move || SystemTime::now() + ahead)
}

#[tokio::test]
async fn downloads_once_then_serves_the_cache_without_a_request() {
    let factory = CertFactory::new().expect("certs");
    let body = two_ca_bundle(&factory);
    let emulator = BundleServer::start(&body).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let plan = auto_plan(&emulator.url(), None, dir.path(), 5432, "app");
    assert_eq!(
        plan.sslrootcert.as_deref(),
        Some(cache_file(dir.path()).to_str().expect("UTF-8"))
    );
    assert!(!cache_file(dir.path()).exists(), "planning fetched nothing");
    assert_eq!(emulator.requests(), 0);

    let path = ensure(&plan).await.expect("downloaded").expect("a bundle");
    assert_eq!(path, cache_file(dir.path()));
    assert_eq!(std::fs::read(&path).expect("the cache file"), body);
    assert_eq!(emulator.requests(), 1);

    let again = ensure_with(&BundleFetcher::new(), &plan)
        .await
        .expect("cached")
        .expect("a bundle");
    assert_eq!(again.source, BundleSource::Cache);
    assert_eq!(again.certificates, 2);
    assert_eq!(again.sha256, sha256_hex(&body));
    assert_eq!(
        emulator.requests(),
        1,
        "the fresh cache file is used as it is"
    );
    // Within the maximum age the cache is still fresh.
    let later = ahead(MAX_AGE - DAY)
        .ensure(plan.rds_bundle.as_ref().expect("auto"))
        .await
        .expect("cached");
    assert_eq!(later.source, BundleSource::Cache);
    assert_eq!(emulator.requests(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("tea-pgcloud"))
        .expect("the cache directory")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["rds-global-bundle.pem"],
        "no temporary file left"
    );
}

#[tokio::test]
async fn a_plan_without_ssl_bundle_auto_needs_nothing() {
    let plan = common::plan_of("provider: aws\nhost: db.example.com\n");
    assert!(plan.rds_bundle.is_none());
    assert_eq!(ensure(&plan).await, Ok(None));
}

#[tokio::test]
async fn a_stale_cache_is_refreshed_and_refresh_forces_a_download() {
    let factory = CertFactory::new().expect("certs");
    let emulator = BundleServer::start(factory.root_pem().as_bytes()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let bundle = bundle(&emulator.url(), None, dir.path());
    let first = BundleFetcher::new().ensure(&bundle).await.expect("first");
    assert_eq!(
        (first.source, first.certificates),
        (BundleSource::Downloaded, 1)
    );

    // AWS adds a CA; a week later the cache is stale and the new bundle replaces it.
    let updated = two_ca_bundle(&factory);
    emulator.serve(&updated);
    let stale = ahead(MAX_AGE + DAY)
        .ensure(&bundle)
        .await
        .expect("refreshed");
    assert_eq!(
        (stale.source, stale.certificates),
        (BundleSource::Downloaded, 2)
    );
    assert_eq!(emulator.requests(), 2);
    assert_eq!(std::fs::read(&stale.path).expect("cache"), updated);

    // A shorter maximum age, and a forced refresh of a fresh file.
    let short = BundleFetcher::new().max_age(Duration::ZERO);
    let refreshed = short
        .clock(|| SystemTime::now() + Duration::from_secs(1))
        .ensure(&bundle)
        .await
        .expect("refreshed");
    assert_eq!(refreshed.source, BundleSource::Downloaded);
    assert_eq!(emulator.requests(), 3);
    let forced = BundleFetcher::new().refresh(&bundle).await.expect("forced");
    assert_eq!(forced.source, BundleSource::Downloaded);
    assert_eq!(emulator.requests(), 4);
}

#[tokio::test]
async fn a_matching_pin_is_accepted_and_checked_on_cache_hits() {
    let factory = CertFactory::new().expect("certs");
    let body = two_ca_bundle(&factory);
    let emulator = BundleServer::start(&body).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let pin = sha256_hex(&body).to_ascii_uppercase();
    let pinned = bundle(&emulator.url(), Some(&pin), dir.path());
    assert_eq!(
        pinned.sha256.as_deref(),
        Some(sha256_hex(&body).as_str()),
        "kept in lower case"
    );
    let got = BundleFetcher::new().ensure(&pinned).await.expect("pinned");
    assert_eq!(got.source, BundleSource::Downloaded);
    let cached = BundleFetcher::new().ensure(&pinned).await.expect("cached");
    assert_eq!(cached.source, BundleSource::Cache);
    assert_eq!(emulator.requests(), 1);

    // A new pin that the cached file does not match: the cache is not trusted, the server
    // is asked, and a body that matches neither is refused without touching the cache.
    let other_pin = sha256_hex(factory.root_pem().as_bytes());
    let repinned = bundle(&emulator.url(), Some(&other_pin), dir.path());
    let err = BundleFetcher::new()
        .ensure(&repinned)
        .await
        .expect_err("the served bundle does not match");
    assert_eq!(err.kind(), BundleErrorKind::PinMismatch);
    assert_eq!(emulator.requests(), 2);
    assert_eq!(std::fs::read(cache_file(dir.path())).expect("cache"), body);
}

#[tokio::test]
async fn a_pin_mismatch_is_an_error_and_writes_no_cache() {
    let factory = CertFactory::new().expect("certs");
    let body = two_ca_bundle(&factory);
    let emulator = BundleServer::start(&body).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let wrong = "0".repeat(64);
    let err = BundleFetcher::new()
        .ensure(&bundle(&emulator.url(), Some(&wrong), dir.path()))
        .await
        .expect_err("mismatch");
    assert_eq!(err.kind(), BundleErrorKind::PinMismatch);
    let message = err.to_string();
    for part in [
        "ssl_bundle_sha256",
        emulator.url().as_str(),
        sha256_hex(&body).as_str(),
        wrong.as_str(),
        "not written",
    ] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }
    assert!(!cache_file(dir.path()).exists());
    assert!(!dir.path().join("tea-pgcloud").exists() || dir_is_empty(dir.path()));
}

fn dir_is_empty(cache: &Path) -> bool {
    std::fs::read_dir(cache.join("tea-pgcloud"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// Serves `body` (or answers `status`) and returns the error `ensure` gives, checking that no
/// cache file was written.
async fn failure(
    body: &[u8],
    status: Option<u16>,
    fetcher: BundleFetcher,
) -> (String, BundleErrorKind) {
    let emulator = BundleServer::start(body).await;
    if let Some(status) = status {
        emulator.answer_status(status);
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let err = fetcher
        .ensure(&bundle(&emulator.url(), None, dir.path()))
        .await
        .expect_err("refused");
    assert!(!cache_file(dir.path()).exists(), "{err}");
    assert!(dir_is_empty(dir.path()), "{err}");
    assert_eq!(emulator.requests(), 1, "one request, no retry: {err}");
    let message = err.to_string();
    assert!(message.contains(&emulator.url()), "{message}");
    assert!(message.contains("ssl_bundle"), "{message}");
    (message, err.kind())
}

#[tokio::test]
async fn what_is_not_a_ca_bundle_is_refused() {
    let factory = CertFactory::new().expect("certs");
    let leaf = factory.server(ServerCertKind::Good).expect("a leaf");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "html",
            b"<html><body>Access Denied</body></html>".to_vec(),
            "no certificate",
        ),
        ("empty", Vec::new(), "no certificate"),
        (
            "non-ca",
            format!("{}{}", factory.root_pem(), leaf.cert).into_bytes(),
            "certificate 2 of 2",
        ),
        (
            "broken base64",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec(),
            "does not decode",
        ),
        (
            "not x509",
            b"-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n".to_vec(),
            "does not parse as X.509",
        ),
        (
            "a private key",
            format!("{}{}", factory.root_pem(), leaf.key).into_bytes(),
            "certificates only",
        ),
    ];
    for (name, body, why) in cases {
        let (message, kind) = failure(&body, None, BundleFetcher::new()).await;
        assert_eq!(kind, BundleErrorKind::Invalid, "{name}: {message}");
        assert!(message.contains(why), "{name}: {message}");
        assert!(message.contains("not written"), "{name}: {message}");
    }
    let (message, _) = failure(
        format!("{}{}", factory.root_pem(), leaf.cert).as_bytes(),
        None,
        BundleFetcher::new(),
    )
    .await;
    assert!(message.contains("is not a CA certificate"), "{message}");
    assert!(
        !message.contains("PRIVATE KEY"),
        "no key material in messages"
    );
}

#[tokio::test]
async fn http_failures_have_the_right_kind() {
    let factory = CertFactory::new().expect("certs");
    let body = two_ca_bundle(&factory);
    for (status, kind) in [
        (404, BundleErrorKind::Config),
        (403, BundleErrorKind::Config),
        (500, BundleErrorKind::Unavailable),
        (503, BundleErrorKind::Unavailable),
        (429, BundleErrorKind::Unavailable),
    ] {
        let (message, got) = failure(&body, Some(status), BundleFetcher::new()).await;
        assert_eq!(got, kind, "{status}: {message}");
        assert!(message.contains(&format!("HTTP {status}")), "{message}");
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let factory = CertFactory::new().expect("certs");
    let huge = factory
        .root_pem()
        .repeat((1 << 20) / factory.root_pem().len() + 1);
    let (message, kind) = failure(huge.as_bytes(), None, BundleFetcher::new()).await;
    assert_eq!(kind, BundleErrorKind::Invalid);
    assert!(message.contains("larger than 1048576 bytes"), "{message}");
    // A smaller limit of the caller's.
    let body = two_ca_bundle(&factory);
    let (message, kind) = failure(&body, None, BundleFetcher::new().max_size(body.len() - 1)).await;
    assert_eq!(kind, BundleErrorKind::Invalid);
    assert!(message.contains("larger than"), "{message}");
}

#[tokio::test]
async fn a_slow_server_times_out_and_a_closed_port_is_unavailable() {
    let factory = CertFactory::new().expect("certs");
    let emulator = BundleServer::start(&two_ca_bundle(&factory)).await;
    emulator.slow(Duration::from_secs(3));
    let dir = tempfile::tempdir().expect("a temp dir");
    let err = BundleFetcher::new()
        .timeout(Duration::from_millis(300))
        .ensure(&bundle(&emulator.url(), None, dir.path()))
        .await
        .expect_err("too slow");
    assert_eq!(err.kind(), BundleErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("an address").port()
    };
    let url = format!("http://127.0.0.1:{closed}{BUNDLE_PATH}");
    let err = BundleFetcher::new()
        .ensure(&bundle(&url, None, dir.path()))
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), BundleErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert!(!cache_file(dir.path()).exists());
}

#[tokio::test]
async fn stale_if_error_uses_the_old_file_only_when_the_server_is_unavailable() {
    let factory = CertFactory::new().expect("certs");
    let body = two_ca_bundle(&factory);
    let emulator = BundleServer::start(&body).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let bundle = bundle(&emulator.url(), None, dir.path());
    BundleFetcher::new().ensure(&bundle).await.expect("first");

    emulator.fail_next(1, 503);
    let stale = ahead(MAX_AGE + DAY)
        .ensure(&bundle)
        .await
        .expect("the old file");
    match &stale.source {
        BundleSource::Stale { error } => {
            assert_eq!(error.kind(), BundleErrorKind::Unavailable);
            assert!(error.to_string().contains("HTTP 503"), "{error}");
        }
        other => panic!("expected a stale bundle, got {other:?}"),
    }
    assert_eq!((stale.certificates, emulator.requests()), (2, 2));
    assert_eq!(std::fs::read(&stale.path).expect("cache"), body);
    // The next attempt, with the server back, downloads again.
    let back = ahead(MAX_AGE + DAY).ensure(&bundle).await.expect("back");
    assert_eq!(back.source, BundleSource::Downloaded);
    assert_eq!(emulator.requests(), 3);

    // A refusal is not an outage: no fallback.
    emulator.answer_status(404);
    let err = ahead(MAX_AGE * 2)
        .ensure(&bundle)
        .await
        .expect_err("404 is an error");
    assert_eq!(err.kind(), BundleErrorKind::Config);
    // Nor is an invalid bundle.
    emulator.answer_status(0);
    emulator.serve(b"garbage");
    let err = ahead(MAX_AGE * 2)
        .ensure(&bundle)
        .await
        .expect_err("garbage is an error");
    assert_eq!(err.kind(), BundleErrorKind::Invalid);
    assert_eq!(std::fs::read(&bundle.path).expect("cache"), body, "kept");

    // No cache file at all: the outage is the caller's error.
    let empty = tempfile::tempdir().expect("a temp dir");
    emulator.serve(&body);
    emulator.fail_next(1, 500);
    let err = BundleFetcher::new()
        .ensure(&self::bundle(&emulator.url(), None, empty.path()))
        .await
        .expect_err("nothing to fall back on");
    assert_eq!(err.kind(), BundleErrorKind::Unavailable);
}

#[tokio::test]
async fn a_corrupt_cache_file_is_replaced() {
    let factory = CertFactory::new().expect("certs");
    let body = two_ca_bundle(&factory);
    let emulator = BundleServer::start(&body).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let bundle = bundle(&emulator.url(), None, dir.path());
    std::fs::create_dir_all(dir.path().join("tea-pgcloud")).expect("a directory");
    std::fs::write(&bundle.path, b"half a bun").expect("written");
    let got = BundleFetcher::new()
        .ensure(&bundle)
        .await
        .expect("replaced");
    assert_eq!(got.source, BundleSource::Downloaded);
    assert_eq!(std::fs::read(&bundle.path).expect("cache"), body);
    // And a corrupt file is no fallback either.
    std::fs::write(&bundle.path, b"half a bun").expect("written");
    emulator.fail_next(1, 502);
    let err = BundleFetcher::new()
        .ensure(&bundle)
        .await
        .expect_err("no fallback");
    assert_eq!(err.kind(), BundleErrorKind::Unavailable);
}

#[tokio::test]
async fn urls_are_checked_again_and_their_query_never_shown() {
    let factory = CertFactory::new().expect("certs");
    let emulator = BundleServer::start(&two_ca_bundle(&factory)).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    // A presigned mirror URL carries its signature in the query string.
    let signed = format!("{}?X-Amz-Signature=sIgNaTuRe-CaNaRy", emulator.url());
    emulator.answer_status(500);
    let mut bundle = bundle(&signed, None, dir.path());
    let err = BundleFetcher::new().ensure(&bundle).await.expect_err("500");
    assert!(!err.to_string().contains("CaNaRy"), "{err}");
    assert!(!format!("{err:?}").contains("CaNaRy"), "{err:?}");
    assert!(
        err.to_string().contains(&format!("{}?…", emulator.url())),
        "{err}"
    );

    // An RdsBundle built by hand gets the configuration's checks.
    for url in [
        "http://10.0.0.1/global-bundle.pem",
        "ftp://127.0.0.1/global-bundle.pem",
        "https://user:pw@mirror.example/global-bundle.pem",
        "not a url",
    ] {
        bundle.url = url.to_string();
        let err = BundleFetcher::new().ensure(&bundle).await.expect_err(url);
        assert_eq!(err.kind(), BundleErrorKind::Config, "{url}: {err}");
        assert!(err.to_string().contains("ssl_bundle_url"), "{err}");
        assert!(!err.to_string().contains(":pw@"), "{err}");
    }
    assert_eq!(emulator.requests(), 1);
}

#[test]
fn verify_bundle_counts_ca_certificates_and_checks_the_pin() {
    let factory = CertFactory::new().expect("certs");
    let body = two_ca_bundle(&factory);
    assert_eq!(verify_bundle(&body, None), Ok(2));
    let chain = format!("{}{}", factory.root_pem(), factory.intermediate_pem());
    assert_eq!(
        verify_bundle(chain.as_bytes(), None),
        Ok(2),
        "an intermediate CA counts"
    );
    let pin = sha256_hex(&body);
    assert_eq!(verify_bundle(&body, Some(&pin)), Ok(2));
    assert_eq!(verify_bundle(&body, Some(&pin.to_ascii_uppercase())), Ok(2));
    let err = verify_bundle(factory.root_pem().as_bytes(), Some(&pin)).expect_err("mismatch");
    assert_eq!(err.kind(), BundleErrorKind::PinMismatch);
    assert!(err.message().starts_with("ssl_bundle_sha256:"), "{err}");
    let leaf = factory.server(ServerCertKind::Good).expect("a leaf");
    let err = verify_bundle(leaf.cert.as_bytes(), None).expect_err("a leaf");
    assert_eq!(err.kind(), BundleErrorKind::Invalid);
    assert!(err.message().starts_with("ssl_bundle: auto:"), "{err}");
}

/// A PostgreSQL whose server certificate the factory's root signed (names `localhost`,
/// 127.0.0.1), TLS only.
fn tls_server(factory: &CertFactory) -> PgServer {
    PgServer::start_tls(
        "rds-bundle",
        factory,
        &["hostssl all all 127.0.0.1/32 scram-sha-256"],
        false,
    )
}

#[test]
fn end_to_end_verify_full_with_the_downloaded_bundle() {
    let factory = CertFactory::new().expect("certs");
    let server = tls_server(&factory);
    let login = Login {
        user: None,
        password: Some(Secret::new(server.password())),
        ..Login::default()
    };
    common::block_on(async {
        // The bundle holds the server's CA (the root) and an unrelated one.
        let emulator = BundleServer::start(&two_ca_bundle(&factory)).await;
        let dir = tempfile::tempdir().expect("a temp dir");
        let plan = auto_plan(
            &emulator.url(),
            None,
            dir.path(),
            server.port(),
            server.user(),
        );
        assert_eq!(plan.sslmode.as_str(), "verify-full");
        assert_eq!(plan.tls.verify, Verify::Full);
        let root = plan.sslrootcert.clone().expect("the cache file");
        let env = cache_env(dir.path()).with_file(root.clone());

        // Before `ensure` the file is not there, and connecting says so.
        let err = connect(&plan, &login, &cache_env(dir.path()))
            .await
            .expect_err("no bundle yet");
        assert!(err.to_string().contains("does not exist"), "{err}");

        let path = ensure(&plan).await.expect("downloaded").expect("a bundle");
        assert_eq!(path.to_str(), Some(root.as_str()));
        let connected = connect(&plan, &login, &env).await.expect("connects");
        let tls = connected.tls.as_ref().expect("over TLS");
        assert_eq!(tls.verified, Verify::Full);
        let user: String = connected
            .client
            .query_one("SELECT current_user::text", &[])
            .await
            .expect("a query")
            .get(0);
        assert_eq!(user, server.user());
        assert_eq!(emulator.requests(), 1);

        // A bundle without the server's CA: the connection is refused as untrusted.
        let other = CertFactory::new().expect("more certs");
        let wrong = format!("{}{}", factory.other_root_pem(), other.root_pem());
        let emulator = BundleServer::start(wrong.as_bytes()).await;
        let dir = tempfile::tempdir().expect("a temp dir");
        let plan = auto_plan(
            &emulator.url(),
            None,
            dir.path(),
            server.port(),
            server.user(),
        );
        let path = ensure(&plan).await.expect("downloaded").expect("a bundle");
        let env = cache_env(dir.path()).with_file(path.display().to_string());
        let err = connect(&plan, &login, &env).await.expect_err("untrusted");
        assert_eq!(err.class(), ErrorClass::UntrustedCert, "{err}");
        assert_eq!(err.class().as_str(), "untrusted-cert");
        assert!(!err.to_string().contains(server.password()), "{err}");
    });
}
