//! libpq options this crate honours, checked on a real server: what the server sees.

mod common;

use common::agreement::Agreement;

use std::sync::Arc;

use tea_pgcloud::credentials::Credentials;
use tea_pgcloud::env::MapEnv;

async fn shown(connection_string: &str, setting: &str) -> String {
    let plan = common::plan_of(&format!("connection_string: \"{connection_string}\"\n"));
    let connected = Credentials::for_plan(plan, Arc::new(MapEnv::new()))
        .await
        .expect("a credentials stage")
        .connect()
        .await
        .expect("connects");
    connected
        .client
        .query_one(&format!("SHOW {setting}"), &[])
        .await
        .expect("SHOW")
        .get(0)
}

#[test]
fn application_names_and_the_client_encoding_reach_the_server() {
    let server = common::plain_server("libpq-options");
    let base = format!(
        "host=127.0.0.1 port={} user={} password={} dbname=postgres sslmode=disable",
        server.port(),
        server.user(),
        server.password()
    );
    common::block_on(async {
        // libpq: fallback_application_name applies when application_name is not set ...
        let fallback = format!("{base} fallback_application_name=tea-fallback");
        assert_eq!(shown(&fallback, "application_name").await, "tea-fallback");
        // ... and application_name wins when both are.
        let both = format!("{fallback} application_name=tea-app");
        assert_eq!(shown(&both, "application_name").await, "tea-app");
        // The honoured client_encoding values are the encoding the client speaks.
        for encoding in ["UTF8", "utf8", "UNICODE"] {
            let with = format!("{base} client_encoding={encoding}");
            assert_eq!(shown(&with, "client_encoding").await, "UTF8", "{encoding}");
        }
    });
}

/// What a connection came to: `tls TLSv1.3`, `plain`, or the error class (no `HOME`).
fn ours(connection_string: &str, password: &str) -> String {
    outcome_of(connection_string, Some(password), None)
}

/// The same through libpq (psql), with an empty `HOME`.
fn libpq(connection_string: &str, password: &str, home: &std::path::Path) -> String {
    libpq_outcome(connection_string, Some(password), home)
}

