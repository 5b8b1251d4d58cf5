//! The Cloud SQL IAM token provider against the emulated metadata server and OAuth2 token
//! endpoint: `google-cloud-auth` runs for real (metadata server, authorized user), and so does
//! this crate's JWT-bearer exchange for service account keys.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tea_pgcloud::conformance::certs;
use tea_pgcloud::conformance::emulators::gcp_token::{
    EXPIRED_EXPIRES_IN, JWT_BEARER_GRANT, MALFORMED_CANARY, MetadataServerEmulator,
    OAuthTokenEmulator,
};
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::iam::gcp::{
    CREDENTIALS_VAR, CloudSqlTokenProvider, GcpTokenPolicy, METADATA_HOST_VAR,
    METADATA_SERVER_TOKEN_LIFETIME, MINTED_TOKEN_LIFETIME, SQLSERVICE_LOGIN_SCOPE,
    WELL_KNOWN_ADC_FILE,
};
use tea_pgcloud::iam::{CredentialProvider, Token, TokenError, TokenErrorKind};
use tokio::sync::RwLock;

mod common;

/// The log test takes this for writing, every other test for reading: tracing decides once per
/// call site whether anyone listens, and a test running beside the log test's thread-local
/// subscriber makes that decision flaky.
static LOG_TEST: RwLock<()> = RwLock::const_new(());

const INSTANCE: &str = "my-project:us-central1:ltm";
const SA_EMAIL: &str = "ltm-agent@my-project.iam.gserviceaccount.com";
const SA_USER: &str = "ltm-agent@my-project.iam";
const CLIENT_ID: &str = "32555940559.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "gcp-CLIENT-SeCrEt-canary";
const REFRESH_TOKEN: &str = "1//gcp-REFRESH-token-canary";

/// Two RSA keys (PKCS#8 PEM), made once per run.
fn rsa_key(which: usize) -> &'static str {
    static KEYS: OnceLock<[String; 2]> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let make = || certs::rsa_key().expect("an RSA key");
        [make(), make()]
    });
    &keys[which]
}

/// A line from the middle of a PEM key: what a leak of the key would contain.
fn key_fragment(pem: &str) -> &str {
    pem.lines().nth(5).expect("a long key")
}

/// 3 attempts of at most 2 s (building the SDK's HTTP clients loads the system's root
/// certificates, slow on a busy machine), 5-20 ms apart.
fn fast() -> GcpTokenPolicy {
    GcpTokenPolicy {
        attempt_timeout: Duration::from_secs(2),
        attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    }
}

async fn mds_provider(
    mds: &MetadataServerEmulator,
    policy: GcpTokenPolicy,
) -> CloudSqlTokenProvider {
    CloudSqlTokenProvider::builder(INSTANCE)
        .user(SA_USER)
        .metadata_server(mds.uri())
        .policy(policy)
        .build()
        .await
        .expect("a provider")
}

async fn json_provider(json: Value, policy: GcpTokenPolicy) -> CloudSqlTokenProvider {
    CloudSqlTokenProvider::builder(INSTANCE)
        .credentials_json(json)
        .expect("supported credentials")
        .policy(policy)
        .build()
        .await
        .expect("a provider")
}

async fn sa_provider(oauth: &OAuthTokenEmulator, policy: GcpTokenPolicy) -> CloudSqlTokenProvider {
    json_provider(oauth.service_account_key(SA_EMAIL, rsa_key(0)), policy).await
}

async fn user_provider(
    oauth: &OAuthTokenEmulator,
    policy: GcpTokenPolicy,
) -> CloudSqlTokenProvider {
    let json = oauth.authorized_user(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN);
    CloudSqlTokenProvider::builder(INSTANCE)
        .user("dev@example.com")
        .credentials_json(json)
        .expect("supported credentials")
        .policy(policy)
        .build()
        .await
        .expect("a provider")
}

/// Fetches, returning the token and the wall-clock window the fetch ran in.
async fn timed_fetch(provider: &CloudSqlTokenProvider) -> (Token, SystemTime, SystemTime) {
    let before = SystemTime::now();
    let token = provider.fetch().await.expect("a token");
    (token, before, SystemTime::now())
}

