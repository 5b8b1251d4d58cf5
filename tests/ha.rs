//! High availability against libpq: `target_session_attrs` over host lists of a primary, its
//! streaming standby, a read-only primary, a host that is down and one without TLS, through
//! this crate and libpq 15 (psql), case by case; `load_balance_hosts` through this crate by the
//! set and the spread of its outcomes (libpq 17's side runs in the container suite).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::agreement::Agreement;
use tea_pgcloud::conformance::certs::{CertFactory, ServerCertKind};
use tea_pgcloud::conformance::launcher::{NativeServer, Profile, Server, TlsFiles};
use tea_pgcloud::env::MapEnv;

/// Every server lets `tea` in without a password: these cases are about which server is
/// chosen, not about logging in.
const TRUST: &str = "host all all 127.0.0.1/32 trust";

/// The servers of the cases, each named by a letter.
struct Servers {
    /// `P`: a primary with TLS.
    primary: NativeServer,
    /// `S`: its streaming standby (hot standby), with TLS.
    standby: NativeServer,
    /// `R`: another primary, `default_transaction_read_only = on`, with TLS.
    read_only: NativeServer,
    /// `N`: a primary without TLS (`ssl = off`).
    no_tls: NativeServer,
    /// `C`: a standby of P with `hot_standby = off`: it answers every login with SQLSTATE
    /// 57P03 (`the database system is not accepting connections`).
    cold: NativeServer,
    /// `D`: a loopback port nothing listens on.
    down: u16,
}

impl Servers {
    fn start() -> Self {
        let factory = CertFactory::new().expect("certificates");
        let pem = factory.server(ServerCertKind::Good).expect("a server cert");
        let tls = Profile::new(
            "ha-tls",
            Some(TlsFiles {
                cert_pem: pem.cert.clone(),
                key_pem: pem.key.clone(),
                client_ca_pem: None,
            }),
            [TRUST],
        );
        let primary = NativeServer::start(&tls).expect("the primary");
        let standby = NativeServer::start_standby(&primary).expect("the standby");
        let read_only = NativeServer::start(&tls).expect("the read-only primary");
        read_only.set_read_only(true).expect("read-only");
        let no_tls =
            NativeServer::start(&Profile::new("ha-plain", None, [TRUST])).expect("a plain server");
        let mut cold = NativeServer::start_standby(&primary).expect("a second standby");
        cold.admin_sql("ALTER SYSTEM SET hot_standby = off")
            .expect("hot_standby off");
        cold.stop("fast").expect("stops");
        cold.start_again().expect("starts as a cold standby");
        let down = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        assert!(standby.in_recovery().expect("asks"), "S is a standby");
        Servers {
            primary,
            standby,
            read_only,
            no_tls,
            cold,
            down,
        }
    }

    fn port(&self, letter: char) -> u16 {
        match letter {
            'P' => self.primary.port(),
            'S' => self.standby.port(),
            'R' => self.read_only.port(),
            'N' => self.no_tls.port(),
            'C' => self.cold.port(),
            'D' => self.down,
            other => panic!("no server {other}"),
        }
    }

    fn letter(&self, port: u16) -> String {
        "PSRNCD"
            .chars()
            .find(|&l| self.port(l) == port)
            .map_or_else(|| format!("port {port}?"), String::from)
    }

    /// The connection string for the hosts `letters`, in order.
    fn conninfo(&self, letters: &str, extra: &str) -> String {
        let hosts = vec!["127.0.0.1"; letters.len()].join(",");
        let ports: Vec<String> = letters.chars().map(|l| self.port(l).to_string()).collect();
        format!(
            "host={hosts} port={} user=tea dbname=postgres connect_timeout=5 {extra}",
            ports.join(",")
        )
    }
}

/// The libpq text of the last attempt of a failed connection, without the
/// `connection to server at ..., port N failed: ` part.
fn last_reason(message: &str) -> String {
    let attempts = tea_pgcloud::conformance::oracle::attempts(message);
    let last = attempts.last().copied().unwrap_or_default();
    let reason = last.rsplit_once(" failed: ").map_or(last, |(_, r)| r);
    reason.lines().next().unwrap_or_default().trim().to_string()
}

/// An outcome as both sides are compared: the server's letter, or the error class (with
/// libpq's text for a server of the wrong kind).
fn error_outcome(class: &str, reason: &str) -> String {
    if class == "target-mismatch" {
        format!("{class}: {reason}")
    } else {
        class.to_string()
    }
}