/// `ssl_min_protocol_version` / `ssl_max_protocol_version` on the client, against a server
/// limited three ways, through this crate and through libpq 15: the same outcome and the same
/// TLS version in every case.
#[test]
fn tls_protocol_bounds_agree_with_libpq() {
    use tea_pgcloud::conformance::certs::CertFactory;
    use tea_pgcloud::conformance::launcher::PgServer;
    let factory = CertFactory::new().expect("certs");
    let server = PgServer::start_tls(
        "tls-versions",
        &factory,
        &["hostssl all all 127.0.0.1/32 scram-sha-256"],
        false,
    );
    let home = tempfile::tempdir().expect("an empty HOME");
    let base = format!(
        "host=127.0.0.1 port={} user={} dbname=postgres sslmode=require",
        server.port(),
        server.user()
    );
    let bounds = ["", "TLSv1.2", "tlsv1.3", "TLSv1.3", "TLSv9"];
    let mut agreement = Agreement::default();
    for (server_min, server_max) in [("TLSv1.2", ""), ("TLSv1.2", "TLSv1.2"), ("TLSv1.3", "")] {
        server
            .admin_sql(&format!(
                "ALTER SYSTEM SET ssl_min_protocol_version = '{server_min}'; \
                 ALTER SYSTEM SET ssl_max_protocol_version = '{server_max}'; \
                 SELECT pg_reload_conf();"
            ))
            .expect("server bounds");
        // A reload takes effect asynchronously: wait until a new session sees it.
        let mut applied = false;
        for _ in 0..50 {
            let shown = server
                .admin_sql("SHOW ssl_min_protocol_version")
                .expect("SHOW");
            if shown.contains(server_min) {
                applied = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(
            applied,
            "the server took its bounds {server_min}..{server_max}"
        );
        for min in bounds {
            for max in &bounds[..4] {
                let mut conninfo = base.clone();
                if !min.is_empty() {
                    conninfo.push_str(&format!(" ssl_min_protocol_version={min}"));
                }
                if !max.is_empty() {
                    conninfo.push_str(&format!(" ssl_max_protocol_version={max}"));
                }
                agreement.record(
                    &format!("server {server_min}..{server_max}, client min {min:?} max {max:?}"),
                    ours(&conninfo, server.password()),
                    libpq(&conninfo, server.password(), home.path()),
                );
            }
        }
    }
    assert_eq!(agreement.cases, 60);
    agreement.assert_all_agree_and_recorded(
        "tls-versions",
        "tests/libpq_options.rs tls_protocol_bounds_agree_with_libpq: ssl_min/max_protocol_version against a server limited three ways",
        &["tls TLSv1.2", "tls TLSv1.3", "config", "other"],
    );
}

/// The keepalive keywords, each with values libpq takes, clamps, or refuses (its integer
/// rules, the kernel's limits, `keepalives=0` turning the rest off), through this crate and
/// through libpq 15 against one plain server: the same outcome in every case.
#[test]
fn keepalive_options_agree_with_libpq() {
    let server = common::plain_server("keepalives");
    let home = tempfile::tempdir().expect("an empty HOME");
    let base = format!(
        "host=127.0.0.1 port={} user={} dbname=postgres sslmode=disable",
        server.port(),
        server.user()
    );
    let mut cases: Vec<String> = Vec::new();
    for value in ["1", "0", "''", "abc", "' 1'", "'1 '", "+1", "00"] {
        cases.push(format!("keepalives={value}"));
        cases.push(format!("keepalives={value} keepalives_idle=abc"));
    }
    for keyword in [
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
    ] {
        for value in ["30", "0", "-5", "abc", "' 7 '", "''", "99999999999", "200"] {
            cases.push(format!("{keyword}={value}"));
        }
    }
    let mut agreement = Agreement::default();
    for case in &cases {
        let conninfo = format!("{base} {case}");
        agreement.record(
            case,
            ours(&conninfo, server.password()),
            libpq(&conninfo, server.password(), home.path()),
        );
    }
    assert_eq!(agreement.cases, 48);
    agreement.assert_all_agree_and_recorded(
        "keepalives",
        "tests/libpq_options.rs keepalive_options_agree_with_libpq: keepalives, keepalives_idle/interval/count and tcp_user_timeout values",
        &["plain", "config", "other"],
    );
}

/// libpq's password file, through this crate and libpq 15 against one server whose role has a
/// password with `:` and `\` in it: matching, `*`, escapes, comments, CRLF, permissions, the
/// default `~/.pgpass`, and a password given elsewhere winning over the file.
#[test]
fn password_files_agree_with_libpq() {
    use std::os::unix::fs::PermissionsExt;
    let server = common::plain_server("pgpass");
    let password = r"pa:ss\word";
    server
        .admin_sql(&format!(
            "ALTER ROLE {} PASSWORD '{}'",
            server.user(),
            password.replace('\'', "''")
        ))
        .expect("a password with : and \\");
    let escaped = password.replace('\\', "\\\\").replace(':', "\\:");
    let (port, user) = (server.port(), server.user().to_string());
    let base = format!("host=127.0.0.1 port={port} user={user} dbname=postgres sslmode=disable");
    // (name, file text, mode, connection string extra, password given elsewhere)
    let cases: Vec<(&str, String, u32, &str)> = vec![
        (
            "exact",
            format!("127.0.0.1:{port}:postgres:{user}:{escaped}\n"),
            0o600,
            "",
        ),
        ("stars", format!("*:*:*:*:{escaped}\n"), 0o600, ""),
        (
            "crlf",
            format!("127.0.0.1:{port}:postgres:{user}:{escaped}\r\n"),
            0o600,
            "",
        ),
        (
            "no-newline",
            format!("*:{port}:*:{user}:{escaped}"),
            0o600,
            "",
        ),
        ("wrong-password", "*:*:*:*:nope\n".to_string(), 0o600, ""),
        ("other-port", format!("*:1:*:*:{escaped}\n"), 0o600, ""),
        (
            "other-database",
            format!("*:*:other:*:{escaped}\n"),
            0o600,
            "",
        ),
        (
            "localhost-is-not-127",
            format!("localhost:*:*:*:{escaped}\n"),
            0o600,
            "",
        ),
        ("comment", format!("#*:*:*:*:{escaped}\n"), 0o600, ""),
        (
            "first-match-wins",
            format!("*:*:*:*:nope\n*:*:*:*:{escaped}\n"),
            0o600,
            "",
        ),
        (
            "skips-non-matching",
            format!("other:*:*:*:nope\n*:*:*:*:{escaped}\n"),
            0o600,
            "",
        ),
        (
            "unescaped-colon-ends",
            format!("*:*:*:*:{password}\n"),
            0o600,
            "",
        ),
        ("group-readable", format!("*:*:*:*:{escaped}\n"), 0o640, ""),
        ("world-readable", format!("*:*:*:*:{escaped}\n"), 0o604, ""),
        (
            "explicit-passfile",
            format!("*:*:*:*:{escaped}\n"),
            0o600,
            "passfile=PASSFILE",
        ),
        (
            "explicit-missing",
            format!("*:*:*:*:{escaped}\n"),
            0o600,
            "passfile=/nonexistent/pgpass",
        ),
    ];
    let mut agreement = Agreement::default();
    for (name, text, mode, extra) in &cases {
        let home = tempfile::tempdir().expect("a HOME");
        let file = if extra.contains("PASSFILE") {
            home.path().join("elsewhere.pgpass")
        } else {
            home.path().join(".pgpass")
        };
        std::fs::write(&file, text).expect("the file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode)).expect("chmod");
        let extra = extra.replace("PASSFILE", &file.display().to_string());
        let conninfo = format!("{base} {extra}");
        agreement.record(
            name,
            ours_with_home(&conninfo, None, home.path()),
            libpq_without_password(&conninfo, home.path()),
        );
    }
    // A password given in the connection string wins over the file.
    let home = tempfile::tempdir().expect("a HOME");
    let file = home.path().join(".pgpass");
    std::fs::write(&file, "*:*:*:*:nope\n").expect("the file");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let given = format!("{base} password='{}'", password.replace('\\', "\\\\"));
    let (a, b) = (
        ours_with_home(&given, None, home.path()),
        libpq_without_password(&given, home.path()),
    );
    assert_eq!(a, b, "a given password");
    assert_eq!(b, "plain");
    agreement.assert_all_agree_and_recorded(
        "passfile",
        "tests/libpq_options.rs password_files_agree_with_libpq: passfile and ~/.pgpass matching, escapes and permissions",
        &["plain", "auth-failed"],
    );
}

/// [`ours`] with `HOME` set (the default password file) and an optional password.
fn ours_with_home(
    connection_string: &str,
    password: Option<&str>,
    home: &std::path::Path,
) -> String {
    outcome_of(connection_string, password, Some(home))
}

/// The outcome through this crate: `tls VERSION`, `plain`, or the error class.
fn outcome_of(
    connection_string: &str,
    password: Option<&str>,
    home: Option<&std::path::Path>,
) -> String {
    let env = match home {
        Some(home) => MapEnv::new().with_var("HOME", home.display().to_string()),
        None => MapEnv::new(),
    };
    outcome_in(connection_string, password, &env)
}

/// [`outcome_of`] in a given environment (its `HOME`, and the files it says exist).
fn outcome_in(connection_string: &str, password: Option<&str>, env: &MapEnv) -> String {
    use tea_pgcloud::connect::{Login, connect};
    let env = env.clone();
    let yaml = format!(
        "connection_string: \"{}\"\n",
        connection_string.replace('\\', "\\\\")
    );
    let config = tea_pgcloud::config::load_str(&yaml, "c.yaml", &env).expect("loads");
    let plan = match tea_pgcloud::provider::plan(&config, &env) {
        Ok(plan) => plan,
        Err(e) => return e.class().as_str().to_string(),
    };
    let login = Login::new(None, password.map(tea_pgcloud::secret::Secret::new));
    match common::block_on(connect(&plan, &login, &env)) {
        Ok(c) => match c.tls {
            Some(tls) => format!("tls {}", tls.version),
            None => "plain".to_string(),
        },
        Err(e) => e.class().as_str().to_string(),
    }
}

/// [`libpq`] with no `PGPASSWORD`: the password comes from the connection string or the file.
fn libpq_without_password(connection_string: &str, home: &std::path::Path) -> String {
    libpq_outcome(connection_string, None, home)
}

/// The outcome through libpq (psql): `tls VERSION`, `plain`, or the class of its error.
fn libpq_outcome(
    connection_string: &str,
    password: Option<&str>,
    home: &std::path::Path,
) -> String {
    use tea_pgcloud::conformance::Outcome;
    use tea_pgcloud::conformance::oracle::{Attempt, run};
    let result = run(&Attempt {
        conninfo: connection_string,
        password,
        home,
    })
    .expect("psql runs");
    match result.outcome {
        Outcome::Tls => format!("tls {}", result.ssl_version.unwrap_or_default()),
        Outcome::Plain => "plain".to_string(),
        Outcome::Error(class) => class.as_str().to_string(),
    }
}

/// `requirepeer` over the server's unix socket (and ignored over TCP, as libpq ignores it),
/// through this crate and libpq 15: the same outcome in every case.
#[test]
fn requirepeer_agrees_with_libpq() {
    let server = common::plain_server("requirepeer");
    let socket = server
        .socket_dir()
        .expect("a unix socket")
        .display()
        .to_string();
    let home = tempfile::tempdir().expect("an empty HOME");
    // The server's operating-system user, as the server itself says.
    let owner = server
        .admin_sql("SELECT pg_catalog.current_setting('data_directory')")
        .ok()
        .and_then(|dir| std::fs::metadata(dir.trim()).ok())
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .and_then(|uid| {
            std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
                p.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.get(2) == Some(&uid.to_string().as_str())).then(|| f[0].to_string())
                })
            })
        })
        .expect("the server's user");
    let over_socket = format!(
        "host={socket} port={} user={} dbname=postgres",
        server.port(),
        server.user()
    );
    let over_tcp = format!(
        "host=127.0.0.1 port={} user={} dbname=postgres sslmode=disable",
        server.port(),
        server.user()
    );
    let cases = [
        (format!("{over_socket} requirepeer={owner}"), "plain"),
        (format!("{over_socket} requirepeer=nobody"), "other"),
        (format!("{over_socket} requirepeer=''"), "plain"),
        (format!("{over_tcp} requirepeer=nobody"), "plain"),
    ];
    let mut agreement = Agreement::default();
    for (name, (conninfo, expected)) in ["owner", "nobody", "empty", "tcp"].iter().zip(&cases) {
        let a = ours_with_home(conninfo, Some(server.password()), home.path());
        let b = libpq(conninfo, server.password(), home.path());
        assert_eq!(&b, expected, "{conninfo}: libpq");
        agreement.record(name, a, b);
    }
    agreement.assert_all_agree_and_recorded(
        "requirepeer",
        "tests/libpq_options.rs requirepeer_agrees_with_libpq: requirepeer over the unix socket (the server's user, another, empty) and over TCP",
        &["plain", "other"],
    );
}