fn assert_expiry_within(token: &Token, before: SystemTime, after: SystemTime, life: Duration) {
    assert!(
        token.expires_at >= before + life - Duration::from_secs(1)
            && token.expires_at <= after + life + Duration::from_secs(1),
        "{token:?} is not {life:?} after the fetch"
    );
}

/// The error is `kind`, names the provider and holds none of `secrets`.
fn check_error(err: &TokenError, kind: TokenErrorKind, secrets: &[&str]) {
    let shown = format!("{err} {err:?}");
    assert_eq!(err.kind(), kind, "{shown}");
    assert_eq!(err.provider(), "iam:gcp");
    assert!(shown.starts_with("iam:gcp: "), "{shown}");
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}

#[tokio::test]
async fn metadata_server_token_is_the_issued_one_with_the_login_scope() {
    let _serial = LOG_TEST.read().await;
    let mds = MetadataServerEmulator::start().await;
    let provider = mds_provider(&mds, fast()).await;
    assert_eq!(provider.name(), "iam:gcp");
    assert_eq!(provider.key(), format!("gcp:{INSTANCE}:{SA_USER}"));
    let (token, before, after) = timed_fetch(&provider).await;
    assert_eq!(Some(token.secret.expose().to_string()), mds.last_token());
    assert!(
        token.secret.expose().starts_with("ya29.emu-"),
        "{}",
        token.secret.expose()
    );
    assert_eq!(mds.last_scope().as_deref(), Some(SQLSERVICE_LOGIN_SCOPE));
    // google-cloud-auth hides the expiry: the documented assumption applies.
    assert_expiry_within(&token, before, after, METADATA_SERVER_TOKEN_LIFETIME);
    assert_eq!(mds.requests(), 1);
    let seen = mds.server().received_requests().await.expect("recorded");
    assert_eq!(seen.len(), 1, "one request per fetch, nothing else");
    assert_eq!(
        seen[0].url.path(),
        "/computeMetadata/v1/instance/service-accounts/default/token"
    );
    assert_eq!(
        seen[0].headers.get("metadata-flavor").map(|v| v.as_bytes()),
        Some(&b"Google"[..])
    );
}

#[tokio::test]
async fn every_fetch_asks_the_issuer_again() {
    let _serial = LOG_TEST.read().await;
    let mds = MetadataServerEmulator::start().await;
    let oauth = OAuthTokenEmulator::start().await;
    let providers = [
        mds_provider(&mds, fast()).await,
        sa_provider(&oauth, fast()).await,
        user_provider(&oauth, fast()).await,
    ];
    for provider in &providers {
        let first = provider.fetch().await.expect("a token");
        let second = provider.fetch().await.expect("a token");
        assert_ne!(
            first.secret, second.secret,
            "{provider:?} answered from a cache"
        );
    }
    assert_eq!(mds.requests(), 2);
    assert_eq!(mds.issued(), 2);
    assert_eq!(oauth.requests(), 4);
    assert_eq!(oauth.issued(), 4);
}

#[tokio::test]
async fn service_account_key_gets_an_oauth_access_token_by_jwt_bearer_grant() {
    let _serial = LOG_TEST.read().await;
    let oauth = OAuthTokenEmulator::start().await;
    oauth.set_expires_in(1234);
    let provider = sa_provider(&oauth, fast()).await;
    assert_eq!(
        provider.user(),
        SA_USER,
        "the e-mail loses .gserviceaccount.com"
    );
    assert_eq!(provider.key(), format!("gcp:{INSTANCE}:{SA_USER}"));
    let (token, before, after) = timed_fetch(&provider).await;
    // An access token from the endpoint, not a self-signed JWT (`eyJ...` with two dots).
    assert_eq!(Some(token.secret.expose().to_string()), oauth.last_token());
    assert_eq!(oauth.last_scope().as_deref(), Some(SQLSERVICE_LOGIN_SCOPE));
    assert_expiry_within(&token, before, after, Duration::from_secs(1234));
    let seen = oauth.server().received_requests().await.expect("recorded");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method.as_str(), "POST");
    assert_eq!(
        seen[0].headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/x-www-form-urlencoded"[..])
    );
    let body = String::from_utf8_lossy(&seen[0].body);
    assert!(
        body.starts_with(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=eyJ"
        ),
        "{body}"
    );
    assert!(JWT_BEARER_GRANT.starts_with("urn:ietf:params:oauth:grant-type"));
}

