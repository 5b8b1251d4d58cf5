//! The RDS IAM token provider (`iam:aws-rds`) with aws-config's real credential providers
//! against the container credentials and STS emulators: tokens signed with the credentials the
//! emulators issued, expiry bounded by theirs, every fault mapped to its `TokenErrorKind`, no
//! secret in any output or log line, and a signature checked by a SigV4 computed by hand (the
//! kit's verifier beside the AWS emulators).
//!
//! aws-config takes the container endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`) and the STS
//! endpoint (`AWS_ENDPOINT_URL_STS`) only from the process environment: its environment
//! override is crate-private (`ProviderConfig::with_env`) or needs its `test-util` feature
//! (`ConfigLoader::env`). So the tests that drive those providers run a child process, this
//! test binary again filtered to [`child_process_entry`], with an environment of its own
//! (the kit's `ChildTest`, from an empty environment), while the emulators run here. This process's
//! environment is never changed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::Region;
use aws_config::ecs::EcsCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::web_identity_token::{StaticConfiguration, WebIdentityTokenCredentialsProvider};
use aws_credential_types::Credentials;
use serde_json::{Value, json};
use tea_pgcloud::conformance::child::ChildTest;
use tea_pgcloud::conformance::emulators::aws_creds::{
    ContainerCredentialsEmulator, IssuedCredentials, ROLE_ARN, StsEmulator,
};
use tea_pgcloud::conformance::emulators::sigv4;
use tea_pgcloud::env::{MapEnv, ProcessEnv};
use tea_pgcloud::iam::aws::{
    CREDENTIALS_TIMEOUT, PROVIDER, RdsTokenProvider, TOKEN_LIFETIME, TokenRequest, rds_auth_token,
};
use tea_pgcloud::iam::{CredentialProvider, TokenError, TokenErrorKind};

mod common;

const HOST: &str = "ltm.abc123.us-east-1.rds.amazonaws.com";
const PORT: u16 = 5432;
const USER: &str = "ltm_agent";
const REGION: &str = "us-east-1";
const SESSION: &str = "ltm-agent-session";
const KEY: &str = "us-east-1:ltm.abc123.us-east-1.rds.amazonaws.com:5432:ltm_agent";

const CATALOG: &str = "
settings:
  ltm:
    catalog:
      type: postgres
      provider: aws
      host: ltm.abc123.us-east-1.rds.amazonaws.com
      database: ltm
      user: ltm_agent
      iam_auth: true
";

/// A web identity token (a JWT in real life): a secret too.
const WEB_IDENTITY_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJsdG0ifQ.WeB-iDeNtItY-CaNaRy";
/// The container endpoint's authorization token: a secret too.
const CONTAINER_AUTH: &str = "cOnTaInEr-AuTh-CaNaRy-9917";

// The child's instructions, in its environment.
const CHILD: &str = "TEA_IAM_AWS_CHILD";
const CHILD_FETCHES: &str = "TEA_IAM_AWS_CHILD_FETCHES";
const CHILD_TIMEOUT_MS: &str = "TEA_IAM_AWS_CHILD_TIMEOUT_MS";
const CHILD_TRACE: &str = "TEA_IAM_AWS_CHILD_TRACE";
const CHILD_TOKEN_FILE: &str = "TEA_IAM_AWS_CHILD_TOKEN_FILE";
const REPORT: &str = "CHILD-REPORT ";

fn builder() -> tea_pgcloud::iam::aws::RdsTokenProviderBuilder {
    RdsTokenProvider::builder()
        .host(HOST)
        .port(PORT)
        .user(USER)
        .region(REGION)
}

fn provider_config() -> ProviderConfig {
    ProviderConfig::without_region()
        .with_http_client(tea_pgcloud::secrets::aws::http_client())
        .with_region(Some(Region::new(REGION)))
}