/// Through this crate.
fn ours(servers: &Servers, conninfo: &str) -> String {
    use tea_pgcloud::connect::{Login, connect};
    let env = MapEnv::new();
    let yaml = format!("connection_string: \"{conninfo}\"\n");
    let config = tea_pgcloud::config::load_str(&yaml, "ha.yaml", &env).expect("loads");
    let plan = match tea_pgcloud::provider::plan(&config, &env) {
        Ok(plan) => plan,
        Err(e) => return e.class().as_str().to_string(),
    };
    match common::block_on(connect(&plan, &Login::new(None, None), &env)) {
        Ok(c) => servers.letter(c.host.port),
        Err(e) => error_outcome(
            e.class().as_str(),
            e.messages().last().map_or("", String::as_str),
        ),
    }
}

/// Through libpq (psql, which reports the port it reached).
fn libpq(servers: &Servers, conninfo: &str, home: &Path) -> String {
    use tea_pgcloud::conformance::oracle::{Attempt, classify, run_sql};
    let result = run_sql(
        &Attempt {
            conninfo,
            password: None,
            home,
        },
        "SELECT inet_server_port()",
    )
    .expect("psql runs");
    match result {
        Ok(port) => servers.letter(port.parse().expect("a port")),
        Err(message) => error_outcome(classify(&message).as_str(), &last_reason(&message)),
    }
}

/// Every host list of two and three distinct servers of P, S, R, N and D, a fixed tenth of
/// those of four, and lists with the cold standby C.
fn host_lists() -> Vec<String> {
    fn extend(prefix: &str, len: usize, out: &mut Vec<String>) {
        if prefix.len() == len {
            out.push(prefix.to_string());
            return;
        }
        for l in "PSRND".chars().filter(|l| !prefix.contains(*l)) {
            extend(&format!("{prefix}{l}"), len, out);
        }
    }
    let mut lists = Vec::new();
    extend("", 2, &mut lists);
    extend("", 3, &mut lists);
    let mut fours = Vec::new();
    extend("", 4, &mut fours);
    lists.extend(fours.into_iter().step_by(10));
    lists.extend(["CP", "PC", "CS", "CR", "CDS", "DCP", "SCP"].map(String::from));
    lists
}

const ATTRS: [&str; 6] = [
    "any",
    "read-write",
    "read-only",
    "primary",
    "standby",
    "prefer-standby",
];

/// `target_session_attrs` x host lists (every pair and triple, a tenth of the quadruples, and
/// lists with the cold standby, whose 57P03 sends libpq to the next host) x `sslmode`
/// `prefer` (the server without TLS is taken in plain) and, for the pairs, `require` (it ends
/// the search: libpq does not move on after a TLS refusal): the same server chosen, or the
/// same error, as libpq 15.
#[test]
fn target_session_attrs_agree_with_libpq() {
    let servers = Servers::start();
    let home = tempfile::tempdir().expect("an empty HOME");
    let mut agreement = Agreement::default();
    for list in host_lists() {
        let sslmodes: &[&str] = if list.len() == 2 {
            &["prefer", "require"]
        } else {
            &["prefer"]
        };
        for sslmode in sslmodes {
            for attrs in ATTRS {
                let conninfo = servers.conninfo(
                    &list,
                    &format!("sslmode={sslmode} target_session_attrs={attrs}"),
                );
                agreement.record(
                    &format!("{list} {sslmode} {attrs}"),
                    ours(&servers, &conninfo),
                    libpq(&servers, &conninfo, home.path()),
                );
            }
        }
    }
    // Values libpq refuses.
    for value in ["ANY", "read_write", "", "master"] {
        let conninfo = servers.conninfo("PS", &format!("target_session_attrs='{value}'"));
        agreement.record(
            &format!("value {value:?}"),
            ours(&servers, &conninfo),
            libpq(&servers, &conninfo, home.path()),
        );
    }
    agreement.assert_all_agree_and_recorded(
        "target-session-attrs",
        "target_session_attrs over host lists of P (primary), S (its standby), R (a read-only \
         primary), N (a primary without TLS), C (a standby with hot_standby off: 57P03) and D \
         (down): the server libpq reached, or its error class (with the text of the last \
         attempt for a server of the wrong kind)",
        &[
            "P",
            "S",
            "R",
            "N",
            "unreachable",
            "server-no-tls",
            "config",
            "target-mismatch: session is read-only",
            "target-mismatch: session is not read-only",
            "target-mismatch: server is in hot standby mode",
            "target-mismatch: server is not in hot standby mode",
        ],
    );
}