#[tokio::test]
async fn authorized_user_refreshes_through_the_sdk() {
    let _serial = LOG_TEST.read().await;
    let oauth = OAuthTokenEmulator::start().await;
    let provider = user_provider(&oauth, fast()).await;
    assert_eq!(provider.key(), format!("gcp:{INSTANCE}:dev@example.com"));
    let (token, before, after) = timed_fetch(&provider).await;
    assert_eq!(Some(token.secret.expose().to_string()), oauth.last_token());
    assert_eq!(oauth.last_scope().as_deref(), Some(SQLSERVICE_LOGIN_SCOPE));
    assert_expiry_within(&token, before, after, MINTED_TOKEN_LIFETIME);
    let seen = oauth.server().received_requests().await.expect("recorded");
    let body: Value = serde_json::from_slice(&seen[0].body).expect("the SDK posts JSON");
    assert_eq!(body["grant_type"], "refresh_token");
    assert_eq!(body["client_id"], CLIENT_ID);
}

/// The hook sees the token before the answer leaves the emulator: with a delay on the answer,
/// the hook runs at least that long before the fetch returns.
#[tokio::test]
async fn on_issue_runs_before_the_answer_is_sent() {
    let _serial = LOG_TEST.read().await;
    let mds = MetadataServerEmulator::start().await;
    let oauth = OAuthTokenEmulator::start().await;
    let delay = Duration::from_millis(300);
    let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    for target in [&mds as &dyn Controls, &oauth] {
        let log = seen.clone();
        target.hook(Arc::new(move |token: &str| {
            log.lock()
                .expect("log")
                .push((token.to_string(), Instant::now()));
        }));
        target.delay(delay);
    }
    for provider in [
        mds_provider(&mds, fast()).await,
        sa_provider(&oauth, fast()).await,
    ] {
        seen.lock().expect("log").clear();
        let token = provider.fetch().await.expect("a token");
        let returned = Instant::now();
        let log = seen.lock().expect("log").clone();
        assert_eq!(log.len(), 1, "{provider:?}");
        assert_eq!(log[0].0, token.secret.expose());
        assert!(returned.duration_since(log[0].1) >= delay - Duration::from_millis(20));
    }
}

/// What the hook test needs of both emulators.
trait Controls {
    fn hook(&self, hook: Arc<dyn Fn(&str) + Send + Sync>);
    fn delay(&self, delay: Duration);
}

impl Controls for MetadataServerEmulator {
    fn hook(&self, hook: Arc<dyn Fn(&str) + Send + Sync>) {
        self.on_issue(hook);
    }
    fn delay(&self, delay: Duration) {
        self.set_delay(delay);
    }
}

impl Controls for OAuthTokenEmulator {
    fn hook(&self, hook: Arc<dyn Fn(&str) + Send + Sync>) {
        self.on_issue(hook);
    }
    fn delay(&self, delay: Duration) {
        self.set_delay(delay);
    }
}

#[tokio::test]
async fn server_errors_are_retried_then_unavailable() {
    let _serial = LOG_TEST.read().await;
    let mds = MetadataServerEmulator::start().await;
    let provider = mds_provider(&mds, fast()).await;
    mds.fail_next(5);
    let err = provider.fetch().await.expect_err("503 every time");
    check_error(&err, TokenErrorKind::Unavailable, &[]);
    assert!(
        err.message().contains("HTTP 503") && err.message().contains("attempt 3 of 3"),
        "{err}"
    );
    assert_eq!(mds.requests(), 3, "the policy's attempts, each one request");
    mds.fail_next(2);
    provider.fetch().await.expect("the third attempt succeeds");
    assert_eq!(mds.requests(), 6);

    let oauth = OAuthTokenEmulator::start().await;
    for provider in [
        sa_provider(&oauth, fast()).await,
        user_provider(&oauth, fast()).await,
    ] {
        let before = oauth.requests();
        oauth.fail_next_with(3, 500);
        let err = provider.fetch().await.expect_err("500 every time");
        check_error(
            &err,
            TokenErrorKind::Unavailable,
            &[CLIENT_SECRET, REFRESH_TOKEN],
        );
        assert!(err.message().contains("HTTP 500"), "{err}");
        assert_eq!(oauth.requests() - before, 3, "{provider:?}");
    }
}

