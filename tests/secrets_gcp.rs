//! The GCP Secret Manager backend: the real REST client (`google-cloud-secretmanager-v1`, its
//! retry loop, timeouts and error parsing) against the emulator, every fault of the issue, and
//! the story's corrected example resolved end to end.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tea_pgcloud::config::{CredentialsConfig, SecretSource, load_str};
use tea_pgcloud::conformance::emulators::gcp::GcpSecretManager;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::provider::plan;
use tea_pgcloud::secrets::gcp::{GcpAuth, GcpBackend, GcpPolicy, SecretLayout};
use tea_pgcloud::secrets::{SecretError, SecretErrorKind, SecretsBackend, resolve};

mod common;

const PROJECT: &str = "test-project";
const CANARY: &str = "gcp-CaNaRy-Pw-8086";
const PREFIX: &str = "ltm-postgres-";
const JSON_SECRET: &str = "ltm-db";

/// Fast timeouts and retries: 3 attempts on 429, 5 ms backoff, 400 ms per request.
fn fast() -> GcpPolicy {
    GcpPolicy {
        request_timeout: Duration::from_millis(400),
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        deadline: Duration::from_secs(10),
    }
}

async fn backend_with(
    sm: &GcpSecretManager,
    layout: SecretLayout,
    policy: GcpPolicy,
) -> GcpBackend {
    GcpBackend::builder(PROJECT, layout)
        .endpoint(sm.uri())
        .auth(GcpAuth::Anonymous)
        .policy(policy)
        .build()
        .await
        .expect("the client builds")
}

async fn prefixed(sm: &GcpSecretManager) -> GcpBackend {
    backend_with(sm, SecretLayout::Prefix(PREFIX.into()), fast()).await
}

async fn json_layout(sm: &GcpSecretManager) -> GcpBackend {
    backend_with(sm, SecretLayout::Json(JSON_SECRET.into()), fast()).await
}

fn creds(secret_name: Option<&str>, secret_prefix: Option<&str>) -> CredentialsConfig {
    CredentialsConfig {
        project_id: Some(PROJECT.into()),
        secret_prefix: secret_prefix.map(str::to_string),
        secret_name: secret_name.map(str::to_string),
        ..CredentialsConfig::new(SecretSource::Gcp)
    }
}

fn resource(id: &str) -> String {
    format!("projects/{PROJECT}/secrets/{id}/versions/latest")
}

/// The error names the backend, the secret and the key, and holds no canary anywhere.
fn check_error(err: &SecretError, kind: SecretErrorKind, secret: &str, key: &str) {
    let text = err.to_string();
    assert_eq!(err.kind(), kind, "{text}");
    assert_eq!(err.backend(), "gcp");
    assert!(text.starts_with("credentials (gcp): "), "{text}");
    assert!(text.contains(&resource(secret)), "no secret in: {text}");
    assert!(text.contains(key), "no key in: {text}");
    assert!(!text.contains(CANARY), "canary in: {text}");
    assert!(!format!("{err:?}").contains(CANARY), "canary in: {err:?}");
}

async fn value(backend: &GcpBackend, key: &str) -> Option<String> {
    backend
        .get(key)
        .await
        .expect("no error")
        .map(|s| s.expose().to_string())
}

#[tokio::test]
async fn prefix_layout_reads_one_secret_per_key() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, "ltm-postgres-username", "app").await;
    sm.put(PROJECT, "ltm-postgres-password", CANARY).await;
    let backend = prefixed(&sm).await;
    assert_eq!(value(&backend, "password").await.as_deref(), Some(CANARY));
    assert_eq!(value(&backend, "username").await.as_deref(), Some("app"));
    assert_eq!(sm.requests_for("ltm-postgres-password").await, 1);
    assert_eq!(
        backend.resource("password"),
        resource("ltm-postgres-password")
    );
    let debug = format!("{backend:?}");
    assert!(
        debug.contains("GcpBackend") && !debug.contains(CANARY),
        "{debug}"
    );
}

