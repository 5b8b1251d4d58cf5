//! The TLS matrix: server profiles x the six sslmodes x root certificate x host form, each case
//! run through this library (YAML-free: a libpq connection string through the same
//! plan-and-connect path users take) and through libpq (`psql`), both reduced to an
//! [`Outcome`]. Every case must agree, and libpq's outcome must match the one recorded in
//! `fixtures/conformance/tls-matrix.json`, so another port can diff against the recording
//! without a server.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Outcome;
use super::certs::{CertFactory, IssuerKind, ServerCertKind, SubjectAltName};
use super::launcher::{Launcher, PgServer, Profile, TlsFiles};
use super::oracle;
use crate::config::load_str;
use crate::connect::{self, Login};
use crate::conninfo::ConnInfo;
use crate::env::{Environment, MapEnv};
use crate::error::ErrorClass;
use crate::provider::plan;
use crate::sslmode::SslMode;

/// Where the recorded libpq outcomes live, relative to the repository root.
pub const RECORDING: &str = "fixtures/conformance/tls-matrix.json";

/// The recording's path: under the working directory when it is there (a checkout), else
/// in the source tree this binary was built from.
pub fn recording_path() -> PathBuf {
    let here = PathBuf::from(RECORDING);
    if here.exists() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(RECORDING)
    }
}

/// The pg_hba.conf lines of a profile: who may connect, over what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hba {
    /// `host`: plain or TLS.
    Any,
    /// `hostssl`: TLS only.
    SslOnly,
    /// `hostnossl`: plain only.
    NoSslOnly,
    /// `hostssl ... cert`: TLS with a client certificate (signed by the right CA, common name
    /// the user) instead of a password; the cases send `sslcert` and `sslkey`.
    SslCert,
}

impl Hba {
    /// The profile's `pg_hba.conf` line.
    pub fn line(self) -> &'static str {
        match self {
            Self::Any => "host all all 127.0.0.1/32 scram-sha-256",
            Self::SslOnly => "hostssl all all 127.0.0.1/32 scram-sha-256",
            Self::NoSslOnly => "hostnossl all all 127.0.0.1/32 scram-sha-256",
            Self::SslCert => "hostssl all all 127.0.0.1/32 cert",
        }
    }
}

/// A server configuration of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerProfile {
    /// Its name in case ids.
    pub name: &'static str,
    /// The certificate served; `None` runs with `ssl = off`.
    pub cert: Option<ServerCertKind>,
    /// Which connections pg_hba.conf allows.
    pub hba: Hba,
    /// The host name used for the "name" host form (with `hostaddr=127.0.0.1`).
    pub host_name: &'static str,
}

/// Every server profile, in report order.
pub const PROFILES: &[ServerProfile] = &[
    ServerProfile {
        name: "tls-off",
        cert: None,
        hba: Hba::Any,
        host_name: "localhost",
    },
    ServerProfile {
        name: "tls-on",
        cert: Some(ServerCertKind::Good),
        hba: Hba::Any,
        host_name: "localhost",
    },
    ServerProfile {
        name: "hostssl-only",
        cert: Some(ServerCertKind::Good),
        hba: Hba::SslOnly,
        host_name: "localhost",
    },
    ServerProfile {
        name: "hostnossl-only",
        cert: Some(ServerCertKind::Good),
        hba: Hba::NoSslOnly,
        host_name: "localhost",
    },
    ServerProfile {
        name: "client-cert",
        cert: Some(ServerCertKind::Good),
        hba: Hba::SslCert,
        host_name: "localhost",
    },
    ServerProfile {
        name: "wrong-host",
        cert: Some(ServerCertKind::WrongHost),
        hba: Hba::Any,
        host_name: "localhost",
    },
    ServerProfile {
        name: "cn-only",
        cert: Some(ServerCertKind::CnOnly),
        hba: Hba::Any,
        host_name: "localhost",
    },
    ServerProfile {
        name: "wildcard",
        cert: Some(ServerCertKind::Wildcard),
        hba: Hba::Any,
        host_name: "db.tea.test",
    },
    ServerProfile {
        name: "ip-only",
        cert: Some(ServerCertKind::IpOnly),
        hba: Hba::Any,
        host_name: "localhost",
    },
    ServerProfile {
        name: "expired",
        cert: Some(ServerCertKind::Expired),
        hba: Hba::Any,
        host_name: "localhost",
    },
    ServerProfile {
        name: "other-ca",
        cert: Some(ServerCertKind::OtherCa),
        hba: Hba::Any,
        host_name: "localhost",
    },
    ServerProfile {
        name: "intermediate-chain",
        cert: Some(ServerCertKind::IntermediateChain),
        hba: Hba::Any,
        host_name: "localhost",
    },
    ServerProfile {
        name: "intermediate-leaf-only",
        cert: Some(ServerCertKind::IntermediateLeafOnly),
        hba: Hba::Any,
        host_name: "localhost",
    },
];

