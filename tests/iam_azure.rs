//! Entra ID database tokens with the real SDK (`azure_identity`) against the token emulators:
//! the client-secret and workload-identity flows (Entra `/{tenant}/oauth2/v2.0/token`), the
//! managed identity over IMDS (the SDK keeps `http://169.254.169.254`; an emulator transport
//! carries the bytes) and over App Service (`IDENTITY_ENDPOINT`, which the SDK reads from the
//! process environment only: that test runs this binary again as a child process with the
//! variables set, so that this process's environment is never changed).

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tea_pgcloud::conformance::child::ChildTest;

use tea_pgcloud::conformance::emulators::azure_token::{
    AzureTokenEmulator, CLIENT_ID, CLIENT_SECRET, EXPIRED_BY, FEDERATED_TOKEN, IDENTITY_HEADER,
    MANAGED_IDENTITY_CLIENT_ID, Protocol, TENANT_ID,
};
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::iam::azure::{EntraTokenProvider, OSSRDBMS_SCOPE};
use tea_pgcloud::iam::{CredentialProvider, Token, TokenError, TokenErrorKind};
use tea_pgcloud::plan::ConnectPlan;
use tea_pgcloud::secrets::azure::AzureTimeouts;

const HOST: &str = "ltm-server.postgres.database.azure.com";
const USER: &str = "ltm_app";
/// The resource a managed identity asks for: the scope without `/.default`.
const OSSRDBMS_RESOURCE: &str = "https://ossrdbms-aad.database.windows.net";

fn plan() -> ConnectPlan {
    common::plan_of(&format!(
        "
settings:
  ltm:
    catalog:
      type: postgres
      provider: azure
      host: {HOST}
      database: ltm
      user: {USER}
      iam_auth: true
"
    ))
}

/// Short timeouts: 2 retries, 10 ms first back-off, 500 ms per attempt, 10 s per fetch.
fn fast() -> AzureTimeouts {
    AzureTimeouts {
        request: Duration::from_millis(500),
        connect: Duration::from_millis(500),
        max_retries: 2,
        retry_initial_delay: Duration::from_millis(10),
        retry_max_delay: Duration::from_secs(1),
        total: Duration::from_secs(10),
    }
}

fn client_secret_env(secret: &str) -> MapEnv {
    MapEnv::new()
        .with_var("AZURE_TENANT_ID", TENANT_ID)
        .with_var("AZURE_CLIENT_ID", CLIENT_ID)
        .with_var("AZURE_CLIENT_SECRET", secret)
}

fn provider_with(
    emulator: &AzureTokenEmulator,
    env: MapEnv,
    timeouts: AzureTimeouts,
) -> EntraTokenProvider {
    EntraTokenProvider::for_emulator(&plan(), Arc::new(env), &emulator.uri(), timeouts)
        .expect("a provider")
}

