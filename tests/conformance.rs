//! The live TLS matrix (cargo feature `conformance`): one test per server profile, each on its
//! own throwaway PostgreSQL, every case run through this library and through libpq (psql).
//! A failing test names each case that disagrees, with both messages. Plus `ping --json`
//! against a launched server.

use std::path::Path;
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};
use tea_pgcloud::conformance::certs::{CertFactory, ServerCertKind};
use tea_pgcloud::conformance::launcher::{Launcher, PgServer, Profile, TlsFiles};
use tea_pgcloud::conformance::matrix::{self, ClientFiles, PROFILES, RECORDING, Recording};

mod common;

fn main() {
    let args = Arguments::from_args();
    // An old Docker engine needs the API version shim in this process's environment.
    #[cfg(feature = "docker")]
    if std::env::var("TEA_PG_LAUNCHER").is_ok_and(|l| l.trim() == "docker")
        && let Some(code) = tea_pgcloud::conformance::docker_shim::rerun_through_shim()
    {
        std::process::exit(code);
    }
    let setup = || -> Result<_, String> {
        let launcher = Launcher::from_env().map_err(|e| e.to_string())?;
        let factory = CertFactory::new().map_err(|e| e.to_string())?;
        let files = ClientFiles::new(&factory).map_err(|e| e.to_string())?;
        let recording = Recording::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(RECORDING))?;
        Ok(Arc::new((factory, files, recording, launcher)))
    };
    let shared = match setup() {
        Ok(shared) => shared,
        Err(e) => {
            eprintln!("conformance set-up failed: {e}");
            std::process::exit(1);
        }
    };
    let mut trials = Vec::new();
    for profile in PROFILES {
        let shared = shared.clone();
        trials.push(Trial::test(
            format!("tls_matrix::{}", profile.name),
            move || {
                let (factory, files, recording, launcher) = &*shared;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                let (results, _) = matrix::run_profile(
                    launcher,
                    profile,
                    factory,
                    files,
                    recording,
                    &runtime,
                    |_| {},
                )?;
                if results.len() != 48 {
                    return Err(format!("ran {} cases, expected 48", results.len()).into());
                }
                let mut problems = Vec::new();
                for r in &results {
                    if !r.agrees() {
                        problems.push(format!(
                            "{}: ours {} ({}) but libpq {} ({})",
                            r.case.id(),
                            r.ours,
                            r.ours_message.as_deref().unwrap_or("-"),
                            r.libpq,
                            r.libpq_message.as_deref().unwrap_or("-")
                        ));
                    }
                    match r.recorded {
                        None => problems.push(format!(
                            "{}: not in {RECORDING} (run `tea-pgcloud conformance --record`)",
                            r.case.id()
                        )),
                        Some(recorded) if recorded != r.libpq => problems.push(format!(
                            "{}: libpq gives {} but {RECORDING} says {recorded}",
                            r.case.id(),
                            r.libpq
                        )),
                        Some(_) => {}
                    }
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(Failed::from(problems.join("\n")))
                }
            },
        ));
    }
    let for_certs = shared.clone();
    trials.push(Trial::test(
        "client_certificate_auth_agrees_with_libpq",
        move || client_certificate_auth(&for_certs.0).map_err(Failed::from),
    ));
    let for_edges = shared.clone();
    trials.push(Trial::test("edge_cases_agree_with_libpq", move || {
        edge_cases(&for_edges.0, &for_edges.1).map_err(Failed::from)
    }));
    trials.push(Trial::test("rotated_password_is_refetched_once", || {
        rotated_password().map_err(Failed::from)
    }));
    let for_system = shared.clone();
    trials.push(Trial::test(
        "sslrootcert_system_this_library_alone",
        move || system_roots(&for_system.0).map_err(Failed::from),
    ));
    trials.push(Trial::test(
        "ping_json_reports_what_was_verified",
        move || ping_reports_verification(&shared.0).map_err(Failed::from),
    ));
    libtest_mimic::run(&args, trials).exit();
}

fn tls_server(factory: &CertFactory, hba: &str, client_ca: bool) -> Result<PgServer, String> {
    let pem = factory
        .server(ServerCertKind::Good)
        .map_err(|e| e.to_string())?;
    let profile = Profile {
        name: "extra".into(),
        tls: Some(TlsFiles {
            cert_pem: pem.cert,
            key_pem: pem.key,
            client_ca_pem: client_ca.then(|| factory.root_pem().to_string()),
        }),
        hba: vec![hba.to_string()],
    };
    PgServer::start(&profile).map_err(|e| e.to_string())
}