/// What the client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// No root certificate anywhere.
    None,
    /// `sslrootcert` = the CA that signed the server certificates.
    Right,
    /// `sslrootcert` = an unrelated CA.
    Wrong,
    /// No `sslrootcert`; the right CA at `$HOME/.postgresql/root.crt`.
    Default,
}

impl Root {
    /// Every choice, in report order.
    pub const ALL: [Root; 4] = [Root::None, Root::Right, Root::Wrong, Root::Default];

    /// Its name in case ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "no-root",
            Self::Right => "right-ca",
            Self::Wrong => "wrong-ca",
            Self::Default => "default-root",
        }
    }
}

/// How the client names the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostForm {
    /// A host name (the profile's), dialled at 127.0.0.1.
    Name,
    /// `127.0.0.1`.
    Ip,
}

impl HostForm {
    /// Both forms.
    pub const ALL: [HostForm; 2] = [HostForm::Name, HostForm::Ip];

    /// Its name in case ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Ip => "ip",
        }
    }
}

/// One case of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The server profile.
    pub profile: &'static ServerProfile,
    /// The client's sslmode.
    pub sslmode: SslMode,
    /// What the client trusts.
    pub root: Root,
    /// How the client names the server.
    pub host: HostForm,
}

impl Case {
    /// `profile/sslmode/root/host`.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.profile.name,
            self.sslmode,
            self.root.as_str(),
            self.host.as_str()
        )
    }
}

/// Every case of a profile.
pub fn cases(profile: &'static ServerProfile) -> Vec<Case> {
    let mut out = Vec::new();
    for sslmode in SslMode::ALL {
        for root in Root::ALL {
            for host in HostForm::ALL {
                out.push(Case {
                    profile,
                    sslmode,
                    root,
                    host,
                });
            }
        }
    }
    out
}

/// One case's outcomes: a case of this matrix (`C` = [`Case`]) or of another run against
/// libpq (the libpq 17 cases).
#[derive(Debug, Clone)]
pub struct CaseResult<C = Case> {
    /// The case.
    pub case: C,
    /// Through this library.
    pub ours: Outcome,
    /// Our message when it failed.
    pub ours_message: Option<String>,
    /// Through libpq.
    pub libpq: Outcome,
    /// libpq's message when it failed.
    pub libpq_message: Option<String>,
    /// libpq's outcome as recorded, when there is a recording.
    pub recorded: Option<Outcome>,
}

impl<C> CaseResult<C> {
    /// Whether this library agrees with libpq: the same outcome, or one of the
    /// [`ACCEPTED_DEVIATIONS`].
    pub fn agrees(&self) -> bool {
        outcomes_agree(self.ours, self.libpq)
    }

    /// Whether libpq gives the recorded outcome (false when the case is not recorded).
    pub fn matches_recording(&self) -> bool {
        self.recorded == Some(self.libpq)
    }
}

/// An outcome of this library that differs from libpq's on purpose, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deviation {
    /// This library's outcome.
    pub ours: Outcome,
    /// libpq's outcome in the same case.
    pub libpq: Outcome,
    /// Why the two count as agreeing.
    pub reason: &'static str,
}

