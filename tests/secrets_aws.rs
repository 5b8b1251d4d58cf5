//! The AWS Secrets Manager backend: the real SDK (signing, retries, timeouts, error parsing)
//! against the emulator, every fault of the issue, and a live connect with a password from it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tea_pgcloud::config::{CredentialsConfig, SecretSource, load_str};
use tea_pgcloud::conformance::emulators::aws::AwsSecretsManager;
use tea_pgcloud::credentials::Credentials;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::provider::plan;
use tea_pgcloud::secrets::aws::AwsBackend;
use tea_pgcloud::secrets::{
    CachedSecrets, DEFAULT_TTL, SecretErrorKind, SecretsBackend, SystemClock, resolve,
};

mod common;

const CANARY: &str = "aws-CaNaRy-Pw-5519";

/// The SDK, configured for `emulator`: 3 attempts of at most `attempt_timeout`.
async fn sdk(emulator: &AwsSecretsManager, attempt_timeout: Duration) -> aws_config::SdkConfig {
    common::aws_sdk(&emulator.uri(), 3, attempt_timeout).await
}

fn creds(secret_name: Option<&str>, secret_prefix: Option<&str>) -> CredentialsConfig {
    CredentialsConfig {
        secret_prefix: secret_prefix.map(str::to_string),
        secret_name: secret_name.map(str::to_string),
        region: Some("us-east-1".into()),
        ..CredentialsConfig::new(SecretSource::Aws)
    }
}

async fn backend(emulator: &AwsSecretsManager, creds: &CredentialsConfig) -> AwsBackend {
    AwsBackend::with_sdk_config(&sdk(emulator, Duration::from_secs(2)).await, creds)
        .expect("a layout is set")
}

fn assert_no_canary(what: &dyn std::fmt::Debug, shown: &str) {
    let debug = format!("{what:?}");
    assert!(!shown.contains(CANARY), "{shown}");
    assert!(!debug.contains(CANARY), "{debug}");
}

#[tokio::test]
async fn json_secret_resolves_by_the_lookup_order() {
    let emulator = AwsSecretsManager::start().await;
    emulator
        .put_json(
            "prod/ltm/postgres",
            json!({"username": "ltm", "password": CANARY, "host": "db", "port": 5432, "dbname": "ltm"}),
        )
        .await;
    let config = creds(Some("prod/ltm/postgres"), None);
    let backend = backend(&emulator, &config).await;
    let resolved = resolve(&config, &backend, true).await.expect("resolves");
    assert_eq!(
        resolved
            .user
            .as_ref()
            .map(|(u, k)| (u.as_str(), k.as_str())),
        Some(("ltm", "username"))
    );
    assert_no_canary(&resolved, "");
    let (password, key) = resolved.password.expect("password");
    assert_eq!((password.expose(), key.as_str()), (CANARY, "password"));
}

#[tokio::test]
async fn one_secret_per_key_moves_on_when_a_key_does_not_exist() {
    let emulator = AwsSecretsManager::start().await;
    emulator.put("ltm/username", "app").await;
    emulator.put("ltm/POSTGRES_PASSWORD", CANARY).await;
    let config = creds(None, Some("ltm/"));
    let backend = backend(&emulator, &config).await;
    let resolved = resolve(&config, &backend, true).await.expect("resolves");
    assert_eq!(resolved.user.map(|(u, _)| u), Some("app".to_string()));
    let (password, key) = resolved.password.expect("password");
    assert_eq!(
        (password.expose(), key.as_str()),
        (CANARY, "POSTGRES_PASSWORD")
    );
    assert_eq!(
        emulator.requests_for("ltm/password").await,
        1,
        "the not-found key was asked once"
    );
}

async fn fetch_error(emulator: &AwsSecretsManager, id: &str) -> tea_pgcloud::secrets::SecretError {
    let config = creds(None, Some(""));
    let backend = backend(emulator, &config).await;
    let err = backend.get(id).await.expect_err("a fault");
    assert!(err.to_string().contains(id), "names the secret: {err}");
    assert_no_canary(&err, &err.to_string());
    err
}