fn provider(emulator: &AzureTokenEmulator, env: MapEnv) -> EntraTokenProvider {
    provider_with(emulator, env, fast())
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// Asserts that `expires_at` is `expected` give or take `slack`.
fn assert_near(expires_at: SystemTime, expected: SystemTime, slack: Duration) {
    let gap = match expires_at.duration_since(expected) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(
        gap <= slack,
        "expiry {expires_at:?} is {gap:?} away from {expected:?}"
    );
}

/// Asserts that none of `needles` is in `err`'s `Display` or `Debug`.
fn assert_hidden(err: &TokenError, needles: &[&str]) {
    let shown = format!("{err} {err:?}");
    for needle in needles {
        assert!(!shown.contains(needle), "{needle} leaked: {shown}");
    }
}

/// The managed-identity tests that run in this process rely on the SDK choosing IMDS, which it
/// does from the process environment.
fn assert_imds_is_selected() {
    for var in ["IDENTITY_ENDPOINT", "MSI_ENDPOINT"] {
        assert!(
            std::env::var_os(var).is_none(),
            "{var} is set in this process, so azure_identity would not use IMDS; run these tests without it"
        );
    }
}

#[tokio::test]
async fn client_secret_tokens_are_the_ones_issued_for_the_ossrdbms_scope() {
    let emulator = AzureTokenEmulator::start().await;
    let provider = provider(&emulator, client_secret_env(CLIENT_SECRET));
    assert_eq!(provider.name(), "iam:azure");
    assert_eq!(provider.key(), format!("azure:{HOST}:{USER}"));
    assert_eq!(provider.credential_name(), "ClientSecretCredential");
    assert_eq!(
        OSSRDBMS_SCOPE,
        "https://ossrdbms-aad.database.windows.net/.default"
    );

    let token = provider.fetch().await.expect("a token");
    assert_eq!(
        Some(token.secret.expose().to_string()),
        emulator.last_token()
    );
    // The SDK computes the expiry from `expires_in` when the answer arrives.
    assert_near(
        token.expires_at,
        emulator.last_expiry().expect("an expiry"),
        Duration::from_secs(2),
    );
    assert_near(
        token.expires_at,
        SystemTime::now() + Duration::from_secs(3599),
        Duration::from_secs(5),
    );
    assert_eq!(emulator.requests(), 1);
    let request = emulator.last_request().expect("a request");
    assert_eq!(request.protocol, Protocol::Entra);
    assert_eq!(request.tenant.as_deref(), Some(TENANT_ID));
    assert_eq!(request.grant_type.as_deref(), Some("client_credentials"));
    assert_eq!(request.client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(request.client_auth, Some("client_secret"));
    assert_eq!(request.scope.as_deref(), Some(OSSRDBMS_SCOPE));
    assert_eq!(request.host, "login.microsoftonline.com");

    // The SDK would hand the same token back for an hour; the provider asks anew each time.
    emulator.set_lifetime(Duration::from_secs(600));
    let second = provider.fetch().await.expect("a second token");
    assert_ne!(second.secret, token.secret);
    assert_eq!(
        Some(second.secret.expose().to_string()),
        emulator.last_token()
    );
    assert_near(
        second.expires_at,
        SystemTime::now() + Duration::from_secs(600),
        Duration::from_secs(5),
    );
    assert_eq!(emulator.requests(), 2);

    for shown in [
        format!("{provider:?}"),
        format!("{token:?}"),
        format!("{second:?}"),
    ] {
        assert!(!shown.contains(CLIENT_SECRET), "{shown}");
        assert!(!shown.contains(token.secret.expose()), "{shown}");
        assert!(!shown.contains(second.secret.expose()), "{shown}");
    }
}

#[tokio::test]
async fn azure_authority_host_comes_from_the_given_environment() {
    let emulator = AzureTokenEmulator::start().await;
    let env = client_secret_env(CLIENT_SECRET)
        .with_var("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us");
    let provider = provider(&emulator, env);
    provider.fetch().await.expect("a token");
    let request = emulator.last_request().expect("a request");
    assert_eq!(request.host, "login.microsoftonline.us");
    assert_eq!(request.tenant.as_deref(), Some(TENANT_ID));
}

#[tokio::test]
async fn a_wrong_client_secret_is_denied_once_and_never_shown() {
    let emulator = AzureTokenEmulator::start().await;
    let wrong = "canary-wrong-client-secret-51f0";
    let provider = provider(&emulator, client_secret_env(wrong));
    assert!(!format!("{provider:?}").contains(wrong));
    let err = provider.fetch().await.expect_err("refused");
    assert_eq!(err.kind(), TokenErrorKind::Denied, "{err}");
    assert_eq!(err.provider(), "iam:azure");
    let text = err.to_string();
    assert!(text.contains("ClientSecretCredential"), "{text}");
    assert!(text.contains("401"), "{text}");
    assert!(text.contains("7000215"), "{text}");
    assert_hidden(&err, &[wrong, CLIENT_SECRET]);
    // 401 is not retried.
    assert_eq!(emulator.requests(), 1);
    assert_eq!(emulator.issued(), 0);
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let emulator = AzureTokenEmulator::start().await;
    let provider = provider(&emulator, client_secret_env(CLIENT_SECRET));
    emulator.fail_next(2, 503);
    let token = provider.fetch().await.expect("a token after two retries");
    assert_eq!(
        Some(token.secret.expose().to_string()),
        emulator.last_token()
    );
    assert_eq!(emulator.requests(), 3);
    assert_eq!(emulator.issued(), 1);
}

#[tokio::test]
async fn server_errors_beyond_the_retries_are_unavailable() {
    let emulator = AzureTokenEmulator::start().await;
    let provider = provider(&emulator, client_secret_env(CLIENT_SECRET));
    emulator.fail_next(10, 500);
    let err = provider.fetch().await.expect_err("still failing");
    assert_eq!(err.kind(), TokenErrorKind::Unavailable, "{err}");
    let text = err.to_string();
    assert!(text.contains("500"), "{text}");
    assert!(text.contains("after 3 attempts"), "{text}");
    assert_hidden(&err, &[CLIENT_SECRET]);
    // The first try and max_retries (2) retries.
    assert_eq!(emulator.requests(), 3);
    // Exactly as many failures as attempts: the next fetch fails, the one after succeeds.
    emulator.fail_next(3, 502);
    assert_eq!(
        provider.fetch().await.expect_err("502 x3").kind(),
        TokenErrorKind::Unavailable
    );
    provider.fetch().await.expect("healed");
    assert_eq!(emulator.requests(), 7);
}

#[tokio::test]
async fn a_slow_endpoint_times_out_and_the_delay_can_change_while_running() {
    let emulator = AzureTokenEmulator::start().await;
    let provider = provider(&emulator, client_secret_env(CLIENT_SECRET));
    emulator.set_delay(Duration::from_secs(3));
    let err = provider.fetch().await.expect_err("too slow");
    assert_eq!(err.kind(), TokenErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    // Each of the 3 attempts ended at the attempt timeout, long before the 3 s answer.
    assert_eq!(emulator.requests(), 3);

    emulator.set_delay(Duration::from_millis(100));
    let token = provider.fetch().await.expect("fast enough now");
    assert_eq!(
        Some(token.secret.expose().to_string()),
        emulator.last_token()
    );
}

#[tokio::test]
async fn a_whole_fetch_is_bounded_by_the_total_timeout() {
    let emulator = AzureTokenEmulator::start().await;
    let timeouts = AzureTimeouts {
        request: Duration::from_secs(5),
        total: Duration::from_millis(300),
        ..fast()
    };
    let provider = provider_with(&emulator, client_secret_env(CLIENT_SECRET), timeouts);
    emulator.set_delay(Duration::from_secs(2));
    let err = provider.fetch().await.expect_err("too slow");
    assert_eq!(err.kind(), TokenErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("within 300ms"), "{err}");
    assert_eq!(emulator.requests(), 1);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("an address")
    };
    let provider = EntraTokenProvider::for_emulator(
        &plan(),
        Arc::new(client_secret_env(CLIENT_SECRET)),
        &format!("http://{closed}"),
        fast(),
    )
    .expect("a provider");
    let err = provider.fetch().await.expect_err("nothing listens");
    assert_eq!(err.kind(), TokenErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("connection failed"), "{err}");
    assert!(err.to_string().contains("3 attempts"), "{err}");
    assert_hidden(&err, &[CLIENT_SECRET]);
}

#[tokio::test]
async fn an_expired_token_is_invalid_and_not_shown() {
    let emulator = AzureTokenEmulator::start().await;
    let provider = provider(&emulator, client_secret_env(CLIENT_SECRET));
    emulator.expire_next(1);
    let err = provider.fetch().await.expect_err("expired");
    assert_eq!(err.kind(), TokenErrorKind::Invalid, "{err}");
    assert!(err.to_string().contains("already expired"), "{err}");
    let issued = emulator.last_token().expect("a token was issued");
    assert_hidden(&err, &[&issued, CLIENT_SECRET]);
    assert_eq!(emulator.requests(), 1);
    assert!(EXPIRED_BY > Duration::ZERO);
    // The next one is fine.
    provider.fetch().await.expect("a live token");
}

#[tokio::test]
async fn a_body_that_is_not_a_token_is_invalid_and_not_quoted() {
    let emulator = AzureTokenEmulator::start().await;
    let provider = provider(&emulator, client_secret_env(CLIENT_SECRET));
    emulator.malform_next(1);
    let err = provider.fetch().await.expect_err("malformed");
    assert_eq!(err.kind(), TokenErrorKind::Invalid, "{err}");
    assert!(err.to_string().contains("not a token"), "{err}");
    let in_body = emulator.last_token().expect("the body held a token");
    assert_hidden(&err, &[&in_body, "emulator-entra-token"]);
    assert_eq!(emulator.requests(), 1);
}

#[tokio::test]
async fn workload_identity_sends_the_federated_token_as_assertion() {
    let emulator = AzureTokenEmulator::start().await;
    let dir = tempfile::tempdir().expect("a directory");
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, FEDERATED_TOKEN).expect("written");
    let env = MapEnv::new()
        .with_var("AZURE_TENANT_ID", TENANT_ID)
        .with_var("AZURE_CLIENT_ID", CLIENT_ID)
        .with_var("AZURE_FEDERATED_TOKEN_FILE", file.to_string_lossy());
    let provider = provider(&emulator, env);
    assert_eq!(provider.credential_name(), "WorkloadIdentityCredential");
    let token = provider.fetch().await.expect("a token");
    assert_eq!(
        Some(token.secret.expose().to_string()),
        emulator.last_token()
    );
    let request = emulator.last_request().expect("a request");
    assert_eq!(request.client_auth, Some("client_assertion"));
    assert_eq!(request.scope.as_deref(), Some(OSSRDBMS_SCOPE));
    assert!(!format!("{provider:?}").contains(FEDERATED_TOKEN));

    // A federated token the tenant does not trust is denied.
    std::fs::write(&file, "canary-untrusted-federated-token").expect("rewritten");
    let err = provider.fetch().await.expect_err("untrusted");
    assert_eq!(err.kind(), TokenErrorKind::Denied, "{err}");
    assert_hidden(&err, &["canary-untrusted-federated-token"]);
}

#[tokio::test]
async fn settings_errors_are_config_and_send_nothing() {
    let emulator = AzureTokenEmulator::start().await;
    let build = |env: MapEnv| {
        EntraTokenProvider::for_emulator(&plan(), Arc::new(env), &emulator.uri(), fast())
    };
    let no_tenant = MapEnv::new()
        .with_var("AZURE_CLIENT_ID", CLIENT_ID)
        .with_var("AZURE_CLIENT_SECRET", "canary-cs");
    let bad_tenant = client_secret_env("canary-cs").with_var("AZURE_TENANT_ID", "bad tenant!");
    let http_authority = client_secret_env("canary-cs")
        .with_var("AZURE_AUTHORITY_HOST", "http://login.microsoftonline.com");
    let missing_file = MapEnv::new()
        .with_var("AZURE_TENANT_ID", TENANT_ID)
        .with_var("AZURE_CLIENT_ID", CLIENT_ID)
        .with_var(
            "AZURE_FEDERATED_TOKEN_FILE",
            "/nonexistent/azure-identity-token",
        );
    for (env, names) in [
        (no_tenant, "AZURE_TENANT_ID"),
        (bad_tenant, "ClientSecretCredential"),
        (http_authority, "AZURE_AUTHORITY_HOST"),
        (missing_file, "WorkloadIdentityCredential"),
    ] {
        let err = build(env).expect_err(names);
        assert_eq!(err.kind(), TokenErrorKind::Config, "{err}");
        assert!(err.to_string().contains(names), "{err}");
        assert_hidden(&err, &["canary"]);
    }

    let not_iam = common::plan_of(&format!(
        "
settings:
  ltm:
    catalog:
      type: postgres
      provider: azure
      host: {HOST}
      user: {USER}
      credentials:
        source: env
"
    ));
    let err = EntraTokenProvider::from_plan(&not_iam, Arc::new(client_secret_env("canary-cs")))
        .expect_err("not an IAM plan");
    assert_eq!(err.kind(), TokenErrorKind::Config, "{err}");
    assert!(err.to_string().contains("iam:azure"), "{err}");
    assert_eq!(emulator.requests(), 0);
}

#[test]
fn from_plan_takes_the_credential_from_the_given_environment() {
    let plan = plan();
    let env = client_secret_env("canary-from-plan-secret");
    let provider = EntraTokenProvider::from_plan(&plan, Arc::new(env)).expect("a provider");
    assert_eq!(provider.credential_name(), "ClientSecretCredential");
    assert_eq!(provider.key(), format!("azure:{HOST}:{USER}"));
    assert_eq!(*provider.timeouts(), AzureTimeouts::default());
    let shown = format!("{provider:?}");
    assert!(shown.contains(TENANT_ID), "{shown}");
    assert!(!shown.contains("canary"), "{shown}");

    let managed = EntraTokenProvider::from_plan(
        &plan,
        Arc::new(MapEnv::new().with_var("AZURE_CLIENT_ID", MANAGED_IDENTITY_CLIENT_ID)),
    );
    // IMDS unless this process runs where App Service's variables are set.
    if std::env::var_os("IDENTITY_ENDPOINT").is_none() && std::env::var_os("MSI_ENDPOINT").is_none()
    {
        let managed = managed.expect("a managed identity provider");
        assert_eq!(managed.credential_name(), "ManagedIdentityCredential");
    }
}

#[tokio::test]
async fn imds_managed_identity_tokens_are_the_ones_issued() {
    assert_imds_is_selected();
    let emulator = AzureTokenEmulator::start().await;
    let provider = provider(&emulator, MapEnv::new());
    assert_eq!(provider.credential_name(), "ManagedIdentityCredential");

    let token = provider.fetch().await.expect("a token");
    assert_eq!(
        Some(token.secret.expose().to_string()),
        emulator.last_token()
    );
    // `expires_on` is in whole seconds.
    assert_eq!(
        secs(token.expires_at),
        secs(emulator.last_expiry().expect("an expiry"))
    );
    let request = emulator.last_request().expect("a request");
    assert_eq!(request.protocol, Protocol::Imds);
    assert_eq!(request.host, "169.254.169.254");
    assert_eq!(request.resource.as_deref(), Some(OSSRDBMS_RESOURCE));
    assert_eq!(request.api_version.as_deref(), Some("2019-08-01"));
    assert_eq!(request.client_id, None);

    let second = provider.fetch().await.expect("a second token");
    assert_ne!(second.secret, token.secret);
    assert_eq!(emulator.requests(), 2);
}

#[tokio::test]
async fn a_user_assigned_identity_is_asked_for_by_client_id() {
    assert_imds_is_selected();
    let emulator = AzureTokenEmulator::start().await;
    let env = MapEnv::new().with_var("AZURE_CLIENT_ID", MANAGED_IDENTITY_CLIENT_ID);
    let token = provider(&emulator, env).fetch().await.expect("a token");
    assert_eq!(
        Some(token.secret.expose().to_string()),
        emulator.last_token()
    );
    let request = emulator.last_request().expect("a request");
    assert_eq!(
        request.client_id.as_deref(),
        Some(MANAGED_IDENTITY_CLIENT_ID)
    );

    // An identity that is not assigned to this host: IMDS answers 400, not retried.
    let env = MapEnv::new().with_var("AZURE_CLIENT_ID", "00000000-0000-4000-8000-00000000beef");
    let err = provider(&emulator, env)
        .fetch()
        .await
        .expect_err("not assigned");
    assert_eq!(err.kind(), TokenErrorKind::Denied, "{err}");
    assert!(err.to_string().contains("400"), "{err}");
    assert_eq!(emulator.requests(), 2);
}

#[tokio::test]
async fn imds_faults_follow_the_sdks_own_retry_policy() {
    assert_imds_is_selected();
    let emulator = AzureTokenEmulator::start().await;
    let provider = provider(&emulator, MapEnv::new());
    // The IMDS credential retries 5xx itself, first after about 1.34 s.
    emulator.fail_next(1, 503);
    let token = provider.fetch().await.expect("a token after one retry");
    assert_eq!(
        Some(token.secret.expose().to_string()),
        emulator.last_token()
    );
    assert_eq!(emulator.requests(), 2);

    emulator.expire_next(1);
    let err = provider.fetch().await.expect_err("expired");
    assert_eq!(err.kind(), TokenErrorKind::Invalid, "{err}");
    assert_hidden(&err, &[&emulator.last_token().expect("issued")]);

    emulator.malform_next(1);
    let err = provider.fetch().await.expect_err("malformed");
    assert_eq!(err.kind(), TokenErrorKind::Invalid, "{err}");
    assert_hidden(
        &err,
        &[&emulator.last_token().expect("issued"), "emulator-mi-token"],
    );
    assert_eq!(emulator.requests(), 4);
}

/// Marks the child process of [`app_service_managed_identity_over_identity_endpoint`].
const CHILD_MARKER: &str = "TEA_PGCLOUD_IAM_AZURE_CHILD";

/// Runs [`app_service_child`] in a child process with `identity_header` as `IDENTITY_HEADER`;
/// returns its `CHILD key=value` lines.
fn run_app_service_child(
    emulator: &AzureTokenEmulator,
    identity_header: &str,
) -> Vec<(String, String)> {
    let output = ChildTest::new("app_service_child")
        .expect("this test binary")
        .env(CHILD_MARKER, "1")
        .env("IDENTITY_ENDPOINT", emulator.app_service_endpoint())
        .env("IDENTITY_HEADER", identity_header)
        .env_remove("IDENTITY_SERVER_THUMBPRINT")
        .env_remove("IMDS_ENDPOINT")
        .env_remove("MSI_ENDPOINT")
        .env_remove("MSI_SECRET")
        .run()
        .expect("the child runs");
    assert!(output.success, "child failed: {}", output.shown());
    let stdout = &output.stdout;
    let lines: Vec<(String, String)> = output
        // libtest may print `test app_service_child ... ` on the same line first.
        .reports("CHILD ")
        .into_iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(!lines.is_empty(), "the child reported nothing: {stdout}");
    lines
}

fn reported<'a>(lines: &'a [(String, String)], key: &str) -> &'a str {
    lines
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the child did not report {key}: {lines:?}"))
}