/// Every accepted difference between this library's outcome and libpq's.
pub const ACCEPTED_DEVIATIONS: &[Deviation] = &[Deviation {
    ours: Outcome::Error(ErrorClass::ExpiredCert),
    libpq: Outcome::Error(ErrorClass::UntrustedCert),
    reason: "libpq cannot tell an expired certificate from an untrusted one (OpenSSL's \
             \"certificate verify failed\" for both); this library can",
}];

/// The accepted deviation that makes `ours` agree with `libpq`, if they differ and one does.
pub fn accepted_deviation(ours: Outcome, libpq: Outcome) -> Option<&'static Deviation> {
    ACCEPTED_DEVIATIONS
        .iter()
        .find(|d| d.ours == ours && d.libpq == libpq)
}

/// See [`CaseResult::agrees`].
pub fn outcomes_agree(ours: Outcome, libpq: Outcome) -> bool {
    ours == libpq || accepted_deviation(ours, libpq).is_some()
}

/// The user the cases log in as (the launcher's login role), and so the common name of the
/// client certificate.
pub const CLIENT_USER: &str = "tea";

/// The client side's files: the CAs, the client certificate of the `client-cert` profile, and
/// two HOME directories (with and without `.postgresql/root.crt`).
pub struct ClientFiles {
    _dir: Option<tempfile::TempDir>,
    right_ca: PathBuf,
    wrong_ca: PathBuf,
    empty_home: PathBuf,
    rooted_home: PathBuf,
    client_crt: PathBuf,
    client_key: PathBuf,
}

impl ClientFiles {
    /// Writes the client files for `factory` into a new temporary directory.
    pub fn new(factory: &CertFactory) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let right_ca = dir.path().join("right-ca.crt");
        let wrong_ca = dir.path().join("wrong-ca.crt");
        std::fs::write(&right_ca, factory.root_pem())?;
        std::fs::write(&wrong_ca, factory.other_root_pem())?;
        let empty_home = dir.path().join("home-empty");
        let rooted_home = dir.path().join("home-rooted");
        std::fs::create_dir_all(&empty_home)?;
        std::fs::create_dir_all(rooted_home.join(".postgresql"))?;
        std::fs::write(rooted_home.join(".postgresql/root.crt"), factory.root_pem())?;
        let client = factory
            .client(CLIENT_USER)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let client_crt = dir.path().join("client.crt");
        let client_key = dir.path().join("client.key");
        std::fs::write(&client_crt, &client.cert)?;
        // libpq refuses a private key that others can read.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&client_key)
            .and_then(|mut f| std::io::Write::write_all(&mut f, client.key.as_bytes()))?;
        Ok(Self {
            _dir: Some(dir),
            right_ca,
            wrong_ca,
            empty_home,
            rooted_home,
            client_crt,
            client_key,
        })
    }

    /// The client certificate (common name [`CLIENT_USER`], signed by the right CA).
    pub fn client_crt(&self) -> &Path {
        &self.client_crt
    }

    /// Its private key (mode 0600).
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// The `HOME` of a case with this root choice: with `.postgresql/root.crt` (the right CA)
    /// for [`Root::Default`], else an empty directory.
    pub fn home(&self, root: Root) -> &Path {
        match root {
            Root::Default => &self.rooted_home,
            _ => &self.empty_home,
        }
    }

    /// The CA that signed the server certificates.
    pub fn right_ca(&self) -> &Path {
        &self.right_ca
    }

    /// An unrelated CA.
    pub fn wrong_ca(&self) -> &Path {
        &self.wrong_ca
    }

    /// `HOME/.postgresql/root.crt` of a case with this root choice, when that home has one.
    pub fn home_root_crt(&self, root: Root) -> Option<PathBuf> {
        let path = self.home(root).join(".postgresql/root.crt");
        (root == Root::Default).then_some(path)
    }
}