#[tokio::test]
async fn access_denied_is_not_retried() {
    let emulator = AwsSecretsManager::start().await;
    emulator.fail_with("pw", 400, "AccessDeniedException").await;
    let err = fetch_error(&emulator, "pw").await;
    assert_eq!(err.kind(), SecretErrorKind::AccessDenied);
    assert!(err.to_string().contains("AccessDeniedException"), "{err}");
    assert_eq!(emulator.requests_for("pw").await, 1);
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk() {
    let emulator = AwsSecretsManager::start().await;
    emulator
        .fail_then_succeed("pw", 2, 400, "ThrottlingException", CANARY)
        .await;
    let config = creds(None, Some(""));
    let backend = backend(&emulator, &config).await;
    let value = backend.get("pw").await.expect("third attempt succeeds");
    assert_eq!(
        value.map(|s| s.expose().to_string()),
        Some(CANARY.to_string())
    );
    assert_eq!(emulator.requests_for("pw").await, 3);
}

#[tokio::test]
async fn throttling_that_does_not_stop_is_reported_as_throttled() {
    let emulator = AwsSecretsManager::start().await;
    emulator.fail_with("pw", 400, "ThrottlingException").await;
    let err = fetch_error(&emulator, "pw").await;
    assert_eq!(err.kind(), SecretErrorKind::Throttled);
    assert_eq!(emulator.requests_for("pw").await, 3, "bounded retries");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let emulator = AwsSecretsManager::start().await;
    emulator
        .fail_then_succeed("pw", 1, 500, "InternalServiceError", "ok")
        .await;
    let config = creds(None, Some(""));
    let backend = backend(&emulator, &config).await;
    assert!(backend.get("pw").await.expect("retried").is_some());
    let emulator = AwsSecretsManager::start().await;
    emulator.fail_with("pw", 503, "ServiceUnavailable").await;
    let err = fetch_error(&emulator, "pw").await;
    assert_eq!(err.kind(), SecretErrorKind::Unavailable);
}

#[tokio::test]
async fn a_slow_service_times_out() {
    let emulator = AwsSecretsManager::start().await;
    emulator.slow("pw", CANARY, Duration::from_secs(5)).await;
    let config = creds(None, Some(""));
    let backend =
        AwsBackend::with_sdk_config(&sdk(&emulator, Duration::from_millis(300)).await, &config)
            .expect("layout");
    let err = backend.get("pw").await.expect_err("timeout");
    assert_eq!(err.kind(), SecretErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn malformed_answers_and_secrets_are_reported_without_their_content() {
    let emulator = AwsSecretsManager::start().await;
    emulator.malformed("broken").await;
    emulator.put("not-json", CANARY).await;
    emulator
        .put_json(
            "wrong-type",
            json!({"username": "app", "password": [CANARY]}),
        )
        .await;
    emulator
        .put_json("no-password", json!({"username": "app"}))
        .await;
    emulator.put_binary("binary").await;

    let err = fetch_error(&emulator, "broken").await;
    assert!(
        matches!(
            err.kind(),
            SecretErrorKind::Malformed | SecretErrorKind::Unavailable
        ),
        "{err:?}"
    );
    let err = fetch_error(&emulator, "binary").await;
    assert_eq!(err.kind(), SecretErrorKind::Malformed);

    for (secret, kind) in [
        ("not-json", SecretErrorKind::Malformed),
        ("wrong-type", SecretErrorKind::Malformed),
        ("no-password", SecretErrorKind::Missing),
    ] {
        let config = creds(Some(secret), None);
        let backend = backend(&emulator, &config).await;
        let err = resolve(&config, &backend, true).await.expect_err(secret);
        assert_eq!(err.kind(), kind, "{secret}: {err}");
        assert!(err.to_string().contains(secret), "{err}");
        assert_no_canary(&err, &err.to_string());
    }
    let config = creds(Some("absent"), None);
    let backend = backend(&emulator, &config).await;
    let err = resolve(&config, &backend, true).await.expect_err("absent");
    assert_eq!(err.kind(), SecretErrorKind::Missing);
}

#[tokio::test]
async fn the_story_example_resolves_against_the_emulator() {
    let emulator = AwsSecretsManager::start().await;
    emulator
        .put_json(
            "prod/ltm/postgres",
            json!({"username": "ltm_app", "password": CANARY}),
        )
        .await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/examples/aws-secrets-manager.yaml"
    ))
    .expect("example");
    let env = MapEnv::new();
    let config = load_str(&text, "aws-secrets-manager.yaml", &env).expect("valid");
    let plan = plan(&config, &env).expect("plannable");
    let creds = plan.credentials.clone().expect("credentials");
    let backend =
        AwsBackend::with_sdk_config(&sdk(&emulator, Duration::from_secs(2)).await, &creds)
            .expect("layout");
    let cache = CachedSecrets::new(Arc::new(backend), DEFAULT_TTL, Arc::new(SystemClock));
    let resolved = Credentials::builder(plan.clone(), Arc::new(env))
        .secrets(cache)
        .build()
        .await
        .expect("a credentials stage")
        .login()
        .await
        .expect("resolves");
    assert_eq!(resolved.user.as_deref(), Some("ltm_app"));
    assert_eq!(
        resolved.password_from.to_string(),
        "secret:aws:prod/ltm/postgres#password"
    );
    assert_eq!(resolved.password_from, plan.password_source);
    assert_eq!(resolved.password.as_ref().map(|p| p.expose()), Some(CANARY));
    assert_no_canary(&resolved, "");
}

#[test]
fn a_launched_server_accepts_the_password_from_the_emulator() {
    let server = common::plain_server("aws-live");
    common::block_on(async {
        let emulator = AwsSecretsManager::start().await;
        emulator
            .put_json(
                "prod/ltm/postgres",
                json!({"username": server.user(), "password": server.password()}),
            )
            .await;
        let plan = common::plan_of(&format!(
            "provider: self-hosted\nhost: 127.0.0.1\nport: {}\ndatabase: postgres\nsslmode: disable\ncredentials:\n  source: aws\n  secret_name: prod/ltm/postgres\n  region: us-east-1\n",
            server.port()
        ));
        let creds = plan.credentials.clone().expect("credentials");
        let backend =
            AwsBackend::with_sdk_config(&sdk(&emulator, Duration::from_secs(2)).await, &creds)
                .expect("layout");
        common::assert_connects_as_server_user(&server, &plan, Arc::new(backend)).await;
    });
}
