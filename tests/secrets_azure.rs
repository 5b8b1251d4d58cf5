//! The Azure Key Vault backend with the real SDK (`azure_security_keyvault_secrets`,
//! `azure_identity`) against the Key Vault emulator: the SDK keeps its real
//! `https://NAME.vault.azure.net` and `https://login.microsoftonline.com` URLs and runs its
//! 401-challenge flow and client-credentials token request; an emulator transport carries the
//! bytes to wiremock.

use std::sync::Arc;
use std::time::Duration;

use tea_pgcloud::config::{CredentialsConfig, SecretSource};
use tea_pgcloud::conformance::emulators::azure::{
    CLIENT_SECRET, DEFAULT_VAULT_URL, KeyVaultEmulator, Observed, TENANT_ID,
};
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::secrets::azure::{AzureBackend, AzureTimeouts};
use tea_pgcloud::secrets::{SecretError, SecretErrorKind, SecretsBackend, resolve};

/// A distinctive value that must never appear in an error or `Debug` output.
mod common;

const CANARY: &str = "canary-kv-7f3a9c-do-not-print";

fn creds(vault_url: &str, secret_prefix: Option<&str>) -> CredentialsConfig {
    CredentialsConfig {
        secret_prefix: secret_prefix.map(str::to_string),
        vault_url: Some(vault_url.into()),
        ..CredentialsConfig::new(SecretSource::Azure)
    }
}

/// Short timeouts: 2 retries, 10 ms first back-off, 400 ms per attempt, 10 s per fetch.
fn fast() -> AzureTimeouts {
    AzureTimeouts {
        request: Duration::from_millis(400),
        connect: Duration::from_millis(400),
        max_retries: 2,
        retry_initial_delay: Duration::from_millis(10),
        retry_max_delay: Duration::from_secs(1),
        total: Duration::from_secs(10),
    }
}

fn backend(emulator: &KeyVaultEmulator, secret_prefix: Option<&str>) -> AzureBackend {
    AzureBackend::for_emulator(
        &creds(emulator.vault_url(), secret_prefix),
        &emulator.uri(),
        fast(),
    )
    .expect("backend")
}

/// Asserts `err` is of `kind`, names the vault, secret and key, and holds no canary.
fn check_error(err: &SecretError, kind: SecretErrorKind, secret: &str, key: &str) {
    let text = err.to_string();
    assert_eq!(err.kind(), kind, "{text}");
    assert_eq!(err.backend(), "azure");
    assert!(text.starts_with("credentials (azure): "), "{text}");
    assert!(text.contains(DEFAULT_VAULT_URL), "names the vault: {text}");
    assert!(
        text.contains(&format!("secret {secret} ")),
        "names the secret: {text}"
    );
    assert!(
        text.contains(&format!("key {key}")),
        "names the key: {text}"
    );
    assert_no_canary(err);
}

fn assert_no_canary(err: &SecretError) {
    let text = err.to_string();
    let debug = format!("{err:?}");
    assert!(!text.contains("canary"), "a value leaked: {text}");
    assert!(!debug.contains("canary"), "a value leaked: {debug}");
}