#[tokio::test]
async fn prefix_layout_lookup_order_falls_back_to_postgres_user() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, "ltm-postgres-POSTGRES_USER", "fallback-user")
        .await;
    sm.put(PROJECT, "ltm-postgres-POSTGRES_PASSWORD", CANARY)
        .await;
    let backend = prefixed(&sm).await;
    let resolved = resolve(&creds(None, Some(PREFIX)), &backend, true)
        .await
        .expect("resolves");
    assert!(!format!("{resolved:?}").contains(CANARY));
    assert_eq!(
        resolved.user,
        Some(("fallback-user".to_string(), "POSTGRES_USER".to_string()))
    );
    let (password, key) = resolved.password.expect("a password");
    assert_eq!(
        (password.expose(), key.as_str()),
        (CANARY, "POSTGRES_PASSWORD")
    );
    // The configured keys were asked first, found missing, and the lookup moved on.
    assert_eq!(sm.requests_for("ltm-postgres-username").await, 1);
    assert_eq!(sm.requests_for("ltm-postgres-password").await, 1);
}

#[tokio::test]
async fn json_layout_reads_fields_of_one_secret() {
    let sm = GcpSecretManager::start().await;
    sm.put_json(
        PROJECT,
        JSON_SECRET,
        json!({"username": "app", "password": CANARY, "host": "10.0.0.5", "port": 5432}),
    )
    .await;
    let backend = json_layout(&sm).await;
    let resolved = resolve(&creds(Some(JSON_SECRET), None), &backend, true)
        .await
        .expect("resolves");
    assert_eq!(
        resolved.user,
        Some(("app".to_string(), "username".to_string()))
    );
    let (password, key) = resolved.password.expect("a password");
    assert_eq!((password.expose(), key.as_str()), (CANARY, "password"));
    assert_eq!(value(&backend, "port").await.as_deref(), Some("5432"));
    assert_eq!(value(&backend, "dbname").await, None);
}

#[tokio::test]
async fn json_layout_lookup_order_falls_back_to_postgres_user() {
    let sm = GcpSecretManager::start().await;
    sm.put_json(
        PROJECT,
        JSON_SECRET,
        json!({"POSTGRES_USER": "pg-user", "POSTGRES_PASSWORD": CANARY}),
    )
    .await;
    let backend = json_layout(&sm).await;
    let resolved = resolve(&creds(Some(JSON_SECRET), None), &backend, true)
        .await
        .expect("resolves");
    assert_eq!(
        resolved.user,
        Some(("pg-user".to_string(), "POSTGRES_USER".to_string()))
    );
    let (password, key) = resolved.password.expect("a password");
    assert_eq!(
        (password.expose(), key.as_str()),
        (CANARY, "POSTGRES_PASSWORD")
    );
}

#[tokio::test]
async fn a_pinned_version_reads_that_version() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, "ltm-postgres-password", "old-one").await;
    sm.put(PROJECT, "ltm-postgres-password", CANARY).await;
    let latest = prefixed(&sm).await;
    assert_eq!(value(&latest, "password").await.as_deref(), Some(CANARY));
    let mut config = creds(None, Some(PREFIX));
    config.version = Some("1".into());
    config.endpoint = Some(sm.uri());
    let pinned = GcpBackend::builder_from_config(&config)
        .expect("valid")
        .policy(fast())
        .build()
        .await
        .expect("builds");
    assert_eq!(value(&pinned, "password").await.as_deref(), Some("old-one"));
    assert_eq!(
        pinned.resource("password"),
        format!("projects/{PROJECT}/secrets/ltm-postgres-password/versions/1")
    );
}

