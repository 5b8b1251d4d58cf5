//! What libpq 15 cannot speak, checked against libpq 17 (cargo feature `docker`):
//! `sslnegotiation=direct`, `sslrootcert=system`, and libpq 16's `require_auth` and
//! `sslcertmode`.
//!
//! The oracle is the `psql` 17 of the PostgreSQL 17 image (`tea-pgcloud/postgres:17`, built by
//! `conformance/image/build.sh`, or any image with PostgreSQL 17 and its client), run inside the
//! container with [`super::docker::DockerServer::run_in_container`]: the same command and clean environment as
//! the libpq 15 oracle ([`oracle`]), its output read by the same [`oracle::interpret_exit`]. It
//! connects to the PostgreSQL 17 server in its own container (127.0.0.1:5432), and to a
//! PostgreSQL 15 server through the bridge network; this library connects to both through their
//! published ports. Both sides name the server `localhost` (`hostaddr` gives the address), so
//! `verify-full` checks the same name.
//!
//! Every case's outcome is recorded in `fixtures/conformance/libpq17.json` ([`RECORDING`], the
//! matrix's [`Recording`] format), so a run also shows when libpq 17's answer changes.

use std::time::Instant;

use serde::Serialize;

use super::certs::CertFactory;
use super::launcher::PgServer;
use super::matrix::{Recording, run_ours_with};
use super::oracle;

/// Where the libpq 17 outcomes are recorded, relative to the crate root.
pub const RECORDING: &str = "fixtures/conformance/libpq17.json";

/// Which server a case connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    /// PostgreSQL 17 (speaks direct TLS).
    Pg17,
    /// PostgreSQL 15 (does not).
    Pg15,
}

/// A root certificate file a case names, or sets as `SSL_CERT_FILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootFile {
    /// The factory's root, which signed the servers' certificates.
    Good,
    /// An unrelated root.
    Other,
}

impl RootFile {
    fn name(self) -> &'static str {
        match self {
            Self::Good => "root.crt",
            Self::Other => "other.crt",
        }
    }
}

/// One case: libpq parameters, the host name, the server, and the root files.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// A stable id (the recording's key).
    pub id: &'static str,
    /// libpq parameters beyond host, hostaddr, port, user and dbname.
    pub params: &'static str,
    /// `sslrootcert=` this file (appended to the parameters).
    pub root: Option<RootFile>,
    /// `SSL_CERT_FILE` for this file (what `sslrootcert=system` reads first).
    pub cert_file: Option<RootFile>,
    /// The `host` (the name checked by `verify-full`): `localhost` or `wrong.example`.
    pub host: &'static str,
    /// The server.
    pub server: Server,
}

const fn case(
    id: &'static str,
    params: &'static str,
    root: Option<RootFile>,
    cert_file: Option<RootFile>,
    host: &'static str,
    server: Server,
) -> Case {
    Case {
        id,
        params,
        root,
        cert_file,
        host,
        server,
    }
}

use RootFile::{Good, Other};
use Server::{Pg15, Pg17};

