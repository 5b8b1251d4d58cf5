//! libpq options this crate honours, checked on a real server: what the server sees.

mod common;

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

/// Outcomes of the same cases through this crate and libpq, and where they differ.
#[derive(Default)]
struct Agreement {
    cases: usize,
    seen: std::collections::BTreeMap<String, usize>,
    disagreements: Vec<String>,
}

impl Agreement {
    fn record(&mut self, case: &str, ours: String, libpq: String) {
        self.cases += 1;
        *self.seen.entry(libpq.clone()).or_default() += 1;
        if ours != libpq {
            self.disagreements
                .push(format!("{case}: ours {ours}, libpq {libpq}"));
        }
    }

    /// Every case agreed, and libpq gave each of `outcomes` at least once (so agreeing is not
    /// a coincidence of one outcome).
    fn assert_all_agree(&self, outcomes: &[&str]) {
        for outcome in outcomes {
            assert!(
                self.seen.contains_key(*outcome),
                "no case gave {outcome}: {:?}",
                self.seen
            );
        }
        println!("libpq's outcomes: {:?}", self.seen);
        assert!(
            self.disagreements.is_empty(),
            "{} of {} cases disagree with libpq:\n{}",
            self.disagreements.len(),
            self.cases,
            self.disagreements.join("\n")
        );
    }
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
    agreement.assert_all_agree(&["tls TLSv1.2", "tls TLSv1.3", "config", "other"]);
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
    agreement.assert_all_agree(&["plain", "config", "other"]);
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
    agreement.assert_all_agree(&["plain", "auth-failed"]);
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
    use tea_pgcloud::connect::{Login, connect};
    let env = match home {
        Some(home) => MapEnv::new().with_var("HOME", home.display().to_string()),
        None => MapEnv::new(),
    };
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
    for (conninfo, expected) in &cases {
        let a = ours_with_home(conninfo, Some(server.password()), home.path());
        let b = libpq(conninfo, server.password(), home.path());
        assert_eq!(a, b, "{conninfo}: ours and libpq");
        assert_eq!(&b, expected, "{conninfo}: libpq");
    }
}