/// `cert` authentication: with the client certificate both connect over TLS; without it,
/// both fail the same way.
fn client_certificate_auth(factory: &CertFactory) -> Result<(), String> {
    let server = tls_server(factory, "hostssl all all 127.0.0.1/32 cert", true)?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let client = factory.client(server.user()).map_err(|e| e.to_string())?;
    let (crt, key, root) = (
        dir.path().join("client.crt"),
        dir.path().join("client.key"),
        dir.path().join("root.crt"),
    );
    std::fs::write(&crt, &client.cert).map_err(|e| e.to_string())?;
    std::fs::write(&key, &client.key).map_err(|e| e.to_string())?;
    std::fs::write(&root, factory.root_pem()).map_err(|e| e.to_string())?;
    // libpq refuses a private key that others can read.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let base = format!(
        "host=localhost port={} user={} dbname=postgres sslmode=verify-full sslrootcert={}",
        server.port(),
        server.user(),
        root.display()
    );
    let with_cert = format!("{base} sslcert={} sslkey={}", crt.display(), key.display());
    for (conninfo, expected) in [(with_cert.as_str(), Some("tls")), (base.as_str(), None)] {
        let (ours, ours_message) =
            runtime.block_on(matrix::run_ours(conninfo, "unused", dir.path()));
        let libpq =
            tea_pgcloud::conformance::oracle::run(&tea_pgcloud::conformance::oracle::Attempt {
                conninfo,
                password: None,
                home: dir.path(),
            })
            .map_err(|e| e.to_string())?;
        if !matrix::outcomes_agree(ours, libpq.outcome) {
            return Err(format!(
                "{conninfo}: ours {ours} ({ours_message:?}) but libpq {} ({:?})",
                libpq.outcome, libpq.message
            ));
        }
        if let Some(expected) = expected
            && ours.as_str() != expected
        {
            return Err(format!(
                "{conninfo}: expected {expected}, got {ours} ({ours_message:?})"
            ));
        }
    }
    Ok(())
}