/// `load_balance_hosts=random` through this crate: over many connections every server of the
/// list is reached, each about as often; `prefer-standby` still lands on the standby only;
/// `disable` always on the first host. (libpq 15 does not know the keyword; libpq 17's side
/// is in the container suite.)
#[test]
fn load_balance_hosts_spreads_connections_as_libpq_does() {
    let servers = Servers::start();
    let connects = 300;
    let spread = |list: &str, extra: &str| -> BTreeMap<String, usize> {
        let conninfo = servers.conninfo(list, extra);
        let mut seen = BTreeMap::new();
        for _ in 0..connects {
            *seen.entry(ours(&servers, &conninfo)).or_default() += 1;
        }
        seen
    };
    // Three servers that all qualify: each about a third (a binomial with p = 1/3 over 300
    // stays within 60..140 with probability above 1 - 1e-9).
    let random = spread("PSR", "load_balance_hosts=random");
    assert_eq!(
        random.keys().cloned().collect::<BTreeSet<_>>(),
        ["P", "R", "S"].map(String::from).into_iter().collect(),
        "{random:?}"
    );
    for (server, n) in &random {
        assert!(
            (60..=140).contains(n),
            "{server}: {n} of {connects}: {random:?}"
        );
    }
    // A host that is down is skipped: P and S share everything.
    let with_down = spread("DPS", "load_balance_hosts=random");
    assert_eq!(with_down.get("D"), None, "{with_down:?}");
    for server in ["P", "S"] {
        let n = with_down.get(server).copied().unwrap_or(0);
        assert!((110..=190).contains(&n), "{server}: {n}: {with_down:?}");
    }
    // The attributes still decide.
    let standby = spread(
        "PSR",
        "load_balance_hosts=random target_session_attrs=prefer-standby",
    );
    assert_eq!(standby.get("S"), Some(&connects), "{standby:?}");
    let disable = spread("PSR", "load_balance_hosts=disable");
    assert_eq!(disable.get("P"), Some(&connects), "{disable:?}");
}

/// The image whose psql (libpq 17) judges what libpq 15 cannot: `TEA_LIBPQ17_IMAGE`, a
/// `tea-pgcloud/postgres:17` built by `conformance/image/build.sh`. Its psql runs in a
/// container on the host's network, against the servers above on loopback.
const LIBPQ17_IMAGE: &str = "TEA_LIBPQ17_IMAGE";

/// libpq 17's outcome of each connection string, in one container: the server's letter, or
/// the error as [`error_outcome`] has it.
fn libpq17(servers: &Servers, image: &str, conninfos: &[String]) -> Vec<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut script = String::from("mkdir -p /tmp/home\n");
    for (i, conninfo) in conninfos.iter().enumerate() {
        assert!(!conninfo.contains('\''), "no quote to escape: {conninfo}");
        script.push_str(&format!(
            "if out=$(psql -X -A -t -w -d '{conninfo}' -c 'SELECT inet_server_port()' 2>/tmp/e); \
             then echo \"CASE {i} OK $out\"; else echo \"CASE {i} ERR $(base64 -w0 /tmp/e)\"; fi\n"
        ));
    }
    let mut child = Command::new("docker")
        .args(["run", "--rm", "-i", "--network", "host"])
        .args([
            "-e",
            "LC_ALL=C",
            "-e",
            "HOME=/tmp/home",
            "-e",
            "PGCONNECT_TIMEOUT=10",
        ])
        .args(["--entrypoint", "sh", image, "-s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("docker runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("the script is sent");
    let output = child.wait_with_output().expect("the container ends");
    assert!(
        output.status.success(),
        "the container failed: {}",
        output.status
    );
    let mut outcomes = vec![String::new(); conninfos.len()];
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some("CASE"), Some(i), Some(kind)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let i: usize = i.parse().expect("a case number");
        let rest = parts.next().unwrap_or_default();
        outcomes[i] = match kind {
            "OK" => servers.letter(rest.trim().parse().expect("a port")),
            _ => {
                let bytes = <base64ct::Base64 as base64ct::Encoding>::decode_vec(rest.trim())
                    .expect("base64");
                let message = String::from_utf8_lossy(&bytes);
                let message = message
                    .trim()
                    .strip_prefix("psql: error: ")
                    .unwrap_or(message.trim())
                    .to_string();
                error_outcome(
                    tea_pgcloud::conformance::oracle::classify(&message).as_str(),
                    &last_reason(&message),
                )
            }
        };
    }
    assert!(
        outcomes.iter().all(|o| !o.is_empty()),
        "every case has an outcome"
    );
    outcomes
}