#[tokio::test]
async fn prefix_and_underscores_map_to_names_and_the_lookup_order_moves_on() {
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("ltm-prod-username", "app_user");
    // No `ltm-prod-password`: the lookup order goes on to POSTGRES_PASSWORD.
    emulator.put("ltm-prod-POSTGRES-PASSWORD", CANARY);
    emulator.put("ltm-prod-db-host", "db.internal");
    let backend = backend(&emulator, Some("ltm_prod-"));

    let host = backend.get("db_host").await.expect("fetched");
    assert_eq!(
        host.map(|s| s.expose().to_string()),
        Some("db.internal".into())
    );

    let config = creds(emulator.vault_url(), Some("ltm_prod-"));
    let resolved = resolve(&config, &backend, true).await.expect("resolves");
    assert_eq!(
        resolved.user,
        Some(("app_user".to_string(), "username".to_string()))
    );
    let (password, key) = resolved.password.as_ref().expect("a password");
    assert_eq!(
        (password.expose(), key.as_str()),
        (CANARY, "POSTGRES_PASSWORD")
    );
    assert!(!format!("{resolved:?}").contains("canary"));
    assert!(!format!("{backend:?}").contains("canary"));

    let asked: Vec<String> = emulator
        .requests()
        .into_iter()
        .filter_map(|o| match o {
            Observed::Authenticated { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(
        asked,
        [
            "ltm-prod-db-host",
            "ltm-prod-username",
            "ltm-prod-password",
            "ltm-prod-POSTGRES-PASSWORD"
        ]
    );
}

#[tokio::test]
async fn the_sdk_runs_the_401_challenge_flow_and_caches_the_token() {
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("password", "pw-1");
    let backend = backend(&emulator, None);

    let value = backend.get("password").await.expect("fetched");
    assert_eq!(value.map(|s| s.expose().to_string()), Some("pw-1".into()));
    let host = DEFAULT_VAULT_URL.trim_start_matches("https://");
    let first = emulator.requests();
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(
        first[0],
        Observed::Unauthenticated {
            name: "password".into()
        }
    );
    assert_eq!(
        first[1],
        Observed::Token {
            tenant: TENANT_ID.into(),
            scope: "https://vault.azure.net/.default".into(),
            host: "login.microsoftonline.com".into(),
        }
    );
    match &first[2] {
        Observed::Authenticated {
            name,
            api_version,
            host: seen,
        } => {
            assert_eq!(name, "password");
            assert!(!api_version.is_empty());
            assert_eq!(seen, host);
        }
        other => panic!("expected an authenticated request, got {other:?}"),
    }

    // The scope and the token are cached: the next fetch is one authenticated request.
    backend.get("password").await.expect("fetched again");
    let all = emulator.requests();
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(matches!(&all[3], Observed::Authenticated { .. }));
    assert_eq!(emulator.token_requests(), 1);
}

#[tokio::test]
async fn not_found_is_none_and_not_retried() {
    let emulator = KeyVaultEmulator::start().await;
    let backend = backend(&emulator, None);
    assert_eq!(backend.get("password").await.expect("no error"), None);
    assert_eq!(emulator.secret_requests("password"), 1);
}

#[tokio::test]
async fn forbidden_is_access_denied_and_not_retried() {
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("app-password", CANARY);
    emulator.fail_with("app-password", 403, "Forbidden");
    let backend = backend(&emulator, Some("app_"));
    let err = backend.get("password").await.expect_err("forbidden");
    check_error(
        &err,
        SecretErrorKind::AccessDenied,
        "app-password",
        "password",
    );
    assert!(err.to_string().contains("403 (Forbidden)"), "{err}");
    assert_eq!(emulator.secret_requests("app-password"), 1);
}

#[tokio::test]
async fn throttling_is_retried_then_succeeds() {
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("password", "pw-2");
    emulator.throttle_then_succeed("password", 1);
    let backend = backend(&emulator, None);
    let value = backend.get("password").await.expect("retried");
    assert_eq!(value.map(|s| s.expose().to_string()), Some("pw-2".into()));
    assert_eq!(emulator.secret_requests("password"), 2);
}

#[tokio::test]
async fn throttling_for_ever_is_throttled_within_bounded_time() {
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("password", CANARY);
    emulator.fail_with("password", 429, "Throttled");
    let backend = backend(&emulator, None);
    let err = backend.get("password").await.expect_err("throttled");
    check_error(&err, SecretErrorKind::Throttled, "password", "password");
    // Retry-After: 1 s, twice; then the retries are spent.
    assert_eq!(emulator.secret_requests("password"), 3, "1 + max_retries");
}

#[tokio::test]
async fn service_unavailable_is_retried_then_succeeds() {
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("password", "pw-3");
    emulator.fail_then_succeed("password", 503, "ServiceUnavailable", 2);
    let backend = backend(&emulator, None);
    let value = backend.get("password").await.expect("retried");
    assert_eq!(value.map(|s| s.expose().to_string()), Some("pw-3".into()));
    assert_eq!(emulator.secret_requests("password"), 3);
}

#[tokio::test]
async fn service_unavailable_for_ever_is_unavailable() {
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("password", CANARY);
    emulator.fail_with("password", 503, "ServiceUnavailable");
    let backend = backend(&emulator, None);
    let err = backend.get("password").await.expect_err("unavailable");
    check_error(&err, SecretErrorKind::Unavailable, "password", "password");
    assert_eq!(emulator.secret_requests("password"), 3);
}

#[tokio::test]
async fn a_slow_vault_times_out_as_unavailable_within_bounded_time() {
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("password", CANARY);
    emulator.slow("password", Duration::from_secs(5));
    let backend = backend(&emulator, None);
    let err = backend.get("password").await.expect_err("timed out");
    check_error(&err, SecretErrorKind::Unavailable, "password", "password");
    assert!(err.to_string().contains("timed out"), "{err}");
    // 3 attempts of 400 ms each, every one cut short before the emulator's 5 s answer.
    assert_eq!(emulator.secret_requests("password"), 3);
}

#[tokio::test]
async fn the_total_deadline_bounds_one_fetch() {
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("password", CANARY);
    emulator.slow("password", Duration::from_secs(5));
    let timeouts = AzureTimeouts {
        request: Duration::from_secs(30),
        total: Duration::from_millis(700),
        ..fast()
    };
    let backend = AzureBackend::for_emulator(
        &creds(emulator.vault_url(), None),
        &emulator.uri(),
        timeouts,
    )
    .expect("backend");
    let err = backend.get("password").await.expect_err("deadline");
    check_error(&err, SecretErrorKind::Unavailable, "password", "password");
}

#[tokio::test]
async fn a_malformed_body_is_malformed_and_never_quoted() {
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("password", CANARY);
    emulator.malformed("password");
    let backend = backend(&emulator, None);
    let err = backend.get("password").await.expect_err("malformed");
    check_error(&err, SecretErrorKind::Malformed, "password", "password");
}

#[tokio::test]
async fn a_refused_client_is_access_denied() {
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("password", CANARY);
    emulator.fail_token(401, "invalid_client");
    let backend = backend(&emulator, None);
    let err = backend.get("password").await.expect_err("no token");
    check_error(&err, SecretErrorKind::AccessDenied, "password", "password");
    assert!(err.to_string().contains("ClientSecretCredential"), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
    assert_eq!(emulator.secret_requests("password"), 0);
}

#[tokio::test]
async fn a_failing_token_endpoint_is_unavailable() {
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("password", CANARY);
    emulator.fail_token(503, "temporarily_unavailable");
    let backend = backend(&emulator, None);
    let err = backend.get("password").await.expect_err("no token");
    check_error(&err, SecretErrorKind::Unavailable, "password", "password");
    assert!(err.to_string().contains("token endpoint"), "{err}");
    // The credential's pipeline retries too.
    assert_eq!(emulator.token_requests(), 3, "{:?}", emulator.requests());

    // Once the endpoint recovers, the same backend succeeds.
    emulator.heal();
    let value = backend.get("password").await.expect("recovered");
    assert_eq!(value.map(|s| s.expose() == CANARY), Some(true));
}

#[tokio::test]
async fn an_invalid_secret_name_is_a_clear_error_without_a_request() {
    let emulator = KeyVaultEmulator::start().await;
    let backend = backend(&emulator, None);
    let err = backend.get("db.password").await.expect_err("invalid name");
    assert_eq!(err.kind(), SecretErrorKind::Malformed);
    assert!(err.to_string().contains("db.password"), "{err}");
    assert!(err.to_string().contains("letters, digits and -"), "{err}");
    assert!(emulator.requests().is_empty());
}

/// Every success and failure path; returns what errors and `Debug` show.
async fn exercise_every_path() -> String {
    let emulator = KeyVaultEmulator::start().await;
    let names = [
        "ok",
        "denied",
        "throttled",
        "down",
        "slow",
        "broken",
        "unauthorized",
        "absent",
    ];
    for name in names.into_iter().filter(|n| *n != "absent") {
        emulator.put(name, &format!("{CANARY}-{name}"));
    }
    emulator.fail_with("denied", 403, "Forbidden");
    emulator.fail_with("throttled", 429, "Throttled");
    emulator.fail_with("down", 503, "ServiceUnavailable");
    emulator.slow("slow", Duration::from_secs(5));
    emulator.malformed("broken");
    emulator.fail_with("unauthorized", 401, "Unauthorized");
    let backend = backend(&emulator, None);
    let mut shown = format!("{backend:?}");
    let mut kinds = Vec::new();
    for name in names {
        match backend.get(name).await {
            Ok(value) => {
                assert_eq!(value.is_some(), name == "ok", "{name}");
                shown.push_str(&format!("{value:?}"));
            }
            Err(e) => {
                shown.push_str(&format!("{e} {e:?}"));
                kinds.push(e.kind());
            }
        }
    }
    use SecretErrorKind as K;
    assert_eq!(
        kinds,
        [
            K::AccessDenied,
            K::Throttled,
            K::Unavailable,
            K::Unavailable,
            K::Malformed,
            K::AccessDenied
        ]
    );
    // The token endpoint's failures too.
    let emulator = KeyVaultEmulator::start().await;
    emulator.put("password", CANARY);
    for (status, error) in [(401, "invalid_client"), (503, "temporarily_unavailable")] {
        emulator.fail_token(status, error);
        let backend = self::backend(&emulator, None);
        let e = backend.get("password").await.expect_err("no token");
        shown.push_str(&format!("{e} {e:?}"));
    }
    shown
}

#[test]
fn no_log_line_error_or_debug_output_holds_a_value_or_a_token() {
    let (shown, logs) = common::under_trace(exercise_every_path());
    for needle in [CANARY, CLIENT_SECRET, "emulator-access-token"] {
        common::assert_nowhere(needle, &logs, &shown);
    }
}

#[tokio::test]
async fn the_story_azure_example_resolves_against_the_emulator() {
    let env = MapEnv::new();
    let config = tea_pgcloud::config::load_file("fixtures/examples/azure-key-vault.yaml", &env)
        .expect("the example loads");
    let plan = tea_pgcloud::provider::plan(&config, &env).expect("the example plans");
    let password_source = plan.password_source.to_string();
    let credentials = plan.credentials.expect("a credentials block");
    let vault_url = credentials.vault_url.clone().expect("a vault_url");
    assert_eq!(vault_url, "https://my-keyvault.vault.azure.net");

    let emulator = KeyVaultEmulator::start_as(&vault_url).await;
    emulator.put("username", "ltm_app");
    emulator.put("password", CANARY);
    let backend =
        AzureBackend::for_emulator(&credentials, &emulator.uri(), fast()).expect("backend");
    // Resolution reports the secret as the plan names it.
    assert_eq!(
        format!("secret:azure:{}", backend.locate("password")),
        password_source
    );
    let resolved = resolve(&credentials, &backend, true)
        .await
        .expect("resolves");
    assert_eq!(
        resolved.user,
        Some(("ltm_app".to_string(), "username".to_string()))
    );
    let (password, key) = resolved.password.expect("a password");
    assert_eq!((password.expose(), key.as_str()), (CANARY, "password"));
    assert!(emulator.requests().iter().any(|o| matches!(
        o,
        Observed::Authenticated { host, .. } if host == "my-keyvault.vault.azure.net"
    )));
}

#[tokio::test]
async fn from_config_builds_a_production_backend_without_network() {
    let identity_vars = [
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
    ];
    // The SDK reads them from the process: with any set, this test would check another
    // credential than it means to. It fails with the reason rather than pass without checking.
    let set: Vec<&str> = identity_vars
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_some())
        .collect();
    assert!(
        set.is_empty(),
        "{} set in this environment: run this test without them (env -u ...)",
        set.join(", ")
    );
    let backend = AzureBackend::from_config(&creds("https://my-keyvault.vault.azure.net/", None))
        .await
        .expect("builds");
    assert_eq!(backend.name(), "azure");
    assert_eq!(backend.vault(), "https://my-keyvault.vault.azure.net");
    assert!(format!("{backend:?}").contains("ManagedIdentityCredential"));

    let mut http = creds("http://my-keyvault.vault.azure.net", None);
    let err = AzureBackend::from_config(&http).await.expect_err("http");
    assert!(err.to_string().contains("https"), "{err}");
    http.vault_url = None;
    let err = AzureBackend::from_config(&http).await.expect_err("none");
    assert!(err.to_string().contains("vault_url"), "{err}");
}

#[test]
fn a_launched_server_accepts_the_password_from_the_emulator() {
    let server = common::plain_server("azure-live");
    common::block_on(async {
        let vault = "https://live-vault.vault.azure.net";
        let emulator = KeyVaultEmulator::start_as(vault).await;
        emulator.put("ltm-password", server.password());
        let plan = common::plan_of(&format!(
            "provider: azure\nhost: 127.0.0.1\nport: {}\ndatabase: postgres\nuser: {}\nsslmode: prefer\ncredentials:\n  source: azure\n  vault_url: {vault}\n  secret_prefix: ltm-\n",
            server.port(),
            server.user()
        ));
        let credentials = plan.credentials.clone().expect("credentials");
        let backend =
            AzureBackend::for_emulator(&credentials, &emulator.uri(), fast()).expect("backend");
        common::assert_connects_as_server_user(&server, &plan, Arc::new(backend)).await;
    });
}