#[tokio::test]
async fn a_slow_issuer_is_unavailable_after_the_attempt_timeout() {
    let _serial = LOG_TEST.read().await;
    let policy = GcpTokenPolicy {
        attempt_timeout: Duration::from_millis(300),
        attempts: 1,
        ..fast()
    };
    let mds = MetadataServerEmulator::start().await;
    mds.set_delay(Duration::from_secs(5));
    let oauth = OAuthTokenEmulator::start().await;
    oauth.set_delay(Duration::from_secs(5));
    for provider in [
        mds_provider(&mds, policy).await,
        sa_provider(&oauth, policy).await,
    ] {
        let err = provider.fetch().await.expect_err("too slow");
        check_error(&err, TokenErrorKind::Unavailable, &[]);
        assert!(
            err.message().contains("did not answer within 300ms"),
            "{err}"
        );
    }
    // Changed while running: the next answers are quick again.
    mds.set_delay(Duration::ZERO);
    mds_provider(&mds, fast())
        .await
        .fetch()
        .await
        .expect("fast again");
    // The fast fetch was answered; the slow one may have timed out before its request left
    // (building the SDK's HTTP client can take longer than 300 ms on a loaded machine).
    let requests = mds.requests();
    assert!((1..=2).contains(&requests), "{requests} requests");
}

#[tokio::test]
async fn an_unreachable_metadata_server_is_unavailable() {
    let _serial = LOG_TEST.read().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let endpoint = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let provider = CloudSqlTokenProvider::builder(INSTANCE)
        .user(SA_USER)
        .metadata_server(endpoint)
        .policy(fast())
        .build()
        .await
        .expect("a provider");
    let err = provider.fetch().await.expect_err("nobody listens");
    check_error(&err, TokenErrorKind::Unavailable, &[]);
    assert!(err.message().contains("attempt 3 of 3"), "{err}");
}

#[tokio::test]
async fn expired_tokens_are_invalid() {
    let _serial = LOG_TEST.read().await;
    let mds = MetadataServerEmulator::start().await;
    mds.set_expired(true);
    let err = mds_provider(&mds, fast())
        .await
        .fetch()
        .await
        .expect_err("expired");
    let issued = mds.last_token().expect("a token was minted");
    check_error(&err, TokenErrorKind::Invalid, &[&issued]);
    assert_eq!(mds.requests(), 1, "not retried");

    let oauth = OAuthTokenEmulator::start().await;
    let provider = sa_provider(&oauth, fast()).await;
    oauth.set_expired(true);
    let err = provider.fetch().await.expect_err("expired");
    check_error(
        &err,
        TokenErrorKind::Invalid,
        &[&oauth.last_token().expect("minted")],
    );
    assert!(
        err.message()
            .contains(&format!("expires_in {EXPIRED_EXPIRES_IN}")),
        "{err}"
    );
    oauth.set_expired(false);
    oauth.set_expires_in(0);
    let err = provider.fetch().await.expect_err("expired");
    check_error(
        &err,
        TokenErrorKind::Invalid,
        &[&oauth.last_token().expect("minted")],
    );
    assert_eq!(oauth.requests(), 2);
}