/// libpq 17 (psql in the PostgreSQL 17 image, `TEA_LIBPQ17_IMAGE`): the pairs of the matrix
/// above under every attribute, and `load_balance_hosts`: `random` reaches the same set of
/// servers as this crate, each about as often over 300 connections on both sides; `disable`
/// and the attributes agree case by case. Without the variable the test says so and checks
/// nothing; `.ci/run` sets it in its container step.
#[test]
fn libpq17_agrees_on_session_attrs_and_load_balancing() {
    let Some(image) = std::env::var(LIBPQ17_IMAGE).ok().filter(|v| !v.is_empty()) else {
        eprintln!("{LIBPQ17_IMAGE} is not set: libpq 17's side is not run here");
        return;
    };
    let servers = Servers::start();
    // Case by case: every pair, every attribute, both load-balancing modes where the outcome
    // does not depend on chance (one server qualifies, or none).
    let mut cases = Vec::new();
    for list in host_lists().into_iter().filter(|l| l.len() == 2) {
        for attrs in ATTRS {
            cases.push((
                format!("{list} prefer {attrs}"),
                servers.conninfo(
                    &list,
                    &format!("sslmode=prefer target_session_attrs={attrs}"),
                ),
            ));
        }
    }
    for value in ["RANDOM", "on", "1"] {
        cases.push((
            format!("load_balance_hosts={value}"),
            servers.conninfo("PS", &format!("load_balance_hosts={value}")),
        ));
    }
    let conninfos: Vec<String> = cases.iter().map(|(_, c)| c.clone()).collect();
    let theirs = libpq17(&servers, &image, &conninfos);
    let mut agreement = Agreement::default();
    for ((name, conninfo), libpq) in cases.iter().zip(theirs) {
        agreement.record(name, ours(&servers, conninfo), libpq);
    }
    agreement.assert_all_agree(&[
        "P",
        "S",
        "N",
        "config",
        "target-mismatch: session is read-only",
        "target-mismatch: server is not in hot standby mode",
    ]);

    // By the spread: the same servers, each about as often.
    let connects = 300;
    for (list, extra) in [
        ("PSR", "load_balance_hosts=random"),
        ("DPS", "load_balance_hosts=random"),
        (
            "PSR",
            "load_balance_hosts=random target_session_attrs=read-only",
        ),
        (
            "PSRN",
            "load_balance_hosts=random target_session_attrs=prefer-standby",
        ),
        ("PSR", "load_balance_hosts=disable"),
    ] {
        let conninfo = servers.conninfo(list, extra);
        let theirs = libpq17(&servers, &image, &vec![conninfo.clone(); connects]);
        let count = |outcomes: Vec<String>| {
            let mut seen = BTreeMap::<String, usize>::new();
            for o in outcomes {
                *seen.entry(o).or_default() += 1;
            }
            seen
        };
        let theirs = count(theirs);
        let ours = count((0..connects).map(|_| ours(&servers, &conninfo)).collect());
        println!("{list} {extra}: libpq 17 {theirs:?}, ours {ours:?}");
        assert_eq!(
            theirs.keys().collect::<Vec<_>>(),
            ours.keys().collect::<Vec<_>>(),
            "{list} {extra}: the same servers are reached"
        );
        let qualifying = theirs.len();
        for (server, n) in &theirs {
            let m = ours[server];
            // Each share p = 1/k over 300: both within 7 standard deviations of 300/k.
            let expected = connects as f64 / qualifying as f64;
            let sd =
                (connects as f64 * (1.0 / qualifying as f64) * (1.0 - 1.0 / qualifying as f64))
                    .sqrt()
                    .max(1.0);
            for (who, got) in [("libpq 17", *n), ("ours", m)] {
                assert!(
                    (got as f64 - expected).abs() <= 7.0 * sd,
                    "{list} {extra}: {who} reached {server} {got} times, expected about {expected}"
                );
            }
        }
    }
}