#[tokio::test]
async fn not_found_in_the_prefix_layout_moves_on() {
    let sm = GcpSecretManager::start().await;
    let backend = prefixed(&sm).await;
    assert_eq!(value(&backend, "username").await, None);
    // An explicit NOT_FOUND answer for a secret that exists elsewhere is the same.
    sm.put(PROJECT, "ltm-postgres-password", CANARY).await;
    sm.fail_with("ltm-postgres-password", 404, "NOT_FOUND")
        .await;
    assert_eq!(value(&backend, "password").await, None);
    assert_eq!(sm.requests_for("ltm-postgres-password").await, 1);
    // resolve then reports every key it tried.
    let err = resolve(&creds(None, Some(PREFIX)), &backend, false)
        .await
        .expect_err("no password anywhere");
    assert_eq!(err.kind(), SecretErrorKind::Missing);
    assert!(err.to_string().contains("POSTGRES_PASSWORD"), "{err}");
}

#[tokio::test]
async fn a_missing_json_secret_is_an_error_naming_it() {
    let sm = GcpSecretManager::start().await;
    let backend = json_layout(&sm).await;
    let err = backend.get("password").await.expect_err("missing secret");
    check_error(&err, SecretErrorKind::Missing, JSON_SECRET, "password");
    assert!(err.to_string().contains("NOT_FOUND"), "{err}");
}

#[tokio::test]
async fn access_denied_is_not_retried() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, "ltm-postgres-password", CANARY).await;
    sm.fail_with("ltm-postgres-password", 403, "PERMISSION_DENIED")
        .await;
    let backend = prefixed(&sm).await;
    let err = backend.get("password").await.expect_err("denied");
    check_error(
        &err,
        SecretErrorKind::AccessDenied,
        "ltm-postgres-password",
        "password",
    );
    assert!(err.to_string().contains("PERMISSION_DENIED"), "{err}");
    assert_eq!(sm.requests_for("ltm-postgres-password").await, 1);

    sm.fail_with("ltm-postgres-password", 401, "UNAUTHENTICATED")
        .await;
    let err = backend.get("password").await.expect_err("unauthenticated");
    check_error(
        &err,
        SecretErrorKind::AccessDenied,
        "ltm-postgres-password",
        "password",
    );
}

#[tokio::test]
async fn throttled_then_success_is_retried() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, "ltm-postgres-password", CANARY).await;
    sm.throttle_then_succeed("ltm-postgres-password", 2).await;
    let backend = prefixed(&sm).await;
    assert_eq!(value(&backend, "password").await.as_deref(), Some(CANARY));
    assert_eq!(sm.requests_for("ltm-postgres-password").await, 3);
}

#[tokio::test]
async fn throttled_forever_gives_up_after_the_attempt_limit() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, "ltm-postgres-password", CANARY).await;
    sm.fail_with("ltm-postgres-password", 429, "RESOURCE_EXHAUSTED")
        .await;
    let backend = prefixed(&sm).await;
    let err = backend.get("password").await.expect_err("throttled");
    check_error(
        &err,
        SecretErrorKind::Throttled,
        "ltm-postgres-password",
        "password",
    );
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
    assert_eq!(sm.requests_for("ltm-postgres-password").await, 3);
}

#[tokio::test]
async fn unavailable_then_success_is_retried_by_the_client() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, "ltm-postgres-password", CANARY).await;
    sm.fail_then_succeed("ltm-postgres-password", 1, 503, "UNAVAILABLE")
        .await;
    let backend = prefixed(&sm).await;
    assert_eq!(value(&backend, "password").await.as_deref(), Some(CANARY));
    assert_eq!(sm.requests_for("ltm-postgres-password").await, 2);
}

#[tokio::test]
async fn unavailable_forever_ends_at_the_deadline() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, "ltm-postgres-password", CANARY).await;
    sm.fail_with("ltm-postgres-password", 503, "UNAVAILABLE")
        .await;
    let policy = GcpPolicy {
        deadline: Duration::from_millis(1500),
        ..fast()
    };
    let backend = backend_with(&sm, SecretLayout::Prefix(PREFIX.into()), policy).await;
    let err = backend.get("password").await.expect_err("unavailable");
    check_error(
        &err,
        SecretErrorKind::Unavailable,
        "ltm-postgres-password",
        "password",
    );
    // The client retried (1 s backoff with full jitter; its adaptive retry throttler may also
    // skip attempts locally) until our deadline cut it short.
    let n = sm.requests_for("ltm-postgres-password").await;
    assert!(n >= 1, "{n} requests; {err}");
    assert!(err.to_string().contains("no answer within"), "{err}");
}