#[tokio::test]
async fn unreadable_answers_are_invalid_and_not_echoed() {
    let _serial = LOG_TEST.read().await;
    let mds = MetadataServerEmulator::start().await;
    mds.set_malformed(true);
    let oauth = OAuthTokenEmulator::start().await;
    oauth.set_malformed(true);
    for provider in [
        mds_provider(&mds, fast()).await,
        sa_provider(&oauth, fast()).await,
        user_provider(&oauth, fast()).await,
    ] {
        let err = provider.fetch().await.expect_err("not JSON");
        check_error(
            &err,
            TokenErrorKind::Invalid,
            &[MALFORMED_CANARY, CLIENT_SECRET],
        );
    }
    assert_eq!(mds.requests(), 1);
    assert_eq!(oauth.requests(), 2);
}

#[tokio::test]
async fn refusals_are_denied() {
    let _serial = LOG_TEST.read().await;
    let mds = MetadataServerEmulator::start().await;
    mds.fail_next_with(1, 403);
    let err = mds_provider(&mds, fast())
        .await
        .fetch()
        .await
        .expect_err("403");
    check_error(&err, TokenErrorKind::Denied, &[]);
    assert!(err.message().contains("HTTP 403"), "{err}");
    assert_eq!(mds.requests(), 1, "not retried");

    let oauth = OAuthTokenEmulator::start().await;
    // A client secret that is not the registered one: 401 invalid_client.
    let mut json = oauth.authorized_user(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN);
    json["client_secret"] = Value::from("gcp-WRONG-secret-canary");
    let provider = CloudSqlTokenProvider::builder(INSTANCE)
        .user("dev@example.com")
        .credentials_json(json)
        .expect("supported")
        .policy(fast())
        .build()
        .await
        .expect("a provider");
    let err = provider.fetch().await.expect_err("bad secret");
    check_error(
        &err,
        TokenErrorKind::Denied,
        &["gcp-WRONG-secret-canary", REFRESH_TOKEN],
    );
    assert!(err.message().contains("HTTP 401"), "{err}");

    // A key file whose private key is not the account's: 400 invalid_grant.
    let mut json = oauth.service_account_key(SA_EMAIL, rsa_key(0));
    json["private_key"] = Value::from(rsa_key(1));
    let err = json_provider(json, fast())
        .await
        .fetch()
        .await
        .expect_err("bad signature");
    check_error(&err, TokenErrorKind::Denied, &[key_fragment(rsa_key(1))]);
    assert!(err.message().contains("HTTP 400 (invalid_grant)"), "{err}");
    assert_eq!(oauth.requests(), 2, "refusals are not retried");
    assert_eq!(oauth.issued(), 0);
}

#[test]
fn no_token_or_credential_in_logs_debug_or_errors() {
    let _alone = LOG_TEST.blocking_write();
    let ((tokens, shown), logs) = common::under_trace(async {
        let mds = MetadataServerEmulator::start().await;
        let oauth = OAuthTokenEmulator::start().await;
        let providers = [
            mds_provider(&mds, fast()).await,
            sa_provider(&oauth, fast()).await,
            user_provider(&oauth, fast()).await,
        ];
        let mut tokens = Vec::new();
        let mut shown = String::new();
        for _ in 0..3 {
            for provider in &providers {
                let token = provider.fetch().await.expect("a token");
                shown += &format!("{provider:?} {token:?}\n");
                tokens.push(token.secret.expose().to_string());
            }
        }
        mds.set_expired(true);
        oauth.fail_next_with(2, 401);
        for provider in &providers {
            let err = provider.fetch().await.expect_err("a fault");
            shown += &format!("{err} {err:?}\n");
        }
        tokens.push(mds.last_token().expect("minted"));
        (tokens, shown)
    });
    assert!(
        shown.contains("CloudSqlTokenProvider") && shown.contains(SA_EMAIL),
        "{shown}"
    );
    for token in &tokens {
        common::assert_nowhere(token, &logs, &shown);
    }
    for secret in [CLIENT_SECRET, REFRESH_TOKEN, key_fragment(rsa_key(0))] {
        common::assert_nowhere(secret, &logs, &shown);
    }
}

fn iam_plan(user: Option<&str>) -> tea_pgcloud::plan::ConnectPlan {
    let user = user.map(|u| format!("user: {u}\n")).unwrap_or_default();
    common::plan_of(&format!(
        "provider: gcp\nconnection_name: {INSTANCE}\n{user}iam_auth: true\n"
    ))
}