/// The profile's launcher configuration.
pub fn server_profile(profile: &ServerProfile, factory: &CertFactory) -> Result<Profile, String> {
    let tls = match profile.cert {
        Some(kind) => {
            let pem = factory.server(kind).map_err(|e| e.to_string())?;
            Some(TlsFiles {
                cert_pem: pem.cert,
                key_pem: pem.key,
                client_ca_pem: (profile.hba == Hba::SslCert).then(|| factory.root_pem().to_owned()),
            })
        }
        None => None,
    };
    Ok(Profile {
        name: profile.name.to_string(),
        tls,
        hba: vec![profile.hba.line().to_owned()],
    })
}

/// The libpq keyword map of a case, in a fixed order, without the password: what libpq, this
/// library and every client of the client protocol are given.
pub fn params(
    case: &Case,
    port: u16,
    user: &str,
    files: &ClientFiles,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match case.host {
        HostForm::Name => {
            out.push(("host", case.profile.host_name.to_owned()));
            out.push(("hostaddr", "127.0.0.1".to_owned()));
        }
        HostForm::Ip => out.push(("host", "127.0.0.1".to_owned())),
    }
    out.push(("port", port.to_string()));
    out.push(("user", user.to_owned()));
    out.push(("dbname", "postgres".to_owned()));
    out.push(("sslmode", case.sslmode.as_str().to_owned()));
    match case.root {
        Root::Right => out.push(("sslrootcert", files.right_ca.display().to_string())),
        Root::Wrong => out.push(("sslrootcert", files.wrong_ca.display().to_string())),
        Root::None | Root::Default => {}
    }
    if case.profile.hba == Hba::SslCert {
        out.push(("sslcert", files.client_crt.display().to_string()));
        out.push(("sslkey", files.client_key.display().to_string()));
    }
    out.push(("connect_timeout", oracle::CONNECT_TIMEOUT_SECS.to_string()));
    out
}

/// A keyword map as a [`ConnInfo`].
pub fn to_conninfo(params: &[(&'static str, String)]) -> ConnInfo {
    let mut info = ConnInfo::new();
    for (key, value) in params {
        // Every key [`params`] and the client request give is a libpq keyword, so `set`
        // cannot refuse it.
        let _ = info.set(key, value.clone());
    }
    info
}

/// The connection string of a case (no password), quoted as libpq reads it.
pub fn conninfo(case: &Case, server: &PgServer, files: &ClientFiles) -> String {
    to_conninfo(&params(case, server.port(), server.user(), files)).to_keyword_value()
}

/// The real file system, with `HOME` replaced (and a few variables set): what this library sees
/// for a case.
struct CaseEnv<'a> {
    home: &'a Path,
    vars: &'a [(&'a str, &'a str)],
}

impl Environment for CaseEnv<'_> {
    fn var(&self, name: &str) -> Option<String> {
        if name == "HOME" {
            return Some(self.home.display().to_string());
        }
        self.vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }

    fn is_file(&self, path: &str) -> bool {
        Path::new(path).is_file()
    }

    fn file_exists(&self, path: &str) -> std::io::Result<bool> {
        crate::env::stat_exists(path)
    }
}

/// Runs one case through this library.
pub async fn run_ours(conninfo: &str, password: &str, home: &Path) -> (Outcome, Option<String>) {
    run_ours_with(conninfo, password, home, &[]).await
}

/// [`run_ours`] with environment variables set for this library (`SSL_CERT_FILE`, ...).
pub async fn run_ours_with(
    conninfo: &str,
    password: &str,
    home: &Path,
    vars: &[(&str, &str)],
) -> (Outcome, Option<String>) {
    let env = CaseEnv { home, vars };
    // The same path a user's YAML takes: config -> plan -> connect.
    let yaml_env = MapEnv::new().with_var("DSN", conninfo);
    let config = match load_str("connection_string: ${DSN}\n", "case.yaml", &yaml_env) {
        Ok(config) => config,
        Err(e) => return (Outcome::Error(ErrorClass::Config), Some(e.to_string())),
    };
    let plan = match plan(&config, &env) {
        Ok(plan) => plan,
        Err(e) => return (Outcome::Error(ErrorClass::Config), Some(e.to_string())),
    };
    let login = Login {
        user: None,
        password: Some(crate::secret::Secret::new(password)),
        ..Login::default()
    };
    match connect::connect(&plan, &login, &env).await {
        Ok(connected) => {
            // Ask the server, as the libpq side does, rather than trust our own report.
            let server_says = connected
                .client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .and_then(|row| row.try_get::<_, bool>(0));
            match server_says {
                Ok(ssl) if ssl == connected.tls.is_some() => {
                    (if ssl { Outcome::Tls } else { Outcome::Plain }, None)
                }
                Ok(ssl) => (
                    Outcome::Error(ErrorClass::Other),
                    Some(format!(
                        "the server says ssl={ssl} but this library reports tls={}",
                        connected.tls.is_some()
                    )),
                ),
                Err(e) => (
                    Outcome::Error(ErrorClass::Other),
                    Some(format!("pg_stat_ssl query failed: {e}")),
                ),
            }
        }
        Err(e) => (Outcome::Error(e.class()), Some(e.to_string())),
    }
}