#[tokio::test]
async fn app_service_managed_identity_over_identity_endpoint() {
    let emulator = AzureTokenEmulator::start().await;
    let lines = run_app_service_child(&emulator, IDENTITY_HEADER);
    assert_eq!(reported(&lines, "credential"), "ManagedIdentityCredential");
    let tokens: Vec<&str> = lines
        .iter()
        .filter(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(tokens.len(), 2, "{lines:?}");
    assert_ne!(tokens[0], tokens[1]);
    assert_eq!(Some(tokens[1].to_string()), emulator.last_token());
    assert_eq!(
        reported(&lines, "expires").parse::<u64>().expect("seconds"),
        secs(emulator.last_expiry().expect("an expiry"))
    );
    let debug = reported(&lines, "debug");
    assert!(!debug.contains(IDENTITY_HEADER), "{debug}");
    assert_eq!(emulator.requests(), 2);
    for request in emulator.request_log() {
        assert_eq!(request.protocol, Protocol::AppService);
        assert_eq!(request.api_version.as_deref(), Some("2019-08-01"));
        assert_eq!(request.resource.as_deref(), Some(OSSRDBMS_RESOURCE));
        // The provider's own HTTP client went straight to IDENTITY_ENDPOINT.
        assert_eq!(request.host, "");
    }

    // A wrong IDENTITY_HEADER: 401, denied, the header never shown.
    let wrong = "canary-wrong-identity-header";
    let lines = run_app_service_child(&emulator, wrong);
    assert_eq!(reported(&lines, "kind"), "denied");
    let error = reported(&lines, "error");
    assert!(error.contains("401"), "{error}");
    assert!(!error.contains(wrong), "{error}");
    assert!(!reported(&lines, "debug").contains(wrong));
    assert_eq!(emulator.requests(), 3);
}

/// The child half of [`app_service_managed_identity_over_identity_endpoint`]: with
/// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` in its environment, it fetches two tokens with
/// the production constructor and reports them (or the error) on stdout.
#[tokio::test]
#[ignore = "run as a child process by app_service_managed_identity_over_identity_endpoint"]
async fn app_service_child() {
    // Run directly (`--ignored`), it has nothing to check: say so by failing, not by passing.
    assert!(
        std::env::var_os(CHILD_MARKER).is_some(),
        "the child half of app_service_managed_identity_over_identity_endpoint: run that test"
    );
    let provider =
        EntraTokenProvider::from_plan(&plan(), Arc::new(MapEnv::new())).expect("a provider");
    println!("CHILD credential={}", provider.credential_name());
    println!("CHILD debug={provider:?}");
    for _ in 0..2 {
        match provider.fetch().await {
            Ok(Token { secret, expires_at }) => {
                println!("CHILD token={}", secret.expose());
                println!("CHILD expires={}", secs(expires_at));
            }
            Err(err) => {
                println!("CHILD kind={}", err.kind().as_str());
                println!("CHILD error={err} {err:?}");
                return;
            }
        }
    }
}

/// Every path, success and failure, under a TRACE subscriber: no client secret, federated
/// token, identity header or token in any log line, error or `Debug` output.
#[test]
fn no_secret_or_token_reaches_the_logs() {
    let (result, logs) = common::under_trace(async {
        let emulator = AzureTokenEmulator::start().await;
        let mut shown = String::new();
        let mut tokens = Vec::new();
        let good = provider(&emulator, client_secret_env(CLIENT_SECRET));
        shown.push_str(&format!("{good:?}"));
        let token = good.fetch().await.expect("a token");
        shown.push_str(&format!("{token:?}"));
        tokens.push(token.secret.expose().to_string());
        for fault in 0..3 {
            match fault {
                0 => emulator.expire_next(1),
                1 => emulator.malform_next(1),
                _ => emulator.fail_next(3, 503),
            }
            let err = good.fetch().await.expect_err("a fault");
            shown.push_str(&format!("{err} {err:?}"));
            tokens.extend(emulator.last_token());
        }
        let wrong = provider(&emulator, client_secret_env("canary-wrong-secret"));
        let err = wrong.fetch().await.expect_err("denied");
        shown.push_str(&format!("{wrong:?} {err} {err:?}"));
        if std::env::var_os("IDENTITY_ENDPOINT").is_none() {
            let managed = provider(&emulator, MapEnv::new());
            let token = managed.fetch().await.expect("a managed identity token");
            shown.push_str(&format!("{managed:?} {token:?}"));
            tokens.push(token.secret.expose().to_string());
        }
        (shown, tokens)
    });
    let (shown, tokens) = result;
    assert!(tokens.len() >= 3, "{tokens:?}");
    for needle in [
        CLIENT_SECRET,
        "canary-wrong-secret",
        IDENTITY_HEADER,
        FEDERATED_TOKEN,
    ]
    .into_iter()
    .chain(tokens.iter().map(String::as_str))
    {
        common::assert_nowhere(needle, &logs, &shown);
    }
}