#[tokio::test]
async fn from_plan_uses_the_metadata_server_named_by_the_environment() {
    let _serial = LOG_TEST.read().await;
    let mds = MetadataServerEmulator::start().await;
    let plan = iam_plan(Some(SA_EMAIL));
    assert_eq!(plan.user.as_deref(), Some(SA_USER));
    let env = Arc::new(MapEnv::new().with_var(METADATA_HOST_VAR, mds.host()));
    let provider = CloudSqlTokenProvider::from_plan(&plan, env)
        .await
        .expect("a provider");
    assert_eq!(provider.key(), format!("gcp:{INSTANCE}:{SA_USER}"));
    let token = provider.fetch().await.expect("a token");
    assert_eq!(Some(token.secret.expose().to_string()), mds.last_token());

    // Without a user in the plan, the metadata server's account is the user.
    let mds =
        MetadataServerEmulator::start_with_email("vm-sa@other-project.iam.gserviceaccount.com")
            .await;
    let env = Arc::new(MapEnv::new().with_var(METADATA_HOST_VAR, mds.host()));
    let provider = CloudSqlTokenProvider::from_plan(&iam_plan(None), env)
        .await
        .expect("a provider");
    assert_eq!(provider.user(), "vm-sa@other-project.iam");
    assert_eq!(
        mds.requests(),
        0,
        "asking the e-mail is not a token request"
    );
}

#[tokio::test]
async fn from_plan_reads_the_key_file_named_by_the_environment() {
    let _serial = LOG_TEST.read().await;
    let oauth = OAuthTokenEmulator::start().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("key.json");
    let json = oauth.service_account_key(SA_EMAIL, rsa_key(0));
    std::fs::write(&path, json.to_string()).expect("written");
    let env = Arc::new(MapEnv::new().with_var(CREDENTIALS_VAR, path.display().to_string()));
    // No user in the plan: the key's account is the user.
    let provider = CloudSqlTokenProvider::from_plan(&iam_plan(None), env)
        .await
        .expect("a provider");
    assert_eq!(provider.key(), format!("gcp:{INSTANCE}:{SA_USER}"));
    let token = provider.fetch().await.expect("a token");
    assert_eq!(Some(token.secret.expose().to_string()), oauth.last_token());
    assert!(!format!("{provider:?}").contains(key_fragment(rsa_key(0))));

    let env = Arc::new(MapEnv::new().with_var(
        CREDENTIALS_VAR,
        dir.path().join("missing.json").display().to_string(),
    ));
    let err = CloudSqlTokenProvider::from_plan(&iam_plan(None), env)
        .await
        .expect_err("no file");
    check_error(&err, TokenErrorKind::Config, &[]);
    assert!(err.message().contains("missing.json"), "{err}");
}

#[tokio::test]
async fn from_plan_reads_gclouds_adc_file_under_home() {
    let _serial = LOG_TEST.read().await;
    let oauth = OAuthTokenEmulator::start().await;
    let home = tempfile::tempdir().expect("a temp dir");
    let path = home.path().join(WELL_KNOWN_ADC_FILE);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("dirs");
    let json = oauth.authorized_user(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN);
    std::fs::write(&path, json.to_string()).expect("written");
    let env = MapEnv::new()
        .with_var("HOME", home.path().display().to_string())
        .with_file(path.display().to_string());
    let env = Arc::new(env);
    let provider =
        CloudSqlTokenProvider::from_plan(&iam_plan(Some("dev@example.com")), env.clone())
            .await
            .expect("a provider");
    let token = provider.fetch().await.expect("a token");
    assert_eq!(Some(token.secret.expose().to_string()), oauth.last_token());
    // A user account does not say who it is: the plan must.
    let err = CloudSqlTokenProvider::from_plan(&iam_plan(None), env)
        .await
        .expect_err("no user");
    check_error(
        &err,
        TokenErrorKind::Config,
        &[CLIENT_SECRET, REFRESH_TOKEN],
    );
    assert!(err.message().contains("user"), "{err}");
}