/// The recorded libpq outcomes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recording {
    /// What recorded them (`psql (PostgreSQL) 15.x`).
    pub libpq: String,
    /// Case id -> libpq's outcome.
    pub cases: BTreeMap<String, String>,
    /// What the cases are, for readers in other languages (the TLS matrix's [`describe`]:
    /// `profiles`, `roots`, `host_forms`, `details`); empty for other recordings.
    #[serde(flatten)]
    pub description: serde_json::Map<String, serde_json::Value>,
}

impl Recording {
    /// Reads a recording; a missing file is an empty recording.
    pub fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes it, pretty, sorted by case id.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The recorded outcome of case `id`.
    pub fn get(&self, id: &str) -> Option<Outcome> {
        self.cases.get(id).and_then(|s| Outcome::parse(s))
    }
}

/// Runs every case of one profile on its own server, from `launcher`. `progress` is called after
/// each case.
pub fn run_profile(
    launcher: &Launcher,
    profile: &'static ServerProfile,
    factory: &CertFactory,
    files: &ClientFiles,
    recording: &Recording,
    runtime: &tokio::runtime::Runtime,
    progress: impl FnMut(&CaseResult),
) -> Result<(Vec<CaseResult>, String), String> {
    let config = server_profile(profile, factory)?;
    let server = launcher.start(&config).map_err(|e| e.to_string())?;
    let results = run_cases(&server, profile, files, recording, runtime, progress)?;
    Ok((results, server.server_version().to_string()))
}

/// Switches `server` to `profile` (a reload, proven in effect; see the launcher).
pub fn apply_profile(
    server: &mut PgServer,
    profile: &ServerProfile,
    factory: &CertFactory,
) -> Result<(), String> {
    let config = server_profile(profile, factory)?;
    server.apply(&config).map_err(|e| e.to_string())
}

/// Runs every case of `profile` on `server`, which must run that profile.
fn run_cases(
    server: &PgServer,
    profile: &'static ServerProfile,
    files: &ClientFiles,
    recording: &Recording,
    runtime: &tokio::runtime::Runtime,
    mut progress: impl FnMut(&CaseResult),
) -> Result<Vec<CaseResult>, String> {
    let mut results = Vec::new();
    for case in cases(profile) {
        let conninfo = conninfo(&case, server, files);
        let home = files.home(case.root);
        let (ours, ours_message) = runtime.block_on(run_ours(&conninfo, server.password(), home));
        let libpq = run_libpq(&conninfo, server, home)?;
        let result = CaseResult {
            case,
            ours,
            ours_message,
            libpq: libpq.outcome,
            libpq_message: libpq.message,
            recorded: recording.get(&case.id()),
        };
        progress(&result);
        results.push(result);
    }
    Ok(results)
}

