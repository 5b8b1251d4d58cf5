//! The command line as a user meets it: exit codes, the error format of DESIGN.md, the plan
//! JSON contract, and no secret in anything it prints.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tea-pgcloud");
const CANARY: &str = "canary-Pw-7f3a9";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary with a clean environment plus `env`, optionally feeding `stdin`.
fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(root())
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the binary starts");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes())
            .expect("stdin accepts the text");
    }
    drop(pipe);
    child.wait_with_output().expect("the binary finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A file in a directory of its own (`vectors DIR` reads every file of its directory), removed
/// when the returned guard drops.
fn temp_file(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("temp file");
    (dir, path)
}

#[test]
fn check_reports_a_typo_with_file_line_col_path_and_a_hint() {
    let (_dir, path) = temp_file(
        "typo.yaml",
        "name: agent\nsettings:\n  ltm:\n    backend: duckdb\n    catalog:\n      type: postgres\n      provider: aws\n      host: db.example.com\n      sslmdoe: require\n",
    );
    let out = run(&["check", path.to_str().expect("utf-8 path")], &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!(
            "{}:9:7: settings.ltm.catalog.sslmdoe: unknown key `sslmdoe`; did you mean `sslmode`?",
            path.display()
        )
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_accepts_a_valid_file_and_warns_about_weak_tls() {
    let out = run(
        &["check", "fixtures/examples/azure-key-vault.yaml"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok: provider azure"));
    assert!(
        text(&out.stderr).contains("warning: settings.ltm.catalog.sslmode: TLS is require"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["check"][..],
        &["plan", "a", "b"][..],
    ] {
        let out = run(args, &[], None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn an_unreadable_file_exits_1_and_says_why() {
    let out = run(&["plan", "/nonexistent/agent.yaml"], &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/agent.yaml"));
}

#[test]
fn plan_json_has_every_contract_field_for_every_example() {
    let env = [
        ("POSTGRES_HOST", "db.internal"),
        ("POSTGRES_DB", "ltm"),
        (
            "POSTGRES_CONNECTION_STRING",
            "postgresql://app:canary-Pw-7f3a9@db.internal/ltm?sslmode=verify-full",
        ),
    ];
    let mut providers = Vec::new();
    for entry in std::fs::read_dir(root().join("fixtures/examples")).expect("examples") {
        let path = entry.expect("entry").path();
        let out = run(
            &["plan", "--json", path.to_str().expect("utf-8")],
            &env,
            None,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            text(&out.stderr)
        );
        assert!(!text(&out.stdout).contains(CANARY) && !text(&out.stderr).contains(CANARY));
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        for field in [
            "provider",
            "hosts",
            "dbname",
            "user",
            "user_source",
            "password_source",
            "sslmode",
            "sslrootcert",
            "tls",
            "conninfo",
            "uri",
        ] {
            assert!(
                plan.get(field).is_some(),
                "{}: no `{field}`",
                path.display()
            );
        }
        providers.push(plan["provider"].as_str().expect("string").to_string());
    }
    providers.sort();
    providers.dedup();
    assert_eq!(
        providers,
        ["aws", "azure", "connection-string", "gcp", "self-hosted"],
        "every provider has an example"
    );
}

#[test]
fn plan_reads_standard_input() {
    let out = run(
        &["plan", "--json", "-"],
        &[],
        Some("provider: gcp\nconnection_name: p:r:i\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(plan["hosts"][0]["host"], "/cloudsql/p:r:i");
    let bad = run(&["check", "-"], &[], Some("sslmode: verify_full\n"));
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).starts_with("<stdin>:1:10: sslmode: `verify_full` is not one of"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn errors_never_print_a_password_from_a_connection_string() {
    // A malformed string that holds a password: libpq's error names the problem, not the value.
    for dsn in [
        "host=db password=canary-Pw-7f3a9 sslmode='unterminated",
        "host=db password=canary-Pw-7f3a9 bogus_option=1",
        "postgresql://u:canary-Pw-7f3a9@db/ltm?nope=1",
        "postgresql://u:canary-Pw-7f3a9@[::1/ltm",
    ] {
        let out = run(
            &["plan", "-"],
            &[("DSN", dsn)],
            Some("connection_string: ${DSN}\n"),
        );
        assert_eq!(out.status.code(), Some(1), "{dsn}");
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(!all.contains(CANARY), "{dsn}: {all}");
        assert!(all.contains("connection_string"), "{all}");
    }
}

#[test]
fn vectors_command_counts_and_fails_loudly() {
    let good = run(&["vectors"], &[], None);
    assert_eq!(good.status.code(), Some(0), "{}", text(&good.stdout));
    assert!(
        text(&good.stdout)
            .lines()
            .last()
            .is_some_and(|l| l.ends_with(" passed, 0 failed"))
    );

    let (guard, _) = temp_file(
        "bad.yaml",
        "kind: expand\ncases:\n  - name: wrong\n    input: \"${A}\"\n    env: {A: x}\n    expect: {value: y}\n",
    );
    let dir = guard.path().to_path_buf();
    let bad = run(&["vectors", dir.to_str().expect("utf-8")], &[], None);
    assert_eq!(bad.status.code(), Some(1));
    let stdout = text(&bad.stdout);
    assert!(
        stdout.contains("FAIL bad::wrong: value: expected \"y\", got \"x\""),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("0 passed, 1 failed"),
        "{stdout}"
    );
}