/// Every case.
pub const CASES: &[Case] = &[
    // sslnegotiation=direct: only with require or stronger.
    case(
        "direct-default-sslmode",
        "sslnegotiation=direct",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "direct-disable",
        "sslmode=disable sslnegotiation=direct",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "direct-allow",
        "sslmode=allow sslnegotiation=direct",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "direct-prefer",
        "sslmode=prefer sslnegotiation=direct",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "direct-require",
        "sslmode=require sslnegotiation=direct",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "direct-require-root",
        "sslmode=require sslnegotiation=direct",
        Some(Good),
        None,
        "localhost",
        Pg17,
    ),
    case(
        "direct-require-other-root",
        "sslmode=require sslnegotiation=direct",
        Some(Other),
        None,
        "localhost",
        Pg17,
    ),
    case(
        "direct-verify-ca",
        "sslmode=verify-ca sslnegotiation=direct",
        Some(Good),
        None,
        "localhost",
        Pg17,
    ),
    case(
        "direct-verify-full",
        "sslmode=verify-full sslnegotiation=direct",
        Some(Good),
        None,
        "localhost",
        Pg17,
    ),
    case(
        "direct-verify-full-other-root",
        "sslmode=verify-full sslnegotiation=direct",
        Some(Other),
        None,
        "localhost",
        Pg17,
    ),
    case(
        "direct-verify-full-wrong-host",
        "sslmode=verify-full sslnegotiation=direct",
        Some(Good),
        None,
        "wrong.example",
        Pg17,
    ),
    case(
        "direct-verify-ca-wrong-host",
        "sslmode=verify-ca sslnegotiation=direct",
        Some(Good),
        None,
        "wrong.example",
        Pg17,
    ),
    case(
        "direct-channel-binding",
        "sslmode=require sslnegotiation=direct channel_binding=require",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "direct-unknown-value",
        "sslmode=require sslnegotiation=tls",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "postgres-explicit-require",
        "sslmode=require sslnegotiation=postgres",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "postgres-explicit-prefer",
        "sslmode=prefer sslnegotiation=postgres",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "direct-require-pg15",
        "sslmode=require sslnegotiation=direct",
        None,
        None,
        "localhost",
        Pg15,
    ),
    case(
        "direct-verify-full-pg15",
        "sslmode=verify-full sslnegotiation=direct",
        Some(Good),
        None,
        "localhost",
        Pg15,
    ),
    case(
        "postgres-require-pg15",
        "sslmode=require sslnegotiation=postgres",
        None,
        None,
        "localhost",
        Pg15,
    ),
    // sslrootcert=system: verify-full only, against OpenSSL's default store.
    case(
        "system-default-sslmode",
        "sslrootcert=system",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "system-verify-full",
        "sslmode=verify-full sslrootcert=system",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "system-trusting-root",
        "sslrootcert=system",
        None,
        Some(Good),
        "localhost",
        Pg17,
    ),
    case(
        "system-verify-full-trusting-root",
        "sslmode=verify-full sslrootcert=system",
        None,
        Some(Good),
        "localhost",
        Pg17,
    ),
    case(
        "system-trusting-other-root",
        "sslrootcert=system",
        None,
        Some(Other),
        "localhost",
        Pg17,
    ),
    case(
        "system-trusting-root-wrong-host",
        "sslrootcert=system",
        None,
        Some(Good),
        "wrong.example",
        Pg17,
    ),
    case(
        "system-disable",
        "sslmode=disable sslrootcert=system",
        None,
        Some(Good),
        "localhost",
        Pg17,
    ),
    case(
        "system-allow",
        "sslmode=allow sslrootcert=system",
        None,
        Some(Good),
        "localhost",
        Pg17,
    ),
    case(
        "system-prefer",
        "sslmode=prefer sslrootcert=system",
        None,
        Some(Good),
        "localhost",
        Pg17,
    ),
    case(
        "system-require",
        "sslmode=require sslrootcert=system",
        None,
        Some(Good),
        "localhost",
        Pg17,
    ),
    case(
        "system-verify-ca",
        "sslmode=verify-ca sslrootcert=system",
        None,
        Some(Good),
        "localhost",
        Pg17,
    ),
    case(
        "system-direct-trusting-root",
        "sslnegotiation=direct sslrootcert=system",
        None,
        Some(Good),
        "localhost",
        Pg17,
    ),
    case(
        "system-trusting-root-pg15",
        "sslrootcert=system",
        None,
        Some(Good),
        "localhost",
        Pg15,
    ),
    // libpq 16's require_auth, against PostgreSQL 17 roles that authenticate by SCRAM (tea),
    // trust (trust_u), cleartext password (pw_u) and MD5 (md5_u).
    case(
        "require-auth-scram",
        "sslmode=require require_auth=scram-sha-256",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-password-vs-scram",
        "sslmode=require require_auth=password",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-md5-vs-scram",
        "sslmode=require require_auth=md5",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-not-scram",
        "sslmode=require require_auth=!scram-sha-256",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-not-password-not-md5",
        "sslmode=require require_auth=!password,!md5",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-none-vs-scram",
        "sslmode=require require_auth=none",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-password-or-scram",
        "sslmode=require require_auth=password,scram-sha-256",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-none-or-scram",
        "sslmode=require require_auth=none,scram-sha-256",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-not-none-vs-trust",
        "sslmode=require user=trust_u require_auth=!none",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-none-vs-trust",
        "sslmode=require user=trust_u require_auth=none",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-scram-vs-trust",
        "sslmode=require user=trust_u require_auth=scram-sha-256",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-none-or-scram-vs-trust",
        "sslmode=require user=trust_u require_auth=none,scram-sha-256",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-password-vs-password",
        "sslmode=require user=pw_u require_auth=password",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-scram-vs-password",
        "sslmode=require user=pw_u require_auth=scram-sha-256",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-not-password-vs-password",
        "sslmode=require user=pw_u require_auth=!password",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-md5-vs-md5",
        "sslmode=require user=md5_u require_auth=md5",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-not-md5-vs-md5",
        "sslmode=require user=md5_u require_auth=!md5",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-invalid",
        "sslmode=require require_auth=scram",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-mixed",
        "sslmode=require require_auth=scram-sha-256,!md5",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-mixed-negative-first",
        "sslmode=require require_auth=!md5,scram-sha-256",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-duplicate",
        "sslmode=require require_auth=md5,md5",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-space",
        "sslmode=require require_auth='md5, password'",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-empty",
        "sslmode=require require_auth=''",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-empty-vs-trust",
        "sslmode=require user=trust_u require_auth=''",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "require-auth-plain-md5-vs-scram",
        "sslmode=disable require_auth=md5",
        None,
        None,
        "localhost",
        Pg17,
    ),
    // libpq 16's sslcertmode: the PostgreSQL 17 server has no client CA (it never asks for a
    // certificate), the PostgreSQL 15 one has (it always asks).
    case(
        "sslcertmode-disable",
        "sslmode=require sslcertmode=disable",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "sslcertmode-allow",
        "sslmode=require sslcertmode=allow",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "sslcertmode-require-not-asked",
        "sslmode=require sslcertmode=require",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "sslcertmode-invalid",
        "sslmode=require sslcertmode=maybe",
        None,
        None,
        "localhost",
        Pg17,
    ),
    case(
        "sslcertmode-require-asked-pg15",
        "sslmode=require sslcertmode=require",
        None,
        None,
        "localhost",
        Pg15,
    ),
    case(
        "sslcertmode-disable-asked-pg15",
        "sslmode=require sslcertmode=disable",
        None,
        None,
        "localhost",
        Pg15,
    ),
];

