//! Helpers shared by the integration tests; a test file includes them with `mod common;`.

// Each test target uses a different subset of these helpers.
#![allow(dead_code)]

pub mod agreement;

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Runs a future on a fresh current-thread runtime with time and I/O enabled.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// Runs a future on a fresh multi-thread runtime (two workers) with time and I/O enabled.
pub fn block_on_multi<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// Collects what the tracing subscriber writes.
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

/// Runs `future` under a TRACE-level subscriber that records everything the crate and the SDKs
/// log; returns the future's output and the log text. Asserts that enough was logged for a
/// search of it to prove anything.
pub fn under_trace<T>(future: impl Future<Output = T>) -> (T, String) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let output = tracing::subscriber::with_default(subscriber, || block_on(future));
    let logs = String::from_utf8_lossy(&capture.0.lock().expect("capture")).into_owned();
    assert!(
        logs.lines().count() > 20,
        "the subscriber saw too little to prove anything: {} lines",
        logs.lines().count()
    );
    (output, logs)
}

/// Fails when `needle` is in any log line or in `shown` (errors and `Debug` output).
pub fn assert_nowhere(needle: &str, logs: &str, shown: &str) {
    let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(needle)).collect();
    assert!(
        leaks.is_empty(),
        "{needle} is in {} log lines, e.g.:\n{}",
        leaks.len(),
        leaks.iter().take(3).copied().collect::<Vec<_>>().join("\n")
    );
    assert!(
        !shown.contains(needle),
        "{needle} is in an error or Debug output:\n{shown}"
    );
}

/// An AWS SDK configuration for an emulator: example static credentials, us-east-1, fast
/// back-off, `attempts` tries of at most `attempt_timeout` each.
#[cfg(feature = "aws")]
pub async fn aws_sdk(
    endpoint: &str,
    attempts: u32,
    attempt_timeout: std::time::Duration,
) -> aws_config::SdkConfig {
    use aws_config::BehaviorVersion;
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(tea_pgcloud::secrets::aws::http_client())
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "tests",
        ))
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(std::time::Duration::from_millis(5)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .load()
        .await
}

/// A launched PostgreSQL without TLS whose role logs in with a SCRAM password over TCP.
pub fn plain_server(name: &str) -> tea_pgcloud::conformance::launcher::PgServer {
    use tea_pgcloud::conformance::launcher::{PgServer, Profile};
    PgServer::start(&Profile {
        name: name.into(),
        tls: None,
        hba: vec!["host all all 127.0.0.1/32 scram-sha-256".into()],
    })
    .expect("a server")
}

/// The plan for a catalog YAML, with no environment.
pub fn plan_of(yaml: &str) -> tea_pgcloud::plan::ConnectPlan {
    let env = tea_pgcloud::env::MapEnv::new();
    let config = tea_pgcloud::config::load_str(yaml, "test.yaml", &env).expect("valid YAML");
    tea_pgcloud::provider::plan(&config, &env).expect("a plan")
}

/// Connects by `plan` with credentials from `backend` (through the cache, as `ping` does) and
/// checks that the server sees the login as `server`'s role.
pub async fn assert_connects_as_server_user(
    server: &tea_pgcloud::conformance::launcher::PgServer,
    plan: &tea_pgcloud::plan::ConnectPlan,
    backend: Arc<dyn tea_pgcloud::secrets::SecretsBackend>,
) {
    use tea_pgcloud::secrets::{CachedSecrets, DEFAULT_TTL, SystemClock};
    let cache = CachedSecrets::new(backend, DEFAULT_TTL, Arc::new(SystemClock));
    let env = Arc::new(tea_pgcloud::env::MapEnv::new());
    let connected = tea_pgcloud::credentials::Credentials::builder(plan.clone(), env)
        .secrets(cache)
        .build()
        .await
        .expect("a credentials stage")
        .connect()
        .await
        .expect("connects with the emulator's credentials");
    let user: String = connected
        .client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("a query")
        .get(0);
    assert_eq!(user, server.user());
}
