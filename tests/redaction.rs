//! The redaction canary: every success and failure path of the secrets backends runs with a
//! distinctive secret value while a TRACE-level subscriber records everything the crate and the
//! SDKs log; the value must appear in no log line, error message or `Debug` output.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tea_pgcloud::config::{CredentialsConfig, SecretSource, load_str};
use tea_pgcloud::conformance::emulators::aws::AwsSecretsManager;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::secrets::aws::AwsBackend;
use tea_pgcloud::secrets::{EnvBackend, SecretsBackend, resolve};

mod common;

const CANARY: &str = "ReDaCtIoN-CaNaRy-3141";

fn aws_creds(secret_name: Option<&str>, secret_prefix: Option<&str>) -> CredentialsConfig {
    CredentialsConfig {
        secret_prefix: secret_prefix.map(str::to_string),
        secret_name: secret_name.map(str::to_string),
        region: Some("us-east-1".into()),
        ..CredentialsConfig::new(SecretSource::Aws)
    }
}

/// Runs every path and returns everything it showed: errors, `Debug` of results.
async fn exercise() -> String {
    let mut shown = String::new();
    // env backend: success and missing.
    let env = MapEnv::new()
        .with_var("POSTGRES_PASSWORD", CANARY)
        .with_var("POSTGRES_USER", "u");
    let env_creds = CredentialsConfig {
        source: SecretSource::Env,
        prefix: Some("POSTGRES_".into()),
        ..aws_creds(None, None)
    };
    let backend = EnvBackend::new(Arc::new(env));
    shown.push_str(&format!("{:?}", resolve(&env_creds, &backend, true).await));
    let empty = EnvBackend::new(Arc::new(MapEnv::new()));
    shown.push_str(&format!("{:?}", resolve(&env_creds, &empty, true).await));

    // A connection string holding the canary, planned and shown.
    let dsn_env = MapEnv::new().with_var("DSN", format!("host=h password={CANARY} bogus=1"));
    shown.push_str(&format!(
        "{:?}",
        load_str("connection_string: ${DSN}\n", "c.yaml", &dsn_env)
            .and_then(|c| tea_pgcloud::provider::plan(&c, &dsn_env))
    ));

    // AWS: success, every fault.
    let emulator = AwsSecretsManager::start().await;
    emulator
        .put_json("json", json!({"username": "u", "password": CANARY}))
        .await;
    emulator.put("plain", CANARY).await;
    emulator
        .put_json("wrong-type", json!({"password": [CANARY]}))
        .await;
    emulator
        .fail_with("denied", 400, "AccessDeniedException")
        .await;
    emulator
        .fail_with("throttled", 400, "ThrottlingException")
        .await;
    emulator.fail_with("down", 503, "ServiceUnavailable").await;
    emulator.malformed("broken").await;
    emulator.slow("slow", CANARY, Duration::from_secs(2)).await;
    let sdk = common::aws_sdk(&emulator.uri(), 2, Duration::from_millis(300)).await;
    for secret in ["json", "plain", "wrong-type"] {
        let creds = aws_creds(Some(secret), None);
        let backend = AwsBackend::with_sdk_config(&sdk, &creds).expect("layout");
        shown.push_str(&format!(
            "{:?}",
            resolve(&creds, &backend, true).await.map(|r| r.user)
        ));
    }
    let creds = aws_creds(None, Some(""));
    let backend = AwsBackend::with_sdk_config(&sdk, &creds).expect("layout");
    for id in ["denied", "throttled", "down", "broken", "slow", "absent"] {
        match backend.get(id).await {
            Ok(value) => shown.push_str(&format!("{value:?}")),
            Err(e) => shown.push_str(&format!("{e} {e:?}")),
        }
    }
    shown.push_str(&gcp_paths().await);
    shown
}