/// The name OpenSSL's hashed directory lookup gives a revocation list (`openssl crl -hash`),
/// for building `sslcrldir` directories independently of this crate's own hash.
fn openssl_crl_hash(pem: &str, dir: &std::path::Path) -> String {
    let file = dir.join("hash-me.crl");
    std::fs::write(&file, pem).expect("a CRL file");
    let out = std::process::Command::new("openssl")
        .args(["crl", "-hash", "-noout", "-in"])
        .arg(&file)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl crl -hash: {out:?}");
    std::fs::remove_file(&file).expect("removed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Revocation lists (`sslcrl`, `sslcrldir`, the default `~/.postgresql/root.crl`) against a
/// server whose certificate comes through an intermediate CA and one signed by the root,
/// through this crate and libpq 15: revoked leaf and intermediate, a missing list for any
/// certificate of the chain (the root's included), lists out of date, another CA's list,
/// unreadable files (which libpq ignores), hashed directories built by `openssl crl -hash`,
/// certificates inside the list file, and the modes that verify nothing. The same outcome in
/// every case.
#[test]
fn revocation_lists_agree_with_libpq() {
    use tea_pgcloud::conformance::certs::{CertFactory, CrlWindow, IssuerKind, ServerCertKind};
    use tea_pgcloud::conformance::launcher::PgServer;
    let factory = CertFactory::new().expect("certs");
    let hba = ["hostssl all all 127.0.0.1/32 scram-sha-256"];
    let chained = factory
        .server(ServerCertKind::IntermediateChain)
        .expect("a chained certificate");
    let direct = factory.server(ServerCertKind::Good).expect("a certificate");
    let chain_server = PgServer::start_tls_serving("crl-chain", &factory, &chained, &hba, false);
    let root_server = PgServer::start_tls_serving("crl-root", &factory, &direct, &hba, false);

    let files = tempfile::tempdir().expect("a directory");
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).expect("a file");
        path.display().to_string()
    };
    let crl = |issuer, revoked: &[&str], window| {
        factory
            .crl(issuer, revoked, window)
            .expect("a revocation list")
    };
    let root_ok = crl(IssuerKind::Root, &[], CrlWindow::Current);
    let inter_ok = crl(IssuerKind::Intermediate, &[], CrlWindow::Current);
    let inter_revokes_leaf = crl(
        IssuerKind::Intermediate,
        &[&chained.cert],
        CrlWindow::Current,
    );
    let root_revokes_inter = crl(
        IssuerKind::Root,
        &[factory.intermediate_pem()],
        CrlWindow::Current,
    );
    let root_revokes_leaf = crl(IssuerKind::Root, &[&direct.cert], CrlWindow::Current);
    let inter_expired = crl(IssuerKind::Intermediate, &[], CrlWindow::Expired);
    let inter_future = crl(IssuerKind::Intermediate, &[], CrlWindow::NotYetValid);
    let other_ok = crl(IssuerKind::OtherRoot, &[], CrlWindow::Current);
    let inter_renewed_ok = crl(IssuerKind::Intermediate, &[], CrlWindow::Renewed);
    let inter_renewed_revokes = crl(
        IssuerKind::Intermediate,
        &[&chained.cert],
        CrlWindow::Renewed,
    );

    let rootcert = write("root.crt", factory.root_pem());
    let other_rootcert = write("other-root.crt", factory.other_root_pem());
    let both_ok = write("both-ok.crl", &format!("{root_ok}{inter_ok}"));
    let leaf_revoked = write(
        "leaf-revoked.crl",
        &format!("{root_ok}{inter_revokes_leaf}"),
    );
    let inter_only = write("inter-only.crl", &inter_ok);
    let root_only = write("root-only.crl", &root_ok);
    let inter_revoked = write(
        "inter-revoked.crl",
        &format!("{root_revokes_inter}{inter_ok}"),
    );
    let stale = write("stale.crl", &format!("{root_ok}{inter_expired}"));
    let future = write("future.crl", &format!("{root_ok}{inter_future}"));
    let stale_and_current = write(
        "stale-and-current.crl",
        &format!("{root_ok}{inter_expired}{inter_ok}"),
    );
    let other = write("other.crl", &other_ok);
    let later_revokes = write(
        "later-revokes.crl",
        &format!("{root_ok}{inter_ok}{inter_renewed_revokes}"),
    );
    let earlier_revokes = write(
        "earlier-revokes.crl",
        &format!("{root_ok}{inter_revokes_leaf}{inter_renewed_ok}"),
    );
    let garbage = write("garbage.crl", "not a revocation list\n");
    let with_root = write(
        "with-root.crl",
        &format!("{}{root_ok}{inter_ok}", factory.root_pem()),
    );
    let direct_revoked = write("direct-revoked.crl", &root_revokes_leaf);

    // Hashed directories, named by OpenSSL itself.
    let hashed = |name: &str, lists: &[(&str, u32)]| {
        let dir = files.path().join(name);
        std::fs::create_dir(&dir).expect("a directory");
        for (pem, index) in lists {
            let hash = openssl_crl_hash(pem, files.path());
            std::fs::write(dir.join(format!("{hash}.r{index}")), pem).expect("a list");
        }
        dir.display().to_string()
    };
    let dir_ok = hashed("dir-ok", &[(&root_ok, 0), (&inter_ok, 0)]);
    let dir_revoked = hashed("dir-revoked", &[(&root_ok, 0), (&inter_revokes_leaf, 0)]);
    let dir_gap = hashed("dir-gap", &[(&root_ok, 0), (&inter_ok, 1)]);
    let dir_second = hashed(
        "dir-second",
        &[(&root_ok, 0), (&inter_expired, 0), (&inter_ok, 1)],
    );
    let dir_unhashed = files.path().join("dir-unhashed");
    std::fs::create_dir(&dir_unhashed).expect("a directory");
    std::fs::write(dir_unhashed.join("root.crl"), &root_ok).expect("a list");
    std::fs::write(dir_unhashed.join("inter.crl"), &inter_ok).expect("a list");
    let dir_unhashed = dir_unhashed.display().to_string();

    let empty_home = tempfile::tempdir().expect("an empty HOME");
    let crl_home = tempfile::tempdir().expect("a HOME with root.crl");
    std::fs::create_dir(crl_home.path().join(".postgresql")).expect(".postgresql");
    std::fs::write(
        crl_home.path().join(".postgresql/root.crl"),
        format!("{root_ok}{inter_revokes_leaf}"),
    )
    .expect("root.crl");

    let base = |server: &PgServer, mode: &str| {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user={} dbname=postgres sslmode={mode}",
            server.port(),
            server.user()
        )
    };
    let chain_full = base(&chain_server, "verify-full");
    let root_full = base(&root_server, "verify-full");
    let r = format!("sslrootcert={rootcert}");
    // (case, connection string, HOME with the default root.crl)
    let cases: Vec<(&str, String, bool)> = vec![
        ("no lists", format!("{chain_full} {r}"), false),
        (
            "root and intermediate lists",
            format!("{chain_full} {r} sslcrl={both_ok}"),
            false,
        ),
        (
            "leaf revoked",
            format!("{chain_full} {r} sslcrl={leaf_revoked}"),
            false,
        ),
        (
            "intermediate list only",
            format!("{chain_full} {r} sslcrl={inter_only}"),
            false,
        ),
        (
            "root list only",
            format!("{chain_full} {r} sslcrl={root_only}"),
            false,
        ),
        (
            "intermediate revoked",
            format!("{chain_full} {r} sslcrl={inter_revoked}"),
            false,
        ),
        (
            "stale list",
            format!("{chain_full} {r} sslcrl={stale}"),
            false,
        ),
        (
            "list not yet valid",
            format!("{chain_full} {r} sslcrl={future}"),
            false,
        ),
        (
            "a stale and a current list",
            format!("{chain_full} {r} sslcrl={stale_and_current}"),
            false,
        ),
        (
            "another CA's list",
            format!("{chain_full} {r} sslcrl={other}"),
            false,
        ),
        (
            "a later list revokes",
            format!("{chain_full} {r} sslcrl={later_revokes}"),
            false,
        ),
        (
            "an earlier list revokes",
            format!("{chain_full} {r} sslcrl={earlier_revokes}"),
            false,
        ),
        (
            "missing list file",
            format!(
                "{chain_full} {r} sslcrl={}/none.crl",
                files.path().display()
            ),
            false,
        ),
        (
            "list file without a list",
            format!("{chain_full} {r} sslcrl={garbage}"),
            false,
        ),
        ("empty sslcrl", format!("{chain_full} {r} sslcrl=''"), false),
        (
            "verify-ca, revoked",
            format!(
                "{} {r} sslcrl={leaf_revoked}",
                base(&chain_server, "verify-ca")
            ),
            false,
        ),
        (
            "require with a root file, revoked",
            format!(
                "{} {r} sslcrl={leaf_revoked}",
                base(&chain_server, "require")
            ),
            false,
        ),
        (
            "require without a root file, revoked",
            format!("{} sslcrl={leaf_revoked}", base(&chain_server, "require")),
            false,
        ),
        (
            "prefer with a root file, revoked",
            format!(
                "{} {r} sslcrl={leaf_revoked}",
                base(&chain_server, "prefer")
            ),
            false,
        ),
        (
            "roots in the list file",
            format!("{chain_full} sslrootcert={other_rootcert} sslcrl={with_root}"),
            false,
        ),
        (
            "hashed directory",
            format!("{chain_full} {r} sslcrldir={dir_ok}"),
            false,
        ),
        (
            "hashed directory, leaf revoked",
            format!("{chain_full} {r} sslcrldir={dir_revoked}"),
            false,
        ),
        (
            "hashed directory with a gap",
            format!("{chain_full} {r} sslcrldir={dir_gap}"),
            false,
        ),
        (
            "hashed directory, stale .r0 and current .r1",
            format!("{chain_full} {r} sslcrldir={dir_second}"),
            false,
        ),
        (
            "directory without hashed names",
            format!("{chain_full} {r} sslcrldir={dir_unhashed}"),
            false,
        ),
        (
            "missing directory",
            format!("{chain_full} {r} sslcrldir={}/none", files.path().display()),
            false,
        ),
        (
            "directory list",
            format!(
                "{chain_full} {r} sslcrldir={}/none:{dir_ok}",
                files.path().display()
            ),
            false,
        ),
        (
            "missing file and a revoking directory",
            format!(
                "{chain_full} {r} sslcrl={}/none.crl sslcrldir={dir_revoked}",
                files.path().display()
            ),
            false,
        ),
        (
            "good file and a revoking directory",
            format!("{chain_full} {r} sslcrl={both_ok} sslcrldir={dir_revoked}"),
            false,
        ),
        (
            "default root.crl, revoked",
            format!("{chain_full} {r}"),
            true,
        ),
        (
            "default root.crl and empty sslcrl",
            format!("{chain_full} {r} sslcrl=''"),
            true,
        ),
        (
            "sslcrl instead of the default",
            format!("{chain_full} {r} sslcrl={both_ok}"),
            true,
        ),
        (
            "sslcrldir instead of the default",
            format!("{chain_full} {r} sslcrldir={dir_ok}"),
            true,
        ),
        (
            "root-signed, root list",
            format!("{root_full} {r} sslcrl={root_only}"),
            false,
        ),
        (
            "root-signed, revoked",
            format!("{root_full} {r} sslcrl={direct_revoked}"),
            false,
        ),
        (
            "root-signed, intermediate list only",
            format!("{root_full} {r} sslcrl={inter_only}"),
            false,
        ),
    ];
    let mut agreement = Agreement::default();
    for (name, conninfo, default_crl) in &cases {
        let home = if *default_crl {
            crl_home.path()
        } else {
            empty_home.path()
        };
        let server = if conninfo.contains(&format!("port={} ", root_server.port())) {
            &root_server
        } else {
            &chain_server
        };
        // The root files exist for this crate's planner too.
        let env = MapEnv::new()
            .with_var("HOME", home.display().to_string())
            .with_file(&rootcert)
            .with_file(&other_rootcert);
        agreement.record(
            name,
            outcome_in(conninfo, Some(server.password()), &env),
            libpq(conninfo, server.password(), home),
        );
    }
    assert_eq!(agreement.cases, 36);
    agreement.assert_all_agree_and_recorded(
        "revocation-lists",
        "tests/libpq_options.rs revocation_lists_agree_with_libpq: sslcrl, sslcrldir and ~/.postgresql/root.crl against a chained and a root-signed server certificate",
        &["tls TLSv1.3", "untrusted-cert"],
    );
}