/// What the matrix's cases leave out: several hosts (libpq moves on only when a connection cannot be
/// opened), wrong passwords under every sslmode (the allow / prefer retries), a unix socket,
/// an error after login, channel binding.
fn edge_cases(factory: &CertFactory, files: &ClientFiles) -> Result<(), String> {
    let plain = common::plain_server("edge-plain");
    let tls = tls_server(factory, "host all all 127.0.0.1/32 scram-sha-256", false)?;
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = dir.path().join("root.crt");
    std::fs::write(&root, factory.root_pem()).map_err(|e| e.to_string())?;
    let _ = files;
    let (a, b, user) = (plain.port(), tls.port(), tls.user());
    let right = |server: &PgServer| server.password().to_string();
    let mut cases: Vec<(String, String)> = vec![
        (
            format!(
                "host=127.0.0.1,127.0.0.1 port={refused},{b} user={user} dbname=postgres sslmode=require"
            ),
            right(&tls),
        ),
        (
            format!(
                "host=127.0.0.1,127.0.0.1 port={a},{b} user={user} dbname=postgres sslmode=require"
            ),
            right(&plain),
        ),
        (
            format!(
                "host=wrong.example,localhost hostaddr=127.0.0.1,127.0.0.1 port={b},{b} user={user} dbname=postgres sslmode=verify-full sslrootcert={}",
                root.display()
            ),
            right(&tls),
        ),
        (
            format!("host=127.0.0.1 port={b} user={user} dbname=no_such_db sslmode=prefer"),
            right(&tls),
        ),
        (
            format!(
                "host=127.0.0.1 port={a} user={user} dbname=postgres sslmode=disable channel_binding=require"
            ),
            right(&plain),
        ),
        (
            format!(
                "host=127.0.0.1 port={b} user={user} dbname=postgres sslmode=require channel_binding=require"
            ),
            right(&tls),
        ),
    ];
    // An sslcert path where something exists but is no certificate file (a device that never
    // ends, a directory, an empty file): libpq refuses the TLS attempt ("could not read
    // certificate file"), so prefer goes on in plain text and the stronger modes fail. Only a
    // path where nothing exists means "no client certificate".
    let client = factory.client(user).map_err(|e| e.to_string())?;
    let key = dir.path().join("client.key");
    std::fs::write(&key, &client.key).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "").map_err(|e| e.to_string())?;
    let not_certs = [
        "/dev/zero".to_string(),
        dir.path().display().to_string(),
        empty.display().to_string(),
        dir.path().join("absent.crt").display().to_string(),
    ];
    for cert in &not_certs {
        for mode in ["prefer", "require", "verify-full"] {
            cases.push((
                format!(
                    "host=localhost port={b} user={user} dbname=postgres sslmode={mode} sslrootcert={} sslcert={cert} sslkey={}",
                    root.display(),
                    key.display()
                ),
                right(&tls),
            ));
        }
    }
    // A unix socket ignores sslmode=require (native launcher only: a container's socket is not
    // on the host).
    if let Some(socket) = tls.socket_dir() {
        cases.push((
            format!(
                "host={} port={b} user={user} dbname=postgres sslmode=require",
                socket.display()
            ),
            right(&tls),
        ));
    }
    for mode in [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ] {
        for port in [a, b] {
            cases.push((
                format!(
                    "host=localhost port={port} user={user} dbname=postgres sslmode={mode} sslrootcert={}",
                    root.display()
                ),
                "wrong-password".to_string(),
            ));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    for (conninfo, password) in &cases {
        let (ours, ours_message) =
            runtime.block_on(matrix::run_ours(conninfo, password, dir.path()));
        let libpq =
            tea_pgcloud::conformance::oracle::run(&tea_pgcloud::conformance::oracle::Attempt {
                conninfo,
                password: Some(password),
                home: dir.path(),
            })
            .map_err(|e| e.to_string())?;
        if !matrix::outcomes_agree(ours, libpq.outcome) {
            problems.push(format!(
                "{conninfo}: ours {ours} ({ours_message:?}) but libpq {} ({:?})",
                libpq.outcome, libpq.message
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// A secrets backend whose password can be changed under the cache, counting fetches.
#[derive(Debug, Default)]
struct Rotating {
    password: std::sync::Mutex<String>,
    fetches: std::sync::atomic::AtomicUsize,
}

impl tea_pgcloud::secrets::SecretsBackend for Rotating {
    fn name(&self) -> &'static str {
        "env"
    }

    fn get<'a>(&'a self, key: &'a str) -> tea_pgcloud::secrets::SecretFuture<'a> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let value = (key == "TEA_password")
            .then(|| tea_pgcloud::secret::Secret::new(self.password.lock().expect("lock").clone()));
        Box::pin(async move { Ok(value) })
    }
}

/// The server's password rotates while the cache still holds the old one: the next connect
/// fails once, drops the cache, fetches the new password and connects, with one extra fetch.
/// A wrong password that does not change causes exactly one refetch and then fails.
fn rotated_password() -> Result<(), String> {
    use std::sync::atomic::Ordering;
    use tea_pgcloud::credentials::Credentials;
    use tea_pgcloud::secrets::{CachedSecrets, DEFAULT_TTL, SystemClock};

    let server = common::plain_server("rotation");
    let backend = Arc::new(Rotating::default());
    *backend.password.lock().map_err(|e| e.to_string())? = server.password().to_string();
    let cache = CachedSecrets::new(backend.clone(), DEFAULT_TTL, Arc::new(SystemClock));
    let env = tea_pgcloud::env::MapEnv::new();
    let yaml = format!(
        "host: 127.0.0.1\nport: {}\nuser: {}\ndatabase: postgres\nsslmode: disable\ncredentials:\n  source: env\n  prefix: TEA_\n",
        server.port(),
        server.user()
    );
    let config =
        tea_pgcloud::config::load_str(&yaml, "rotation.yaml", &env).map_err(|e| e.to_string())?;
    let plan = tea_pgcloud::provider::plan(&config, &env).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let credentials = Credentials::builder(plan, Arc::new(env))
            .secrets(cache)
            .build()
            .await
            .map_err(|e| format!("credentials: {e}"))?;
        credentials
            .connect()
            .await
            .map_err(|e| format!("first connect: {e}"))?;
        let after_first = backend.fetches.load(Ordering::SeqCst);
        credentials
            .connect()
            .await
            .map_err(|e| format!("cached connect: {e}"))?;
        if backend.fetches.load(Ordering::SeqCst) != after_first {
            return Err("the second connect fetched again instead of using the cache".to_string());
        }
        let rotated = "rotated-Pw-2";
        server
            .admin_sql(&format!(
                "ALTER ROLE {} PASSWORD '{rotated}'",
                server.user()
            ))
            .map_err(|e| e.to_string())?;
        *backend.password.lock().map_err(|e| e.to_string())? = rotated.to_string();
        credentials
            .connect()
            .await
            .map_err(|e| format!("connect after rotation: {e}"))?;
        let after_rotation = backend.fetches.load(Ordering::SeqCst);
        if after_rotation != after_first + 1 {
            return Err(format!(
                "expected one refetch after the rotation, saw {}",
                after_rotation - after_first
            ));
        }
        *backend.password.lock().map_err(|e| e.to_string())? = "wrong".to_string();
        server
            .admin_sql(&format!(
                "ALTER ROLE {} PASSWORD 'other-Pw-3'",
                server.user()
            ))
            .map_err(|e| e.to_string())?;
        credentials
            .secrets()
            .ok_or("the stage holds no secrets cache")?
            .invalidate()
            .await;
        match credentials.connect().await {
            Ok(_) => Err("a wrong password connected".to_string()),
            Err(e) if e.class() != tea_pgcloud::error::ErrorClass::AuthFailed => {
                Err(format!("expected auth-failed, got {e}"))
            }
            Err(_) => {
                let spent = backend.fetches.load(Ordering::SeqCst) - after_rotation;
                if spent == 2 {
                    Ok(())
                } else {
                    Err(format!(
                        "expected the fetch and one refetch, saw {spent} fetches"
                    ))
                }
            }
        }
    })
}

/// `sslrootcert=system` needs libpq 16, so libpq 15 cannot be the oracle: this library alone.
/// The OS store does not hold the test CA, so verify-full fails as untrusted; a weaker mode is
/// a configuration error, as libpq 16+ says.
fn system_roots(factory: &CertFactory) -> Result<(), String> {
    let server = tls_server(factory, "hostssl all all 127.0.0.1/32 scram-sha-256", false)?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let conninfo = |mode: &str| {
        format!(
            "host=localhost port={} user={} dbname=postgres sslmode={mode} sslrootcert=system",
            server.port(),
            server.user()
        )
    };
    for (mode, expected) in [("verify-full", "untrusted-cert"), ("require", "config")] {
        let (ours, message) = runtime.block_on(matrix::run_ours(
            &conninfo(mode),
            server.password(),
            dir.path(),
        ));
        if ours.as_str() != expected {
            return Err(format!(
                "sslmode={mode} sslrootcert=system: expected {expected}, got {ours} ({message:?})"
            ));
        }
    }
    Ok(())
}

/// `ping --json` against a TLS server: `verified: full` under verify-full with the right root,
/// `verified: none` under require without one.
fn ping_reports_verification(factory: &CertFactory) -> Result<(), String> {
    let server = tls_server(factory, "hostssl all all 127.0.0.1/32 scram-sha-256", false)?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = dir.path().join("root.crt");
    std::fs::write(&root, factory.root_pem()).map_err(|e| e.to_string())?;
    let cases = [
        ("verify-full", Some(&root), "full"),
        ("require", None, "none"),
    ];
    for (mode, rootcert, verified) in cases {
        let mut yaml = format!(
            "host: localhost\nport: {}\nuser: {}\ndatabase: postgres\nsslmode: {mode}\ncredentials:\n  source: env\n  prefix: TEA_\n",
            server.port(),
            server.user()
        );
        if let Some(path) = rootcert {
            yaml.push_str(&format!("sslrootcert: {}\n", path.display()));
        }
        let file = dir.path().join(format!("{mode}.yaml"));
        std::fs::write(&file, yaml).map_err(|e| e.to_string())?;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tea-pgcloud"))
            .args(["ping", "--json"])
            .arg(&file)
            .env_clear()
            .env("HOME", dir.path())
            .env("TEA_PASSWORD", server.password())
            .output()
            .map_err(|e| e.to_string())?;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "{mode}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        if out.status.code() != Some(0) || report["connected"] != true {
            return Err(format!("{mode}: not connected: {report}"));
        }
        if report["tls"]["verified"] != verified {
            return Err(format!("{mode}: expected verified {verified}: {report}"));
        }
        // A self-hosted primary: libpq's `any`, and what the server reported at start-up.
        let session = &report["session"];
        if session["target_session_attrs"] != "any"
            || session["in_hot_standby"] != false
            || session["default_transaction_read_only"] != false
        {
            return Err(format!(
                "{mode}: the session is not a plain primary's: {report}"
            ));
        }
        if String::from_utf8_lossy(&out.stdout).contains(server.password()) {
            return Err(format!("{mode}: the password appears in the report"));
        }
    }
    Ok(())
}
