//! `tea-pgcloud catalog FILE migrate|stats` against a launched PostgreSQL, with the password
//! from the environment backend.

mod common;

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tea-pgcloud");

#[test]
fn migrate_then_stats_with_credentials_from_the_environment() {
    let server = common::plain_server("cli-catalog");
    server
        .admin_sql(&format!("CREATE DATABASE ltm OWNER \"{}\"", server.user()))
        .expect("a database");
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "settings:\n  ltm:\n    catalog:\n      type: postgres\n      host: 127.0.0.1\n      \
             port: {}\n      database: ltm\n      sslmode: disable\n      credentials:\n        \
             source: env\n",
            server.port()
        ),
    )
    .expect("writes the config");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("catalog")
            .arg(&config)
            .args(args)
            .env_clear()
            .env("POSTGRES_USER", server.user())
            .env("POSTGRES_PASSWORD", server.password())
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // Before any migration: a clear error that says what to run.
    let (code, stdout, stderr) = run(&["stats"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("migrate"), "{stderr}");

    let (code, stdout, stderr) = run(&["migrate", "--json"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["from"], 0, "{report}");
    assert_eq!(report["applied"], serde_json::json!([1]), "{report}");

    let (code, stdout, _) = run(&["migrate"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("nothing to do"), "{stdout}");

    server
        .admin_sql(
            "\\connect ltm\nINSERT INTO ltm_entries (id, key, content_hash, byte_size, metadata, created_at, updated_at) \
             VALUES ('a', 'k1', 'sha256:00', 10, '{}', now(), now()), \
                    ('b', 'k2', 'sha256:01', 32, '{}', now(), now())",
        )
        .expect("rows");
    let (code, stdout, stderr) = run(&["stats", "--json"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let stats: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(stats["entries"], 2, "{stats}");
    assert_eq!(stats["total_bytes"], 42, "{stats}");
    assert_eq!(stats["snapshots"], 0, "{stats}");
    assert_eq!(stats["schema_version"], 1, "{stats}");

    // Neither output ever shows the password.
    for args in [&["stats"][..], &["migrate"][..]] {
        let (_, stdout, stderr) = run(args);
        assert!(!stdout.contains(server.password()) && !stderr.contains(server.password()));
    }
}

#[test]
fn a_column_of_an_unexpected_type_is_an_error_not_a_panic() {
    let server = common::plain_server("cli-catalog-types");
    server
        .admin_sql(&format!("CREATE DATABASE ltm OWNER \"{}\"", server.user()))
        .expect("a database");
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "host: 127.0.0.1\nport: {}\ndatabase: ltm\nsslmode: disable\ncredentials:\n  source: env\n",
            server.port()
        ),
    )
    .expect("writes the config");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("catalog")
            .arg(&config)
            .args(args)
            .env_clear()
            .env("POSTGRES_USER", server.user())
            .env("POSTGRES_PASSWORD", server.password())
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&["migrate"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    server
        .admin_sql("\\connect ltm\nALTER TABLE ltm_schema_version ALTER COLUMN version TYPE bigint")
        .expect("alters the version column");

    for args in [&["stats"][..], &["stats", "--json"][..], &["migrate"][..]] {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, Some(1), "{args:?}: {stdout}\n{stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.contains("catalog schema"), "{args:?}: {stderr}");
        assert!(
            stderr.contains("query \"schema version\""),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("\"version\""), "{args:?}: {stderr}");
        assert!(
            stderr.contains("expected int4, got int8"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains(server.password()), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
}