/// The provider a child scenario names.
async fn child_provider(scenario: &str) -> Result<RdsTokenProvider, TokenError> {
    match scenario {
        // Production: the plan and aws-config's default chain.
        "chain" => {
            RdsTokenProvider::from_plan(&common::plan_of(CATALOG), Arc::new(ProcessEnv)).await
        }
        "container" => builder()
            .credentials_provider(
                EcsCredentialsProvider::builder()
                    .configure(&provider_config())
                    .build(),
            )
            .build(),
        "web-identity" => builder()
            .credentials_provider(
                WebIdentityTokenCredentialsProvider::builder()
                    .configure(&provider_config())
                    .static_configuration(StaticConfiguration {
                        web_identity_token_file: PathBuf::from(
                            std::env::var(CHILD_TOKEN_FILE).expect("a token file"),
                        ),
                        role_arn: ROLE_ARN.to_string(),
                        session_name: SESSION.to_string(),
                    })
                    .build(),
            )
            .build(),
        other => panic!("unknown scenario {other}"),
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// Runs in the child: builds the scenario's provider, fetches, and prints what happened as one
/// JSON line for the parent (which holds the emulators and their secrets).
#[test]
#[ignore = "the child process of the tests below: it does something only in the environment they give it"]
fn child_process_entry() {
    // Run directly (`--ignored`), it has nothing to check: say so by failing, not by passing.
    let scenario = std::env::var(CHILD)
        .expect("the child half of the scenario tests below: run those, which start this one");
    let fetches: usize = std::env::var(CHILD_FETCHES)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let timeout = std::env::var(CHILD_TIMEOUT_MS)
        .ok()
        .and_then(|n| n.parse().ok())
        .map(Duration::from_millis);
    let work = async move {
        let provider = match child_provider(&scenario).await {
            Ok(p) => p,
            Err(e) => {
                return json!({"build_error": {"kind": e.kind().as_str(), "display": e.to_string(), "debug": format!("{e:?}")}});
            }
        };
        let provider = match timeout {
            Some(t) => provider.with_timeout(t),
            None => provider,
        };
        let mut results = Vec::new();
        for _ in 0..fetches {
            let before = SystemTime::now();
            let result = provider.fetch().await;
            results.push(match result {
                Ok(token) => json!({
                    "before": secs(before),
                    // The parent checks the token against the emulator's credentials.
                    "token": token.secret.expose(),
                    "expires_at": secs(token.expires_at),
                    "debug": format!("{token:?}"),
                }),
                Err(e) => json!({
                    "before": secs(before),
                    "kind": e.kind().as_str(),
                    "provider": e.provider(),
                    "display": e.to_string(),
                    "debug": format!("{e:?}"),
                }),
            });
        }
        json!({
            "name": provider.name(),
            "key": provider.key(),
            "provider_debug": format!("{provider:?}"),
            "fetches": results,
        })
    };
    let (mut report, logs) = if std::env::var(CHILD_TRACE).is_ok() {
        common::under_trace(work)
    } else {
        (common::block_on(work), String::new())
    };
    report["logs"] = Value::String(logs);
    println!("{REPORT}{report}");
}

/// A child run: a scenario and its environment.
struct Child {
    scenario: &'static str,
    env: Vec<(String, String)>,
    fetches: usize,
    timeout: Option<Duration>,
    trace: bool,
}

impl Child {
    fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            env: Vec::new(),
            fetches: 1,
            timeout: None,
            trace: true,
        }
    }

    fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_string(), value.into()));
        self
    }

    fn fetches(mut self, n: usize) -> Self {
        self.fetches = n;
        self
    }

    fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    fn untraced(mut self) -> Self {
        self.trace = false;
        self
    }

    /// Runs the child with only the variables given here, a fresh HOME, no shared AWS files
    /// and no instance metadata, so that nothing of this machine's AWS set-up takes part.
    async fn run(self) -> Report {
        tokio::task::spawn_blocking(move || {
            let home = tempfile::tempdir().expect("a home");
            let mut child = ChildTest::new("child_process_entry")
                .expect("the test binary")
                .env_clear()
                .without_aws_setup(home.path())
                .env(CHILD, self.scenario)
                .env(CHILD_FETCHES, self.fetches.to_string())
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            if let Some(t) = self.timeout {
                child = child.env(CHILD_TIMEOUT_MS, t.as_millis().to_string());
            }
            if self.trace {
                child = child.env(CHILD_TRACE, "1");
            }
            let output = child.run().expect("the child runs");
            match (output.success, output.report(REPORT)) {
                (true, Some(line)) => Report(serde_json::from_str(line).expect("a JSON report")),
                _ => panic!("the child failed ({})", output.shown()),
            }
        })
        .await
        .expect("the child's thread")
    }
}