#[tokio::test]
async fn an_internal_error_is_unavailable() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, "ltm-postgres-password", CANARY).await;
    sm.fail_with("ltm-postgres-password", 500, "INTERNAL").await;
    let backend = prefixed(&sm).await;
    let err = backend.get("password").await.expect_err("internal");
    check_error(
        &err,
        SecretErrorKind::Unavailable,
        "ltm-postgres-password",
        "password",
    );
    assert!(err.to_string().contains("INTERNAL"), "{err}");
}

#[tokio::test]
async fn a_slow_answer_past_the_timeout_is_unavailable() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, "ltm-postgres-password", CANARY).await;
    sm.slow("ltm-postgres-password", Duration::from_secs(5))
        .await;
    let backend = prefixed(&sm).await;
    let err = backend.get("password").await.expect_err("too slow");
    check_error(
        &err,
        SecretErrorKind::Unavailable,
        "ltm-postgres-password",
        "password",
    );
    assert!(err.to_string().contains("timeout"), "{err}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_within_the_deadline() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let backend = GcpBackend::builder(PROJECT, SecretLayout::Prefix(PREFIX.into()))
        .endpoint(format!("http://127.0.0.1:{port}"))
        .auth(GcpAuth::Anonymous)
        .policy(GcpPolicy {
            deadline: Duration::from_secs(1),
            ..fast()
        })
        .build()
        .await
        .expect("builds without connecting");
    let err = backend.get("password").await.expect_err("nothing listens");
    check_error(
        &err,
        SecretErrorKind::Unavailable,
        "ltm-postgres-password",
        "password",
    );
}

#[tokio::test]
async fn a_malformed_body_is_malformed_and_not_echoed() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, "ltm-postgres-password", CANARY).await;
    sm.malformed("ltm-postgres-password").await;
    let backend = prefixed(&sm).await;
    let err = backend.get("password").await.expect_err("malformed");
    check_error(
        &err,
        SecretErrorKind::Malformed,
        "ltm-postgres-password",
        "password",
    );
    // Not retried: a broken body is not transient.
    assert_eq!(sm.requests_for("ltm-postgres-password").await, 1);
}

#[tokio::test]
async fn a_bad_crc32c_is_malformed() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, "ltm-postgres-password", CANARY).await;
    sm.bad_crc("ltm-postgres-password").await;
    let backend = prefixed(&sm).await;
    let err = backend.get("password").await.expect_err("bad checksum");
    check_error(
        &err,
        SecretErrorKind::Malformed,
        "ltm-postgres-password",
        "password",
    );
    assert!(err.to_string().contains("CRC32C"), "{err}");
    sm.clear_fault("ltm-postgres-password").await;
    assert_eq!(value(&backend, "password").await.as_deref(), Some(CANARY));
}