/// Client keys encrypted by `openssl` in PKCS#8 (PBES2 with AES, 3DES, scrypt) and in the
/// legacy PEM form (AES-128/256, DES-EDE3), and a plain key, each with the right, a wrong, an
/// empty and no `sslpassword`, against a server that requires a client certificate, through
/// this crate and libpq 15: the same outcome in every case.
#[test]
fn encrypted_client_keys_agree_with_libpq() {
    use std::os::unix::fs::PermissionsExt;
    use tea_pgcloud::conformance::certs::CertFactory;
    use tea_pgcloud::conformance::launcher::PgServer;
    let factory = CertFactory::new().expect("certs");
    let server = PgServer::start_tls(
        "sslpassword",
        &factory,
        &["hostssl all all 127.0.0.1/32 cert"],
        true,
    );
    let client = factory.client(server.user()).expect("a client certificate");
    let files = tempfile::tempdir().expect("a directory");
    let home = tempfile::tempdir().expect("an empty HOME");
    let cert = files.path().join("client.crt");
    std::fs::write(&cert, &client.cert).expect("the certificate");
    let plain = files.path().join("plain.key");
    std::fs::write(&plain, &client.key).expect("the key");
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let passphrase = "s3cret-pass";
    let forms: [(&str, &[&str]); 6] = [
        ("pkcs8-aes256", &["pkcs8", "-topk8", "-v2", "aes-256-cbc"]),
        ("pkcs8-des3", &["pkcs8", "-topk8", "-v2", "des3"]),
        ("pkcs8-scrypt", &["pkcs8", "-topk8", "-scrypt"]),
        ("legacy-aes128", &["ec", "-aes128"]),
        ("legacy-aes256", &["ec", "-aes256"]),
        ("legacy-des3", &["ec", "-des3"]),
    ];
    let mut keys = vec![("plain", plain.clone())];
    for (name, args) in forms {
        let path = files.path().join(format!("{name}.key"));
        let out = std::process::Command::new("openssl")
            .args(args)
            .arg("-in")
            .arg(&plain)
            .arg("-out")
            .arg(&path)
            .arg("-passout")
            .arg(format!("pass:{passphrase}"))
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "{name}: {out:?}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        keys.push((name, path));
    }
    let base = format!(
        "host=127.0.0.1 port={} user={} dbname=postgres sslmode=require sslcert={}",
        server.port(),
        server.user(),
        cert.display()
    );
    let passwords = [
        ("right", Some(passphrase)),
        ("wrong", Some("nope")),
        ("empty", Some("")),
        ("absent", None),
    ];
    let mut agreement = Agreement::default();
    for (key_name, key) in &keys {
        for (password_name, password) in passwords {
            let mut conninfo = format!("{base} sslkey={}", key.display());
            if let Some(password) = password {
                conninfo.push_str(&format!(" sslpassword='{password}'"));
            }
            // The certificate and key files exist for this crate's side too.
            let env = MapEnv::new()
                .with_var("HOME", home.path().display().to_string())
                .with_file(cert.display().to_string())
                .with_file(key.display().to_string());
            agreement.record(
                &format!("{key_name}, {password_name} passphrase"),
                outcome_in(&conninfo, Some(server.password()), &env),
                libpq(&conninfo, server.password(), home.path()),
            );
        }
    }
    assert_eq!(agreement.cases, 28);
    agreement.assert_all_agree_and_recorded(
        "sslpassword",
        "tests/libpq_options.rs encrypted_client_keys_agree_with_libpq: client keys encrypted by openssl (PKCS#8 PBES2, legacy PEM) with the right, a wrong, an empty and no sslpassword",
        &["tls TLSv1.3", "config"],
    );
}