/// The connection string of `case` for one side: the server at `addr:port`, root files in
/// `dir`.
pub fn conninfo(case: &Case, addr: &str, port: u16, dir: &str) -> String {
    let mut s = format!(
        "host={} hostaddr={addr} port={port} user=tea dbname=postgres connect_timeout=10 {}",
        case.host, case.params
    );
    if let Some(root) = case.root {
        s.push_str(&format!(" sslrootcert={dir}/{}", root.name()));
    }
    s
}

/// One case's result (the matrix's result type, over this run's cases).
pub type CaseResult = super::matrix::CaseResult<Case>;

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// `psql --version` in the PostgreSQL 17 container.
    pub libpq: String,
    /// Every case's result.
    pub results: Vec<CaseResult>,
    /// Wall time, in seconds.
    pub elapsed_s: f64,
}

impl Report {
    /// The recording this run would write.
    pub fn recording(&self) -> Recording {
        Recording {
            libpq: self.libpq.clone(),
            cases: self
                .results
                .iter()
                .map(|r| (r.case.id.to_owned(), r.libpq.as_str().to_owned()))
                .collect(),
            description: serde_json::Map::new(),
        }
    }
}

/// Runs every case: `pg17` and `pg15` are docker-launched servers with the factory's good
/// server certificate (`hostssl ... scram-sha-256`); libpq 17 runs in `pg17`'s container.
pub fn run(
    pg17: &PgServer,
    pg15: &PgServer,
    factory: &CertFactory,
    recording: &Recording,
    runtime: &tokio::runtime::Runtime,
) -> Result<Report, String> {
    let started = Instant::now();
    let oracle_host = pg17
        .docker()
        .ok_or("the libpq 17 oracle needs the PostgreSQL 17 server in a container")?;
    let pg15_ip = pg15
        .docker()
        .ok_or("the PostgreSQL 15 server must be in a container too")?
        .bridge_ip()
        .map_err(|e| e.to_string())?
        .to_string();
    let (_, version, _) = oracle_host
        .run_in_container(&[], &[], &["psql", "--version"])
        .map_err(|e| e.to_string())?;
    let version = version.trim().to_owned();
    if !version.contains("PostgreSQL) 17") {
        return Err(format!(
            "the oracle must be libpq 17, but the container's psql says {version:?}"
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let home = dir.path();
    let local = home.to_str().ok_or("a non-UTF-8 temp dir")?.to_owned();
    for (root, pem) in [
        (RootFile::Good, factory.root_pem()),
        (RootFile::Other, factory.other_root_pem()),
    ] {
        std::fs::write(home.join(root.name()), pem).map_err(|e| e.to_string())?;
    }
    let files = [
        (RootFile::Good.name(), factory.root_pem()),
        (RootFile::Other.name(), factory.other_root_pem()),
    ];
    let mut results = Vec::new();
    for case in CASES {
        let server = match case.server {
            Server::Pg17 => pg17,
            Server::Pg15 => pg15,
        };
        let ours_info = conninfo(case, "127.0.0.1", server.port(), &local);
        let ours_cert_file = case.cert_file.map(|r| format!("{local}/{}", r.name()));
        let vars: Vec<(&str, &str)> = ours_cert_file
            .as_deref()
            .map(|f| vec![("SSL_CERT_FILE", f)])
            .unwrap_or_default();
        let (ours, ours_message) =
            runtime.block_on(run_ours_with(&ours_info, server.password(), home, &vars));

        let addr = match case.server {
            Server::Pg17 => "127.0.0.1",
            Server::Pg15 => pg15_ip.as_str(),
        };
        let theirs_info = conninfo(case, addr, 5432, "/tmp/tea-client");
        let theirs_cert_file = case
            .cert_file
            .map(|r| format!("/tmp/tea-client/{}", r.name()));
        let timeout = oracle::CONNECT_TIMEOUT_SECS.to_string();
        let mut env = vec![
            ("HOME", "/tmp/tea-client"),
            ("LC_ALL", "C"),
            ("PGCONNECT_TIMEOUT", timeout.as_str()),
            ("PGPASSWORD", server.password()),
        ];
        if let Some(file) = theirs_cert_file.as_deref() {
            env.push(("SSL_CERT_FILE", file));
        }
        let attempt_started = Instant::now();
        let (code, stdout, stderr) = oracle_host
            .run_in_container(
                &files,
                &env,
                &[
                    "psql",
                    "-X",
                    "-A",
                    "-t",
                    "-w",
                    "-d",
                    &theirs_info,
                    "-c",
                    oracle::QUERY,
                ],
            )
            .map_err(|e| e.to_string())?;
        let libpq = oracle::interpret_exit(
            code == 0,
            &format!("exit status: {code}"),
            &stdout,
            &stderr,
            attempt_started.elapsed(),
        );
        results.push(CaseResult {
            case: *case,
            ours,
            ours_message,
            libpq: libpq.outcome,
            libpq_message: libpq.message,
            recorded: recording.get(case.id),
        });
    }
    Ok(Report {
        libpq: version,
        results,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}