#[tokio::test]
async fn a_payload_that_is_not_utf8_is_malformed() {
    let sm = GcpSecretManager::start().await;
    sm.put_bytes(PROJECT, "ltm-postgres-password", &[0x63, 0xff, 0xfe, 0x00])
        .await;
    let backend = prefixed(&sm).await;
    let err = backend.get("password").await.expect_err("binary");
    check_error(
        &err,
        SecretErrorKind::Malformed,
        "ltm-postgres-password",
        "password",
    );
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[tokio::test]
async fn a_missing_json_key_moves_on_then_fails_naming_the_keys() {
    let sm = GcpSecretManager::start().await;
    sm.put_json(PROJECT, JSON_SECRET, json!({"username": "app"}))
        .await;
    let backend = json_layout(&sm).await;
    assert_eq!(value(&backend, "password").await, None);
    let err = resolve(&creds(Some(JSON_SECRET), None), &backend, true)
        .await
        .expect_err("no password");
    assert_eq!(err.kind(), SecretErrorKind::Missing);
    assert!(
        err.to_string().contains(&format!(
            "projects/{PROJECT}/secrets/{JSON_SECRET}/versions/latest#password, projects/{PROJECT}/secrets/{JSON_SECRET}/versions/latest#POSTGRES_PASSWORD"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_json_value_of_the_wrong_type_is_malformed() {
    let sm = GcpSecretManager::start().await;
    sm.put_json(
        PROJECT,
        JSON_SECRET,
        json!({"username": "app", "password": [CANARY]}),
    )
    .await;
    let backend = json_layout(&sm).await;
    let err = backend.get("password").await.expect_err("a list");
    check_error(&err, SecretErrorKind::Malformed, JSON_SECRET, "password");
    assert!(err.to_string().contains("not a string"), "{err}");
}

#[tokio::test]
async fn a_json_secret_that_is_not_json_is_malformed() {
    let sm = GcpSecretManager::start().await;
    sm.put(PROJECT, JSON_SECRET, CANARY).await;
    let backend = json_layout(&sm).await;
    let err = backend.get("password").await.expect_err("not JSON");
    check_error(&err, SecretErrorKind::Malformed, JSON_SECRET, "password");
}

#[tokio::test]
async fn an_invalid_secret_id_is_refused_without_a_request() {
    let sm = GcpSecretManager::start().await;
    let backend = prefixed(&sm).await;
    let err = backend.get("user/name").await.expect_err("invalid id");
    assert_eq!(err.kind(), SecretErrorKind::Malformed);
    assert!(
        err.to_string()
            .contains("not a valid Secret Manager secret id"),
        "{err}"
    );
    assert!(sm.request_counts().await.is_empty());
}

#[tokio::test]
async fn config_errors() {
    let mut config = creds(None, Some(PREFIX));
    config.project_id = None;
    let err = GcpBackend::from_config(&config)
        .await
        .expect_err("no project");
    assert_eq!(err.kind(), SecretErrorKind::Missing);
    assert!(err.to_string().contains("project_id"), "{err}");

    let mut config = creds(Some("bad/name"), None);
    config.endpoint = Some("http://127.0.0.1:1".into());
    let err = GcpBackend::from_config(&config)
        .await
        .expect_err("bad name");
    assert!(err.to_string().contains("secret_name"), "{err}");

    let mut config = creds(None, Some(PREFIX));
    config.endpoint = Some("ftp://example.com".into());
    let err = GcpBackend::from_config(&config)
        .await
        .expect_err("bad endpoint");
    assert!(err.to_string().contains("endpoint"), "{err}");
}

/// Every failure path once, with the canary as the secret value: no error text, no `Debug`
/// of an error, a result or the backend holds it.
#[tokio::test]
async fn no_error_message_or_debug_output_holds_the_canary() {
    let sm = GcpSecretManager::start().await;
    let faults: [(&str, &str); 9] = [
        ("denied", "403"),
        ("throttled", "429"),
        ("unavailable", "503"),
        ("internal", "500"),
        ("malformed", ""),
        ("badcrc", ""),
        ("slow", ""),
        ("missing", ""),
        ("ok", ""),
    ];
    for (name, _) in faults {
        sm.put(PROJECT, &format!("c-{name}"), CANARY).await;
    }
    sm.fail_with("c-denied", 403, "PERMISSION_DENIED").await;
    sm.fail_with("c-throttled", 429, "RESOURCE_EXHAUSTED").await;
    sm.fail_with("c-unavailable", 503, "UNAVAILABLE").await;
    sm.fail_with("c-internal", 500, "INTERNAL").await;
    sm.malformed("c-malformed").await;
    sm.bad_crc("c-badcrc").await;
    sm.slow("c-slow", Duration::from_secs(3)).await;
    sm.delete(PROJECT, "c-missing").await;
    let policy = GcpPolicy {
        deadline: Duration::from_millis(1200),
        ..fast()
    };
    let backend = backend_with(&sm, SecretLayout::Prefix("c-".into()), policy).await;
    let mut seen = vec![format!("{backend:?}")];
    for (name, _) in faults {
        let result = backend.get(name).await;
        seen.push(format!("{result:?}"));
        if let Err(e) = &result {
            seen.push(e.to_string());
        }
    }
    // JSON layout: not JSON, wrong type, missing key.
    sm.put(PROJECT, "j-text", CANARY).await;
    sm.put_json(
        PROJECT,
        "j-list",
        json!({"password": [CANARY], "n": {"x": CANARY}}),
    )
    .await;
    for secret in ["j-text", "j-list"] {
        let backend = backend_with(&sm, SecretLayout::Json(secret.into()), fast()).await;
        for key in ["password", "n", "absent"] {
            let result = backend.get(key).await;
            seen.push(format!("{result:?}"));
            if let Err(e) = &result {
                seen.push(e.to_string());
            }
        }
    }
    for line in &seen {
        assert!(!line.contains(CANARY), "canary in: {line}");
    }
    // The successful read did return the value (so the canary was really in play).
    assert_eq!(value(&backend, "ok").await.as_deref(), Some(CANARY));
}

/// The story's corrected GCP example, loaded, planned and resolved against the emulator
/// through the crate's own entry points.
#[tokio::test]
async fn the_story_example_resolves_against_the_emulator() {
    let sm = GcpSecretManager::start().await;
    sm.put("my-project", "ltm-postgres-username", "ltm-user")
        .await;
    sm.put("my-project", "ltm-postgres-password", CANARY).await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/examples/gcp-secret-manager.yaml"
    );
    let text = std::fs::read_to_string(path).expect("the fixture");
    // The credentials block is the last mapping of the file: add the emulator's endpoint.
    let text = format!("{}\n        endpoint: {}\n", text.trim_end(), sm.uri());
    let env = MapEnv::new();
    let config = load_str(&text, "gcp-secret-manager.yaml", &env).expect("loads");
    let plan = plan(&config, &env).expect("plans");
    let credentials = plan.credentials.as_ref().expect("a credentials block");
    assert_eq!(credentials.project_id.as_deref(), Some("my-project"));
    assert_eq!(credentials.endpoint.as_deref(), Some(sm.uri().as_str()));

    let credentials = tea_pgcloud::credentials::Credentials::for_plan(plan.clone(), Arc::new(env))
        .await
        .expect("a credentials stage");
    assert!(
        credentials.secrets().is_some(),
        "values come from a backend"
    );
    let resolved = credentials.login().await.expect("resolves");
    assert_eq!(resolved.user.as_deref(), Some("ltm-user"));
    assert_eq!(resolved.password.as_ref().map(|p| p.expose()), Some(CANARY));
    // The same labels as the plan's sources.
    assert_eq!(
        resolved.user_from.to_string(),
        "secret:gcp:projects/my-project/secrets/ltm-postgres-username/versions/latest"
    );
    assert_eq!(resolved.password_from, plan.password_source);
    assert!(!format!("{resolved:?}").contains(CANARY));
    // A second resolve is served by the cache.
    credentials.login().await.expect("resolves again");
    assert_eq!(sm.requests_for("ltm-postgres-password").await, 1);
}

#[test]
fn a_launched_server_accepts_the_password_from_the_emulator() {
    let server = common::plain_server("gcp-live");
    common::block_on(async {
        let sm = GcpSecretManager::start().await;
        sm.put(PROJECT, "ltm-postgres-username", server.user())
            .await;
        sm.put(PROJECT, "ltm-postgres-password", server.password())
            .await;
        let plan = common::plan_of(&format!(
            "host: 127.0.0.1\nport: {}\ndatabase: postgres\nsslmode: disable\ncredentials:\n  source: gcp\n  project_id: {PROJECT}\n  secret_prefix: ltm-postgres-\n",
            server.port()
        ));
        let backend = backend_with(&sm, SecretLayout::Prefix(PREFIX.into()), fast()).await;
        common::assert_connects_as_server_user(&server, &plan, Arc::new(backend)).await;
    });
}