/// libpq's service file (`service=NAME`, `~/.pg_service.conf` under HOME) through this crate
/// and libpq 15 against one plain server: what the file supplies, what the string overrides,
/// libpq's line rules (comments, CRLF, `[name]` with trailing text, a section that ends at
/// the next, other sections' errors unread), its errors (an unknown service or an empty name,
/// no file, `key = value`, an unknown keyword, a nested service), and a password in the file.
/// The same outcome in every case.
#[test]
fn service_files_agree_with_libpq() {
    let server = common::plain_server("service");
    let (port, user) = (server.port(), server.user().to_string());
    let section =
        format!("host=127.0.0.1\nport={port}\nuser={user}\ndbname=postgres\nsslmode=disable\n");
    // (name, file text or none, connection string, password given)
    let cases: Vec<(&str, Option<String>, String, bool)> = vec![
        (
            "from the file",
            Some(format!("[ltm]\n{section}")),
            "service=ltm".into(),
            true,
        ),
        (
            "the string wins",
            Some(format!("[ltm]\n{section}")),
            "service=ltm port=1".into(),
            true,
        ),
        (
            "the string's sslmode wins",
            Some(format!("[ltm]\n{section}")),
            "service=ltm sslmode=require".into(),
            true,
        ),
        (
            "sslmode from the file",
            Some(format!("[ltm]\n{}", section.replace("disable", "require"))),
            "service=ltm".into(),
            true,
        ),
        (
            "unknown service",
            Some(format!("[ltm]\n{section}")),
            "service=nope".into(),
            true,
        ),
        (
            "empty service name",
            Some(format!("[ltm]\n{section}")),
            "service=''".into(),
            true,
        ),
        ("no file", None, "service=ltm".into(), true),
        (
            "comments, blank lines, CRLF, indentation",
            Some(format!(
                "# catalog\r\n\r\n  [ltm]\r\n{}",
                section
                    .lines()
                    .map(|l| format!("\t{l}  \r\n"))
                    .collect::<String>()
            )),
            "service=ltm".into(),
            true,
        ),
        (
            "a header with trailing text",
            Some(format!("[ltm] production\n{section}")),
            "service=ltm".into(),
            true,
        ),
        (
            "the section ends at the next",
            Some(format!("[ltm]\n{section}[ltm]\nport=1\n")),
            "service=ltm".into(),
            true,
        ),
        (
            "other sections are not read",
            Some(format!(
                "[other]\ngarbage line\n[ltm-2]\nport=1\n[ltm]\n{section}"
            )),
            "service=ltm".into(),
            true,
        ),
        (
            "spaces around the equals sign",
            Some(format!("[ltm]\n{section}port = {port}\n")),
            "service=ltm".into(),
            true,
        ),
        (
            "an unknown keyword",
            Some(format!("[ltm]\n{section}colour=blue\n")),
            "service=ltm".into(),
            true,
        ),
        (
            "a nested service",
            Some(format!("[ltm]\nservice=other\n{section}")),
            "service=ltm".into(),
            true,
        ),
        (
            "a line without an equals sign",
            Some(format!("[ltm]\n{section}hostonly\n")),
            "service=ltm".into(),
            true,
        ),
        (
            "the password from the file",
            Some(format!("[ltm]\n{section}password={}\n", server.password())),
            "service=ltm".into(),
            false,
        ),
        (
            "a wrong password in the file",
            Some(format!("[ltm]\n{section}password=wrong\n")),
            "service=ltm".into(),
            false,
        ),
    ];
    let mut agreement = Agreement::default();
    for (name, text, conninfo, with_password) in &cases {
        let home = tempfile::tempdir().expect("a HOME");
        let file = home.path().join(".pg_service.conf");
        let mut env = MapEnv::new().with_var("HOME", home.path().display().to_string());
        if let Some(text) = text {
            std::fs::write(&file, text).expect("the service file");
            env = env.with_file_text(file.display().to_string(), text.clone());
        }
        let password = with_password.then(|| server.password());
        agreement.record(
            name,
            outcome_in(conninfo, password, &env),
            libpq_outcome(conninfo, password, home.path()),
        );
    }
    assert_eq!(agreement.cases, 17);
    agreement.assert_all_agree_and_recorded(
        "service",
        "tests/libpq_options.rs service_files_agree_with_libpq: ~/.pg_service.conf sections, line rules, errors and precedence",
        &["plain", "config", "unreachable"],
    );
}