/// What a child reported.
struct Report(Value);

impl Report {
    fn fetch(&self, i: usize) -> &Value {
        assert!(
            self.0.get("build_error").is_none(),
            "the provider was not built: {}",
            self.0
        );
        &self.0["fetches"][i]
    }

    /// The token and its expiry of fetch `i`, which must have succeeded.
    fn token(&self, i: usize) -> (String, SystemTime) {
        let fetch = self.fetch(i);
        let token = fetch["token"]
            .as_str()
            .unwrap_or_else(|| panic!("fetch {i} failed: {fetch}"));
        let expires = fetch["expires_at"].as_u64().expect("expires_at");
        (token.to_string(), UNIX_EPOCH + Duration::from_secs(expires))
    }

    /// The error kind and message of fetch `i`, which must have failed.
    fn error(&self, i: usize) -> (String, String) {
        let fetch = self.fetch(i);
        let kind = fetch["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("fetch {i} succeeded: {}", fetch["debug"]));
        assert_eq!(fetch["provider"], PROVIDER);
        (
            kind.to_string(),
            fetch["display"].as_str().unwrap_or("").to_string(),
        )
    }

    /// Everything shown to users: the provider's `Debug`, the tokens' `Debug`, the errors'
    /// `Display` and `Debug`.
    fn shown(&self) -> String {
        let mut out = vec![self.0["provider_debug"].to_string()];
        out.push(self.0["build_error"].to_string());
        for fetch in self.0["fetches"].as_array().into_iter().flatten() {
            out.push(fetch["debug"].to_string());
            out.push(fetch["display"].to_string());
        }
        out.join("\n")
    }

    fn logs(&self) -> &str {
        self.0["logs"].as_str().unwrap_or("")
    }

    /// Fails when any of `secrets` is in a log line or in what is shown.
    fn assert_hides(&self, secrets: &[&str]) {
        let shown = self.shown();
        for secret in secrets {
            common::assert_nowhere(secret, self.logs(), &shown);
        }
    }

    /// The issued credentials' secret key and session token, the tokens made, and the other
    /// secrets of the scenario are nowhere in the output or the logs.
    fn assert_hides_all(&self, issued: &[IssuedCredentials], others: &[&str]) {
        let mut secrets: Vec<String> = issued
            .iter()
            .flat_map(|c| [c.secret_access_key.clone(), c.session_token.clone()])
            .collect();
        for fetch in self.0["fetches"].as_array().into_iter().flatten() {
            if let Some(token) = fetch["token"].as_str() {
                secrets.push(token.to_string());
            }
        }
        secrets.extend(others.iter().map(|s| s.to_string()));
        self.assert_hides(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

// --- Reading a token ----------------------------------------------------------------------

/// The query parameters of a token, decoded.
fn params(token: &str) -> BTreeMap<String, String> {
    sigv4::token_params(token).expect("HOST:PORT/?QUERY")
}

/// `X-Amz-Date` as a time.
fn amz_date(s: &str) -> SystemTime {
    sigv4::amz_date(s).expect("an X-Amz-Date")
}

/// The token's signature, recomputed from the SigV4 specification (the kit's verifier, which
/// uses nothing of aws-sigv4).
fn sigv4_signature_by_hand(token: &str, secret_key: &str) -> String {
    sigv4::signature_by_hand(token, secret_key).expect("a presigned token")
}

/// The token is for this endpoint and user, signed with `creds` at its `X-Amz-Date`, and its
/// signature is right: recomputed by `rds_auth_token` and by hand. Returns the signing time.
fn assert_signed_with(token: &str, creds: &IssuedCredentials) -> SystemTime {
    let p = params(token);
    assert!(
        token.starts_with(&format!(
            "{HOST}:{PORT}/?Action=connect&DBUser={USER}&X-Amz-Algorithm=AWS4-HMAC-SHA256&"
        )),
        "{token}"
    );
    let date = &p["X-Amz-Date"];
    assert_eq!(
        p["X-Amz-Credential"],
        format!(
            "{}/{}/{REGION}/rds-db/aws4_request",
            creds.access_key_id,
            &date[..8]
        )
    );
    assert_eq!(p["X-Amz-Security-Token"], creds.session_token);
    assert_eq!(p["X-Amz-Expires"], "900");
    assert_eq!(p["X-Amz-SignedHeaders"], "host");
    let signed_at = amz_date(date);
    let again = rds_auth_token(
        &TokenRequest {
            host: HOST,
            port: PORT,
            user: USER,
            region: REGION,
        },
        &Credentials::new(
            &creds.access_key_id,
            &creds.secret_access_key,
            Some(creds.session_token.clone()),
            None,
            "check",
        ),
        signed_at,
    )
    .expect("signs");
    assert_eq!(
        again.expose(),
        token,
        "the same credentials and time sign the same token"
    );
    assert_eq!(
        sigv4_signature_by_hand(token, &creds.secret_access_key),
        p["X-Amz-Signature"],
        "the signature by the SigV4 specification"
    );
    signed_at
}

#[test]
fn the_hand_made_sigv4_reproduces_the_aws_sdk_vector() {
    // aws-sdk-rust `auth_token.rs`: creds akid/secret, 2024-08-26T22:00:00Z, port 3306.
    let token = "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240826T220000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89";
    assert_eq!(
        sigv4_signature_by_hand(token, "secret"),
        "dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89"
    );
    assert_eq!(
        sigv4_signature_by_hand(token, "another secret").len(),
        64,
        "a different key gives a different (well-formed) signature"
    );
    assert_ne!(
        sigv4_signature_by_hand(token, "another secret"),
        "dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89"
    );
    assert_eq!(secs(amz_date("20240826T220000Z")), 1_724_709_600);
}

// --- In process: explicit credentials, the plan ----------------------------------------------

#[tokio::test]
async fn static_credentials_sign_a_token_bounded_by_their_expiry() {
    let issued = IssuedCredentials {
        access_key_id: "ASIASTATICEXAMPLE001".into(),
        secret_access_key: "StAtIc/SeCrEt+KeY/0000000000000000000000".into(),
        session_token: "StAtIc/SeSsIoN+ToKeN==".into(),
        expiration: UNIX_EPOCH + Duration::from_secs(secs(SystemTime::now()) + 120),
    };
    let provider = builder()
        .credentials_provider(Credentials::new(
            &issued.access_key_id,
            &issued.secret_access_key,
            Some(issued.session_token.clone()),
            Some(issued.expiration),
            "static",
        ))
        .build()
        .expect("a provider");
    assert_eq!(
        (provider.name(), provider.key()),
        (PROVIDER, KEY.to_string())
    );
    assert_eq!(provider.timeout(), CREDENTIALS_TIMEOUT);
    let token = provider.fetch().await.expect("a token");
    let signed_at = assert_signed_with(token.secret.expose(), &issued);
    assert!(
        signed_at <= SystemTime::now() && signed_at + Duration::from_secs(5) > SystemTime::now()
    );
    // The credentials expire in 120 s: so does the token.
    assert_eq!(token.expires_at, issued.expiration);
    let shown = format!("{provider:?} {token:?}");
    for secret in [
        issued.secret_access_key.as_str(),
        issued.session_token.as_str(),
        token.secret.expose(),
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains(HOST), "{shown}");
}

#[tokio::test]
async fn static_credentials_that_have_expired_are_invalid() {
    let expired = SystemTime::now() - Duration::from_secs(1);
    let provider = builder()
        .credentials_provider(Credentials::new(
            "ASIAEXPIREDEXAMPLE01",
            "ExPiReD-SeCrEt",
            Some("ExPiReD-SeSsIoN".into()),
            Some(expired),
            "static",
        ))
        .build()
        .expect("a provider");
    let err = provider.fetch().await.expect_err("expired");
    assert_eq!(err.kind(), TokenErrorKind::Invalid);
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("expired"), "{shown}");
    assert!(
        !shown.contains("ExPiReD-SeCrEt") && !shown.contains("ExPiReD-SeSsIoN"),
        "{shown}"
    );
}

#[tokio::test]
async fn from_plan_takes_host_port_user_and_region_from_the_plan() {
    let plan = common::plan_of(CATALOG);
    let provider = RdsTokenProvider::from_plan(&plan, Arc::new(MapEnv::new()))
        .await
        .expect("a provider");
    assert_eq!(
        (provider.name(), provider.key()),
        (PROVIDER, KEY.to_string())
    );
    assert_eq!(
        provider.request(),
        TokenRequest {
            host: HOST,
            port: PORT,
            user: USER,
            region: REGION
        }
    );
    assert!(format!("{provider:?}").contains("default chain"));
}

#[tokio::test]
async fn from_plan_names_what_is_missing() {
    let missing = |edit: fn(&mut tea_pgcloud::plan::ConnectPlan)| {
        let mut plan = common::plan_of(CATALOG);
        edit(&mut plan);
        async move {
            RdsTokenProvider::from_plan(&plan, Arc::new(MapEnv::new()))
                .await
                .expect_err("incomplete")
        }
    };
    let err = missing(|p| p.user = None).await;
    assert_eq!(err.kind(), TokenErrorKind::Config);
    assert_eq!(err.provider(), PROVIDER);
    assert!(err.message().starts_with("iam_auth needs user"), "{err}");
    let err = missing(|p| p.region = None).await;
    assert_eq!(
        (err.kind(), err.message()),
        (TokenErrorKind::Config, "iam_auth needs region")
    );
    let err = missing(|p| p.hosts.clear()).await;
    assert_eq!(
        (err.kind(), err.message()),
        (TokenErrorKind::Config, "iam_auth needs host")
    );
    let err = missing(|p| p.hosts[0].host = "/var/run/postgresql".into()).await;
    assert_eq!(err.kind(), TokenErrorKind::Config);
    assert!(err.message().contains("socket directory"), "{err}");
}

// --- The container credentials endpoint (ECS, EKS Pod Identity) -----------------------------

fn container(emulator: &ContainerCredentialsEmulator) -> Child {
    Child::new("container")
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", emulator.full_uri())
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_AUTH)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_credentials_sign_each_token_and_bound_its_expiry() {
    let emulator = ContainerCredentialsEmulator::start().await;
    emulator.require_auth_token(CONTAINER_AUTH);
    // Shorter than a token's 900 s: the credentials' expiry bounds the token.
    emulator.set_lifetime(Duration::from_secs(600));
    let report = container(&emulator).fetches(2).run().await;
    let issued = emulator.issued();
    // Every fetch asked the endpoint: nothing in between cached the credentials.
    assert_eq!((emulator.requests(), issued.len()), (2, 2));
    for (i, creds) in issued.iter().enumerate() {
        let (token, expires_at) = report.token(i);
        let signed_at = assert_signed_with(&token, creds);
        assert_eq!(expires_at, creds.expiration);
        assert!(expires_at < signed_at + TOKEN_LIFETIME);
    }
    assert_ne!(report.token(0).0, report.token(1).0);
    assert_eq!(report.0["key"], KEY);
    report.assert_hides_all(&issued, &[CONTAINER_AUTH]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_chain_finds_the_container_endpoint() {
    let emulator = ContainerCredentialsEmulator::start().await;
    emulator.require_auth_token(CONTAINER_AUTH);
    let report = Child::new("chain")
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", emulator.full_uri())
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_AUTH)
        .run()
        .await;
    let creds = emulator.last_issued().expect("issued");
    let (token, expires_at) = report.token(0);
    let signed_at = assert_signed_with(&token, &creds);
    // The credentials live an hour: the token lives its own 900 s.
    assert_eq!(expires_at, signed_at + TOKEN_LIFETIME);
    assert_eq!(emulator.requests(), 1);
    assert_eq!(report.0["key"], KEY);
    report.assert_hides_all(&emulator.issued(), &[CONTAINER_AUTH]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_chain_without_credentials_is_a_config_error() {
    let report = Child::new("chain").untraced().run().await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "config", "{message}");
    assert!(message.contains("no AWS credentials found"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_5xx_once_is_retried_by_the_sdk() {
    let emulator = ContainerCredentialsEmulator::start().await;
    emulator.require_auth_token(CONTAINER_AUTH);
    emulator.fail_next(1, 500);
    let report = container(&emulator).run().await;
    let (token, _) = report.token(0);
    assert_signed_with(&token, &emulator.last_issued().expect("issued"));
    assert_eq!((emulator.requests(), emulator.issued().len()), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_endpoint_that_keeps_failing_is_unavailable_after_three_attempts() {
    let emulator = ContainerCredentialsEmulator::start().await;
    emulator.fail_next(100, 503);
    let report = container(&emulator).run().await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "unavailable", "{message}");
    assert!(message.contains("HTTP 503"), "{message}");
    assert_eq!(emulator.requests(), 3);
    report.assert_hides(&[CONTAINER_AUTH]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_container_endpoint_is_unavailable_within_the_timeout() {
    let emulator = ContainerCredentialsEmulator::start().await;
    emulator.set_delay(Duration::from_secs(4));
    let report = container(&emulator)
        .timeout(Duration::from_millis(500))
        .run()
        .await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "unavailable", "{message}");
    assert!(message.contains("500 ms"), "{message}");
    assert_eq!(emulator.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_container_credentials_are_invalid() {
    let emulator = ContainerCredentialsEmulator::start().await;
    emulator.return_expired(true);
    let report = container(&emulator).run().await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "invalid", "{message}");
    assert!(message.contains("expired"), "{message}");
    let issued = emulator.issued();
    assert_eq!(issued.len(), 1);
    report.assert_hides_all(&issued, &[CONTAINER_AUTH]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_container_authorization_token_is_denied() {
    let emulator = ContainerCredentialsEmulator::start().await;
    emulator.require_auth_token("the-right-one");
    let report = container(&emulator).run().await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "denied", "{message}");
    assert!(message.contains("HTTP 401"), "{message}");
    // A refusal is not retried.
    assert_eq!((emulator.requests(), emulator.issued().len()), (1, 0));
    report.assert_hides(&[CONTAINER_AUTH]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_answer_that_is_not_credentials_is_invalid() {
    let emulator = ContainerCredentialsEmulator::start().await;
    emulator.return_malformed(true);
    let report = container(&emulator).run().await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "invalid", "{message}");
    // aws-config retries an unreadable 200 like a server error.
    assert_eq!(emulator.requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_endpoint_that_refuses_connections_is_unavailable() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("an address").port()
    };
    let report = Child::new("container")
        .env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://127.0.0.1:{closed}/v1/credentials"),
        )
        .run()
        .await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "unavailable", "{message}");
}

// --- Web identity through STS (EKS IRSA) --------------------------------------------------

/// A web identity token file, and the child environment that points STS at `sts`.
fn web_identity(scenario: &'static str, sts: &StsEmulator, dir: &tempfile::TempDir) -> Child {
    let file = dir.path().join("token");
    std::fs::write(&file, WEB_IDENTITY_TOKEN).expect("a token file");
    let file = file.to_string_lossy().into_owned();
    Child::new(scenario)
        .env("AWS_ENDPOINT_URL_STS", sts.uri())
        .env(CHILD_TOKEN_FILE, file.clone())
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", file)
        .env("AWS_ROLE_ARN", ROLE_ARN)
        .env("AWS_ROLE_SESSION_NAME", SESSION)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_credentials_sign_each_token() {
    let sts = StsEmulator::start().await;
    sts.require_web_identity_token(WEB_IDENTITY_TOKEN);
    sts.set_lifetime(Duration::from_secs(300));
    let dir = tempfile::tempdir().expect("a directory");
    let report = web_identity("web-identity", &sts, &dir)
        .fetches(2)
        .run()
        .await;
    let issued = sts.issued();
    assert_eq!((sts.requests(), issued.len()), (2, 2));
    for (i, creds) in issued.iter().enumerate() {
        let (token, expires_at) = report.token(i);
        assert_signed_with(&token, creds);
        assert_eq!(expires_at, creds.expiration);
    }
    let params = sts.last_params().expect("a request");
    assert_eq!(params["RoleArn"], ROLE_ARN);
    assert_eq!(params["RoleSessionName"], SESSION);
    assert_eq!(params["WebIdentityToken"], WEB_IDENTITY_TOKEN);
    report.assert_hides_all(&issued, &[WEB_IDENTITY_TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_chain_uses_web_identity() {
    let sts = StsEmulator::start().await;
    sts.require_web_identity_token(WEB_IDENTITY_TOKEN);
    sts.set_lifetime(Duration::from_secs(240));
    let dir = tempfile::tempdir().expect("a directory");
    let report = web_identity("chain", &sts, &dir).run().await;
    let creds = sts.last_issued().expect("issued");
    let (token, expires_at) = report.token(0);
    assert_signed_with(&token, &creds);
    assert_eq!(expires_at, creds.expiration);
    assert_eq!(sts.requests(), 1);
    report.assert_hides_all(&sts.issued(), &[WEB_IDENTITY_TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sts_5xx_once_is_retried_by_the_sdk() {
    let sts = StsEmulator::start().await;
    sts.fail_next(1, 503);
    let dir = tempfile::tempdir().expect("a directory");
    let report = web_identity("web-identity", &sts, &dir).run().await;
    let (token, _) = report.token(0);
    assert_signed_with(&token, &sts.last_issued().expect("issued"));
    assert_eq!((sts.requests(), sts.issued().len()), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_that_keeps_failing_is_unavailable_after_three_attempts() {
    let sts = StsEmulator::start().await;
    sts.fail_next(100, 500);
    let dir = tempfile::tempdir().expect("a directory");
    let report = web_identity("web-identity", &sts, &dir).run().await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "unavailable", "{message}");
    assert!(message.contains("InternalFailure"), "{message}");
    assert_eq!(sts.requests(), 3);
    report.assert_hides(&[WEB_IDENTITY_TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_identity_token_sts_refuses_is_denied() {
    let sts = StsEmulator::start().await;
    sts.require_web_identity_token("another-token");
    let dir = tempfile::tempdir().expect("a directory");
    let report = web_identity("web-identity", &sts, &dir).run().await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "denied", "{message}");
    assert!(message.contains("InvalidIdentityToken"), "{message}");
    assert_eq!((sts.requests(), sts.issued().len()), (1, 0));
    report.assert_hides(&[WEB_IDENTITY_TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sts_credentials_are_invalid() {
    let sts = StsEmulator::start().await;
    sts.return_expired(true);
    let dir = tempfile::tempdir().expect("a directory");
    let report = web_identity("web-identity", &sts, &dir).run().await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "invalid", "{message}");
    report.assert_hides_all(&sts.issued(), &[WEB_IDENTITY_TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sts_is_unavailable_within_the_timeout() {
    let sts = StsEmulator::start().await;
    sts.set_delay(Duration::from_secs(4));
    let dir = tempfile::tempdir().expect("a directory");
    let report = web_identity("web-identity", &sts, &dir)
        .timeout(Duration::from_millis(500))
        .run()
        .await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "unavailable", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sts_answer_that_is_not_credentials_is_invalid() {
    let sts = StsEmulator::start().await;
    sts.return_malformed(true);
    let dir = tempfile::tempdir().expect("a directory");
    let report = web_identity("web-identity", &sts, &dir).run().await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "invalid", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_web_identity_token_file_is_a_config_error() {
    let sts = StsEmulator::start().await;
    let dir = tempfile::tempdir().expect("a directory");
    let report = web_identity("web-identity", &sts, &dir)
        .env(CHILD_TOKEN_FILE, "/nonexistent/token")
        .untraced()
        .run()
        .await;
    let (kind, message) = report.error(0);
    assert_eq!(kind, "config", "{message}");
    assert_eq!(sts.requests(), 0);
}
