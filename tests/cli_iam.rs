//! `tea-pgcloud ping` and `resolve` logging in with a Cloud SQL IAM token: the real binary,
//! the real provider (metadata server credentials through google-cloud-auth) against the
//! metadata server emulator, and a launched PostgreSQL whose role password is the token.

mod common;

use std::process::Command;

use tea_pgcloud::conformance::emulators::gcp_token::{DEFAULT_EMAIL, MetadataServerEmulator};
use tea_pgcloud::conformance::rotation::RoleRotator;

const BIN: &str = env!("CARGO_BIN_EXE_tea-pgcloud");

#[test]
fn ping_logs_in_with_an_iam_token_from_the_metadata_server() {
    let server = common::plain_server("cli-iam");
    let user = tea_pgcloud::provider::gcp::iam_user(DEFAULT_EMAIL).to_string();
    let rotator = RoleRotator::start(&server, &user).expect("a role");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let mds = runtime.block_on(MetadataServerEmulator::start());
    mds.on_issue(rotator.hook());
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "settings:\n  ltm:\n    catalog:\n      type: postgres\n      provider: gcp\n      \
             host: 127.0.0.1\n      port: {}\n      ip_type: public\n      sslmode: disable\n      \
             database: postgres\n      user: {DEFAULT_EMAIL}\n      iam_auth: true\n",
            server.port()
        ),
    )
    .expect("writes the config");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg(&config)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("GCE_METADATA_HOST", mds.host())
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, stdout, stderr) = run(&["ping", "--json"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["connected"], true, "{report}");
    assert_eq!(report["auth"], "iam:gcp", "{report}");
    let token = mds.last_token().expect("a token was issued");
    assert!(
        !stdout.contains(&token) && !stderr.contains(&token),
        "{stdout}\n{stderr}"
    );
    assert_eq!(mds.requests(), 1, "one token for one ping");

    let (code, stdout, stderr) = run(&["resolve"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(&user), "{stdout}");
    assert!(stdout.contains("from iam:gcp"), "{stdout}");
    let token = mds.last_token().expect("a token");
    assert!(!stdout.contains(&token), "{stdout}");

    let (code, stdout, _) = run(&["resolve", "--reveal"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains(&mds.last_token().expect("a token")),
        "{stdout}"
    );

    // The issuer is down: a clear `credentials` error, exit 1.
    mds.fail_next_with(10, 503);
    let (code, stdout, stderr) = run(&["ping"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("credentials") && stderr.contains("iam:gcp"),
        "{stderr}"
    );
    drop(runtime);
}