/// libpq's `client_encoding=auto`: the locale's encoding. Under a UTF-8 locale this crate
/// honours it and the server sees UTF8, as it does from libpq 15 (psql) under the same locale;
/// under the C locale libpq sends SQL_ASCII, which this client cannot speak, and the plan
/// refuses it.
#[test]
fn client_encoding_auto_follows_the_locale_as_in_libpq() {
    let server = common::plain_server("client-encoding-auto");
    let conninfo = format!(
        "host=127.0.0.1 port={} user={} dbname=postgres sslmode=disable client_encoding=auto",
        server.port(),
        server.user()
    );
    let psql = |locale: &str| {
        let out = std::process::Command::new("psql")
            .env_clear()
            .env("LC_ALL", locale)
            .env("PGPASSWORD", server.password())
            .args([
                "-X",
                "-A",
                "-t",
                "-w",
                "-d",
                &conninfo,
                "-c",
                "SHOW client_encoding",
            ])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let ours = |locale: &str| {
        let env = Arc::new(MapEnv::new().with_var("LC_ALL", locale));
        let yaml = format!("connection_string: \"{conninfo}\"\n");
        let config = tea_pgcloud::config::load_str(&yaml, "c.yaml", env.as_ref()).expect("loads");
        let plan = match tea_pgcloud::provider::plan(&config, env.as_ref()) {
            Ok(plan) => plan,
            Err(e) => return Err(e.kind().as_str().to_string()),
        };
        common::block_on(async {
            let login = tea_pgcloud::connect::Login::new(
                None,
                Some(tea_pgcloud::secret::Secret::new(
                    server.password().to_string(),
                )),
            );
            let connected = tea_pgcloud::connect::connect(&plan, &login, env.as_ref())
                .await
                .expect("connects");
            Ok(connected
                .client
                .query_one("SHOW client_encoding", &[])
                .await
                .expect("SHOW")
                .get::<_, String>(0))
        })
    };
    assert_eq!(psql("C.UTF-8"), "UTF8");
    assert_eq!(ours("C.UTF-8"), Ok("UTF8".to_string()));
    assert_eq!(psql("C"), "SQL_ASCII");
    assert_eq!(ours("C"), Err("unsupported".to_string()));
}