/// GCP Secret Manager: success in both layouts and every fault.
async fn gcp_paths() -> String {
    use tea_pgcloud::conformance::emulators::gcp::GcpSecretManager;
    use tea_pgcloud::secrets::gcp::{GcpAuth, GcpBackend, GcpPolicy, SecretLayout};
    let project = "redaction";
    let sm = GcpSecretManager::start().await;
    sm.put(project, "pw", CANARY).await;
    sm.put_json(
        project,
        "json",
        json!({"username": "u", "password": CANARY}),
    )
    .await;
    sm.put_json(project, "wrong-type", json!({"password": [CANARY]}))
        .await;
    sm.put(project, "not-json", CANARY).await;
    sm.put(project, "broken", CANARY).await;
    sm.malformed("broken").await;
    sm.put(project, "bad-crc", CANARY).await;
    sm.bad_crc("bad-crc").await;
    sm.put(project, "slow", CANARY).await;
    sm.slow("slow", Duration::from_secs(2)).await;
    sm.fail_with("denied", 403, "PERMISSION_DENIED").await;
    sm.fail_with("throttled", 429, "RESOURCE_EXHAUSTED").await;
    sm.fail_with("down", 503, "UNAVAILABLE").await;
    let policy = GcpPolicy {
        request_timeout: Duration::from_millis(300),
        max_attempts: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(10),
        deadline: Duration::from_secs(3),
    };
    let build = |layout| {
        GcpBackend::builder(project, layout)
            .endpoint(sm.uri())
            .auth(GcpAuth::Anonymous)
            .policy(policy)
            .build()
    };
    let mut shown = String::new();
    let prefixed = build(SecretLayout::Prefix(String::new()))
        .await
        .expect("client");
    for id in [
        "pw",
        "broken",
        "bad-crc",
        "slow",
        "denied",
        "throttled",
        "down",
        "absent",
    ] {
        match prefixed.get(id).await {
            Ok(value) => shown.push_str(&format!("{value:?}")),
            Err(e) => shown.push_str(&format!("{e} {e:?}")),
        }
    }
    for secret in ["json", "wrong-type", "not-json"] {
        let backend = build(SecretLayout::Json(secret.into()))
            .await
            .expect("client");
        match backend.get("password").await {
            Ok(value) => shown.push_str(&format!("{value:?}")),
            Err(e) => shown.push_str(&format!("{e} {e:?}")),
        }
    }
    shown
}

#[test]
fn no_canary_in_logs_errors_or_debug() {
    let (shown, logs) = common::under_trace(exercise());
    common::assert_nowhere(CANARY, &logs, &shown);
}

/// The plan, connect and pool events under a TRACE subscriber: the password that works, one
/// that is refused, and a host name that came from the environment show in no line, while the
/// events themselves are there (so the check is not vacuous).
#[test]
fn no_password_or_environment_host_in_the_connect_and_pool_logs() {
    use tea_pgcloud::pool::{Pool, PoolOptions};
    let server = common::plain_server("redaction-connect");
    let yaml = format!(
        "host: ${{DB_HOST}}\nport: {}\ndatabase: postgres\nuser: {}\nsslmode: disable\ncredentials: {{prefix: DB_}}\n",
        server.port(),
        server.user()
    );
    let env_with = |password: &str| {
        Arc::new(
            MapEnv::new()
                .with_var("DB_HOST", "localhost")
                .with_var("DB_password", password),
        )
    };
    let plan_with = |env: &MapEnv| {
        load_str(&yaml, "c.yaml", env)
            .and_then(|c| tea_pgcloud::provider::plan(&c, env))
            .expect("a plan")
    };
    let (shown, logs) = common::under_trace(async {
        let mut shown = String::new();
        for _ in 0..3 {
            let env = env_with(server.password());
            let pool = Pool::builder(plan_with(&env), env.clone())
                .options(PoolOptions {
                    min_size: 1,
                    max_size: 2,
                    max_lifetime: Some(Duration::ZERO),
                    ..PoolOptions::default()
                })
                .build()
                .await
                .expect("a pool");
            for _ in 0..2 {
                let client = pool.get().await.expect("a connection");
                client.simple_query("SELECT 1").await.expect("a query");
            }
            shown.push_str(&format!("{pool:?}"));

            let env = env_with(CANARY);
            let refused = Pool::builder(plan_with(&env), env.clone())
                .options(PoolOptions {
                    min_size: 0,
                    ..PoolOptions::default()
                })
                .build()
                .await
                .expect("a lazy pool");
            match refused.get().await {
                Ok(_) => panic!("the canary is not the password"),
                Err(e) => shown.push_str(&format!("{e} {e:?}")),
            }
        }
        shown
    });
    common::assert_nowhere(server.password(), &logs, &shown);
    common::assert_nowhere(CANARY, &logs, &shown);
    // As in errors, a host name from the environment is not shown in the events (a plan's
    // `Debug` is data, and shows it).
    let hosts: Vec<&str> = logs.lines().filter(|l| l.contains("localhost")).collect();
    assert!(hosts.is_empty(), "{}", hosts.join("\n"));
    for event in [
        "plan made",
        "connect attempt",
        "connected",
        "connect failed",
        "pool: a new connection",
        "maximum lifetime",
    ] {
        assert!(logs.contains(event), "no `{event}` event in:\n{logs}");
    }
}
