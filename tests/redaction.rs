//! The redaction canary: every success and failure path of the secrets backends runs with a
//! distinctive secret value while a TRACE-level subscriber records everything the crate and the
//! SDKs log; the value must appear in no log line, error message or `Debug` output.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use serde_json::json;
use tea_pgcloud::config::{CredentialsConfig, SecretSource, load_str};
use tea_pgcloud::conformance::emulators::aws::AwsSecretsManager;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::secrets::aws::AwsBackend;
use tea_pgcloud::secrets::{EnvBackend, SecretsBackend, resolve};

const CANARY: &str = "ReDaCtIoN-CaNaRy-3141";

/// Collects everything written by the subscriber.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn aws_creds(secret_name: Option<&str>, secret_prefix: Option<&str>) -> CredentialsConfig {
    CredentialsConfig {
        source: SecretSource::Aws,
        username_key: "username".into(),
        password_key: "password".into(),
        prefix: None,
        project_id: None,
        secret_prefix: secret_prefix.map(str::to_string),
        secret_name: secret_name.map(str::to_string),
        region: Some("us-east-1".into()),
        vault_url: None,
        version: None,
        endpoint: None,
        endpoint_url: None,
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
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(tea_pgcloud::secrets::aws::http_client())
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "AKIDEXAMPLE",
            "not-a-real-secret-key",
            None,
            None,
            "tests",
        ))
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(emulator.uri())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(5)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(300))
                .build(),
        )
        .load()
        .await;
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
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let shown = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(exercise())
    });
    let logs = String::from_utf8_lossy(&capture.0.lock().expect("capture")).into_owned();
    assert!(
        logs.lines().count() > 20,
        "the subscriber saw too little to prove anything: {} lines",
        logs.lines().count()
    );
    let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(CANARY)).collect();
    assert!(
        leaks.is_empty(),
        "the canary is in {} log lines, e.g.:\n{}",
        leaks.len(),
        leaks.iter().take(3).copied().collect::<Vec<_>>().join("\n")
    );
    assert!(
        !shown.contains(CANARY),
        "the canary is in an error or Debug output:\n{shown}"
    );
}