/// Runs one case through libpq (psql).
pub fn run_libpq(
    conninfo: &str,
    server: &PgServer,
    home: &Path,
) -> Result<oracle::OracleResult, String> {
    let attempt = oracle::Attempt {
        conninfo,
        password: Some(server.password()),
        home,
    };
    oracle::run(&attempt).map_err(|e| e.to_string())
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every case's result, in matrix order.
    pub results: Vec<CaseResult>,
    /// `psql --version`.
    pub libpq: String,
    /// The server version.
    pub server: String,
    /// The launcher (`native`, or `docker (IMAGE)`).
    pub launcher: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Report {
    /// Cases where this library and libpq disagree.
    pub fn disagreements(&self) -> Vec<&CaseResult> {
        self.results.iter().filter(|r| !r.agrees()).collect()
    }

    /// Cases where libpq no longer does what the recording says, or that are not recorded.
    pub fn drift(&self) -> Vec<&CaseResult> {
        self.results
            .iter()
            .filter(|r| !r.matches_recording())
            .collect()
    }

    /// The recording this run would write.
    pub fn recording(&self) -> Recording {
        Recording {
            libpq: self.libpq.clone(),
            cases: self
                .results
                .iter()
                .map(|r| (r.case.id(), r.libpq.as_str().to_string()))
                .collect(),
            description: describe(),
        }
    }

    /// The JSON report for CI.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "libpq": self.libpq,
            "server": self.server,
            "launcher": self.launcher,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "cases": self.results.len(),
            "disagreements": self.disagreements().len(),
            "results": self.results.iter().map(|r| serde_json::json!({
                "id": r.case.id(),
                "ours": r.ours.as_str(),
                "libpq": r.libpq.as_str(),
                "recorded": r.recorded.map(Outcome::as_str),
                "agrees": r.agrees(),
                "ours_message": r.ours_message,
                "libpq_message": r.libpq_message,
            })).collect::<Vec<_>>(),
        })
    }
}

fn cell(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Plain => "plain",
        Outcome::Tls => "tls",
        Outcome::Error(ErrorClass::ServerNoTls) => "no-tls",
        Outcome::Error(ErrorClass::UntrustedCert) => "untrusted",
        Outcome::Error(ErrorClass::HostnameMismatch) => "name",
        Outcome::Error(ErrorClass::ExpiredCert) => "expired",
        Outcome::Error(ErrorClass::Rejected) => "rejected",
        Outcome::Error(ErrorClass::AuthFailed) => "auth",
        Outcome::Error(ErrorClass::Unreachable) => "unreach",
        Outcome::Error(ErrorClass::TargetMismatch) => "target",
        Outcome::Error(ErrorClass::Config) => "config",
        Outcome::Error(ErrorClass::Credentials) => "creds",
        Outcome::Error(ErrorClass::Other) => "other",
    }
}

impl fmt::Display for Report {
    /// Rows: profile x sslmode; columns: root x host form; a cell shows this library's outcome,
    /// marked `!` where libpq disagrees (libpq's outcome follows).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut columns = Vec::new();
        for root in Root::ALL {
            for host in HostForm::ALL {
                columns.push((root, host));
            }
        }
        write!(f, "{:<24} {:<12}", "profile", "sslmode")?;
        for (root, host) in &columns {
            write!(f, " {:<13}", format!("{}/{}", root.as_str(), host.as_str()))?;
        }
        writeln!(f)?;
        for profile in PROFILES {
            for mode in SslMode::ALL {
                let row: Vec<&CaseResult> = self
                    .results
                    .iter()
                    .filter(|r| r.case.profile.name == profile.name && r.case.sslmode == mode)
                    .collect();
                if row.is_empty() {
                    continue;
                }
                write!(f, "{:<24} {:<12}", profile.name, mode.as_str())?;
                for (root, host) in &columns {
                    let text = row
                        .iter()
                        .find(|r| r.case.root == *root && r.case.host == *host)
                        .map(|r| {
                            if r.agrees() {
                                cell(r.ours).to_string()
                            } else {
                                format!("!{}/{}", cell(r.ours), cell(r.libpq))
                            }
                        })
                        .unwrap_or_default();
                    write!(f, " {text:<13}")?;
                }
                writeln!(f)?;
            }
        }
        let disagree = self.disagreements().len();
        writeln!(
            f,
            "\n{} cases, {} agree with libpq, {} disagree ({}; server {}, {} launcher; {:.1} s)",
            self.results.len(),
            self.results.len() - disagree,
            disagree,
            self.libpq,
            self.server,
            self.launcher,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Runs the whole matrix on one server from `launcher`, switched from profile to profile by a
/// reload, and returns the report.
pub fn run_all(
    launcher: &Launcher,
    recording: &Recording,
    mut progress: impl FnMut(usize, usize, &CaseResult),
) -> Result<Report, String> {
    let started = Instant::now();
    let factory = CertFactory::new().map_err(|e| e.to_string())?;
    let files = ClientFiles::new(&factory).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let total: usize = PROFILES.iter().map(|p| cases(p).len()).sum();
    let mut report = Report {
        libpq: oracle::libpq_version().map_err(|e| e.to_string())?,
        launcher: launcher.describe(),
        ..Report::default()
    };
    let mut done = 0;
    let mut server: Option<PgServer> = None;
    for profile in PROFILES {
        let server = match server.as_mut() {
            Some(server) => {
                apply_profile(server, profile, &factory)?;
                server
            }
            None => server.insert(
                launcher
                    .start(&server_profile(profile, &factory)?)
                    .map_err(|e| e.to_string())?,
            ),
        };
        let results = run_cases(server, profile, &files, recording, &runtime, |r| {
            done += 1;
            progress(done, total, r);
        })?;
        report.results.extend(results);
        report.server = server.server_version().to_string();
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What the matrix's cases are, as language-neutral data (written into the recording beside
/// libpq's outcomes): every server profile, every root choice and host form, and per case the
/// keyword map it sends, with `<port>`, `<right-ca>` and `<wrong-ca>` standing for the run's
/// values.
pub fn describe() -> serde_json::Map<String, serde_json::Value> {
    use serde_json::{Value, json};
    let profiles: serde_json::Map<String, Value> = PROFILES
        .iter()
        .map(|p| {
            let certificate = p.cert.map(|kind| {
                let sans: Vec<String> = kind
                    .subject_alt_names()
                    .iter()
                    .map(|san| match san {
                        SubjectAltName::Dns(name) => format!("DNS:{name}"),
                        SubjectAltName::Ip(ip) => format!("IP:{ip}"),
                    })
                    .collect();
                json!({
                    "kind": kind.as_str(),
                    "common_name": kind.common_name(),
                    "subject_alt_names": sans,
                    "issuer": match kind.issuer() {
                        IssuerKind::Root => "right-ca",
                        IssuerKind::Intermediate => "intermediate of right-ca",
                        IssuerKind::OtherRoot => "wrong-ca",
                    },
                    "chain_served": if kind.serves_intermediate() {
                        "leaf + intermediate"
                    } else {
                        "leaf"
                    },
                    "expired": kind.is_expired(),
                })
            });
            (
                p.name.to_owned(),
                json!({
                    "ssl": p.cert.is_some(),
                    "certificate": certificate,
                    "hba": [p.hba.line()],
                    "client_ca": (p.hba == Hba::SslCert).then_some("right-ca"),
                    "host_name": p.host_name,
                }),
            )
        })
        .collect();
    let roots = json!({
        "no-root": "no sslrootcert; no ~/.postgresql/root.crt",
        "right-ca": "sslrootcert = the CA that signed the server certificates (its intermediate \
                     is not in the file); no ~/.postgresql/root.crt",
        "wrong-ca": "sslrootcert = an unrelated CA; no ~/.postgresql/root.crt",
        "default-root": "no sslrootcert; ~/.postgresql/root.crt = the CA that signed the server \
                         certificates",
    });
    let host_forms = json!({
        "name": "host = the profile's host_name, hostaddr = 127.0.0.1",
        "ip": "host = 127.0.0.1",
    });
    let placeholder = ClientFiles {
        _dir: None,
        right_ca: PathBuf::from("<right-ca>"),
        wrong_ca: PathBuf::from("<wrong-ca>"),
        empty_home: PathBuf::from("<home>"),
        rooted_home: PathBuf::from("<home>"),
        client_crt: PathBuf::from("<client-crt>"),
        client_key: PathBuf::from("<client-key>"),
    };
    let mut details = serde_json::Map::new();
    for profile in PROFILES {
        for case in cases(profile) {
            let params: serde_json::Map<String, Value> = params(&case, 0, "tea", &placeholder)
                .into_iter()
                .map(|(k, v)| {
                    let v = if k == "port" { "<port>".to_owned() } else { v };
                    (k.to_owned(), Value::String(v))
                })
                .collect();
            details.insert(
                case.id(),
                json!({
                    "profile": profile.name,
                    "sslmode": case.sslmode.as_str(),
                    "root": case.root.as_str(),
                    "host": case.host.as_str(),
                    "params": params,
                    "home_root_crt": case.root == Root::Default,
                }),
            );
        }
    }
    let mut out = serde_json::Map::new();
    out.insert("profiles".into(), Value::Object(profiles));
    out.insert("roots".into(), roots);
    out.insert("host_forms".into(), host_forms);
    out.insert("details".into(), Value::Object(details));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The case file says what the cases are: its description is exactly what [`describe`]
    /// gives (rewrite it with `tea-pgcloud conformance --record`), and it has every case, with
    /// libpq's outcome.
    #[test]
    fn the_recording_describes_every_case() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(RECORDING);
        let recording = Recording::load(&path).expect("the recording reads");
        let described = describe();
        assert_eq!(
            serde_json::Value::Object(recording.description.clone()),
            serde_json::Value::Object(described.clone()),
            "{RECORDING} does not describe the cases as the tables do: run `tea-pgcloud \
             conformance --record`"
        );
        let ids: Vec<String> = PROFILES.iter().flat_map(cases).map(|c| c.id()).collect();
        assert_eq!(ids.len(), 624);
        let details = described["details"].as_object().expect("details is a map");
        for id in &ids {
            assert!(recording.get(id).is_some(), "{id}: no recorded outcome");
            assert!(details.contains_key(id), "{id}: not described");
        }
        assert_eq!(details.len(), ids.len());
        assert_eq!(recording.cases.len(), ids.len());
    }

    #[test]
    fn every_accepted_deviation_differs_says_why_and_is_the_only_way_to_disagree_and_agree() {
        for d in ACCEPTED_DEVIATIONS {
            assert_ne!(d.ours, d.libpq, "{d:?}: not a deviation");
            assert!(!d.reason.trim().is_empty(), "{d:?}: no reason");
            assert!(outcomes_agree(d.ours, d.libpq), "{d:?}");
            // Accepted one way only: libpq's outcome in our place is still a disagreement.
            assert!(!outcomes_agree(d.libpq, d.ours), "{d:?}");
        }
        assert!(outcomes_agree(Outcome::Tls, Outcome::Tls));
        assert!(!outcomes_agree(Outcome::Tls, Outcome::Plain));
        assert!(outcomes_agree(
            Outcome::Error(ErrorClass::ExpiredCert),
            Outcome::Error(ErrorClass::UntrustedCert)
        ));
    }

    #[test]
    fn a_case_description_holds_its_keyword_map() {
        let details = describe();
        let case = &details["details"]["wildcard/verify-full/right-ca/name"];
        assert_eq!(case["params"]["host"], "db.tea.test");
        assert_eq!(case["params"]["hostaddr"], "127.0.0.1");
        assert_eq!(case["params"]["sslrootcert"], "<right-ca>");
        assert_eq!(case["params"]["port"], "<port>");
        assert_eq!(case["home_root_crt"], false);
        let rooted = &details["details"]["tls-on/require/default-root/ip"];
        assert_eq!(rooted["home_root_crt"], true);
        assert!(rooted["params"].get("sslrootcert").is_none());
        let profile = &details["profiles"]["intermediate-leaf-only"];
        assert_eq!(profile["certificate"]["chain_served"], "leaf");
        assert_eq!(profile["certificate"]["issuer"], "intermediate of right-ca");
        assert_eq!(
            details["profiles"]["tls-off"]["certificate"],
            serde_json::Value::Null
        );
    }
}
