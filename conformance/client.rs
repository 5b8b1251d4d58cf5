//! The live client protocol (`conformance/clients/PROTOCOL.md`): the TLS matrix through
//! another PostgreSQL client.
//!
//! A client is a program that reads one JSON request per line (a case: its libpq keyword map,
//! the same as a URI, the files, the `HOME` to use, a time limit) and answers one JSON line
//! (`tls`, `plain` or `fail`). [`ClientProcess`] runs one such program and survives it: a reply
//! that is late, malformed, for another case, or missing because the program ended is reported
//! for that case, the program is killed with its process group and started again, and after
//! [`MAX_FAILURES_IN_A_ROW`] such failures the client is given up. Nothing a client does can
//! hang the run: every wait is bounded.
//!
//! [`run`] starts one PostgreSQL server, switches it through the matrix's profiles by reload,
//! and for every case runs libpq (psql, the reference) and then each client. A client's claim
//! that it connected is checked against the server log (`log_connections`): the request names a
//! unique `application_name`, and only an authorized connection under that name, with the
//! claimed encryption, confirms the claim. The verdicts and reports are in
//! [`super::verdict`].

use std::fmt;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Outcome;
use super::certs::CertFactory;
use super::launcher::{Launcher, PgServer};
use super::matrix::{self, Case, ClientFiles, PROFILES, Recording};
use super::oracle;
use super::protocol::read_small;
pub use super::protocol::{
    Claim, Fault, MAX_FAILURES_IN_A_ROW, Reply, Seen, confirms, connections_in_log, seen_in_log,
};
use super::verdict::{ClientResult, Expectations};
use crate::conninfo::ConnInfo;
use crate::lines::{Line, LineProcess};

/// The longest reply line read, in bytes; a longer one is a bad reply.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// How long the harness waits for each reply (`timeout_s` in the request): libpq's per-attempt
/// connect timeout twice over, as psql is given.
pub const CASE_TIMEOUT: Duration = oracle::TIMEOUT;

/// How long the server may take to show a connection in its log once the client has answered
/// (a container's log arrives through the engine).
const LOG_WAIT: Duration = Duration::from_secs(3);

/// The environment variable a client's command sees naming this program, so that the
/// `tea-pgcloud` client's manifest can run `"$TEA_PGCLOUD" conformance --serve-client`.
pub const SELF_ENV: &str = "TEA_PGCLOUD";

/// What a client's manifest (`client.yaml`) or command line says.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// The name in reports.
    pub name: String,
    /// The driver and its version, when the manifest says (informative).
    pub driver: Option<String>,
    /// The command, run with `sh -c` from the working directory.
    pub command: String,
    /// The expectations file, if any.
    pub expectations: Option<PathBuf>,
}

impl ClientSpec {
    /// A `--client` argument: a folder holding a `client.yaml` (its `expectations.yaml` beside
    /// it, when present), or a command (its expectations from `expectations`, else an
    /// `expectations.yaml` beside the first file the command names).
    pub fn from_arg(arg: &str, expectations: Option<&Path>) -> Result<Self, String> {
        let dir = Path::new(arg);
        if dir.join("client.yaml").is_file() {
            let mut spec = Self::from_dir(dir)?;
            if let Some(path) = expectations {
                spec.expectations = Some(path.to_path_buf());
            }
            return Ok(spec);
        }
        if dir.is_dir() {
            return Err(
                "a folder without a client.yaml (see conformance/clients/PROTOCOL.md)".into(),
            );
        }
        if arg.trim().is_empty() {
            return Err("an empty command".into());
        }
        let named_file = arg.split_whitespace().map(Path::new).find(|p| p.is_file());
        let beside = named_file
            .and_then(Path::parent)
            .map(|d| d.join("expectations.yaml"))
            .filter(|p| p.is_file());
        // `.../asyncpg/client.py` is the asyncpg client; `/tmp/liar.py` is `liar`.
        let name = named_file
            .and_then(|file| match file.file_stem() {
                Some(stem) if stem != "client" && stem != "main" => Some(stem),
                _ => file.parent().and_then(Path::file_name),
            })
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| arg.split_whitespace().next().unwrap_or(arg).to_owned());
        Ok(Self {
            name,
            driver: None,
            command: arg.to_owned(),
            expectations: expectations.map(Path::to_path_buf).or(beside),
        })
    }

    /// Reads `DIR/client.yaml` (`name`, `command`, optional `driver`).
    pub fn from_dir(dir: &Path) -> Result<Self, String> {
        let path = dir.join("client.yaml");
        let text = read_small(&path)?;
        let node =
            crate::yaml::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
        let field = |key: &str| -> Option<String> {
            node.get(key)
                .and_then(|n| n.as_scalar())
                .map(str::to_owned)
                .filter(|s| !s.trim().is_empty())
        };
        let command =
            field("command").ok_or_else(|| format!("{}: `command` is missing", path.display()))?;
        let name = field("name").unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "client".to_owned())
        });
        let expectations = Some(dir.join("expectations.yaml")).filter(|p| p.is_file());
        Ok(Self {
            name,
            driver: field("driver"),
            command,
            expectations,
        })
    }
}

/// A client program speaking the protocol, started on first use and again after each failure.
pub struct ClientProcess {
    spec: ClientSpec,
    env: Vec<(String, String)>,
    running: Option<LineProcess>,
    failures_in_a_row: usize,
    given_up: bool,
}

impl fmt::Debug for ClientProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientProcess")
            .field("name", &self.spec.name)
            .field("running", &self.running.is_some())
            .field("failures_in_a_row", &self.failures_in_a_row)
            .field("given_up", &self.given_up)
            .finish()
    }
}

impl ClientProcess {
    /// A client to run with `env` added to its environment (besides [`SELF_ENV`]).
    pub fn new(spec: ClientSpec, env: Vec<(String, String)>) -> Self {
        let mut env = env;
        if let Ok(exe) = std::env::current_exe() {
            env.push((SELF_ENV.to_owned(), exe.display().to_string()));
        }
        Self {
            spec,
            env,
            running: None,
            failures_in_a_row: 0,
            given_up: false,
        }
    }

    /// The client's manifest.
    pub fn spec(&self) -> &ClientSpec {
        &self.spec
    }

    /// Sends `request` (whose id is `id`) and waits up to `timeout` for the reply.
    pub fn ask(&mut self, id: &str, request: &Value, timeout: Duration) -> Result<Reply, Fault> {
        if self.given_up {
            return Err(Fault::NotRun);
        }
        let result = self.exchange(id, request, timeout);
        match &result {
            Ok(_) => self.failures_in_a_row = 0,
            Err(_) => {
                self.failures_in_a_row += 1;
                if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW {
                    self.given_up = true;
                    if let Some(running) = self.running.take() {
                        running.stop();
                    }
                }
            }
        }
        result
    }

    fn exchange(&mut self, id: &str, request: &Value, timeout: Duration) -> Result<Reply, Fault> {
        if self.running.is_none() {
            let running = LineProcess::start(
                &self.spec.command,
                &self.env,
                MAX_REPLY_BYTES,
                Some(&self.spec.name),
            )
            .map_err(Fault::NoStart)?;
            self.running = Some(running);
        }
        let Some(running) = self.running.as_mut() else {
            return Err(Fault::NoStart("not started".into()));
        };
        // A line already waiting was written after the previous reply: the protocol allows one
        // line per request.
        if let Some(line) = running.pending() {
            let why = match line {
                Line::Text(text) => format!(
                    "an extra line after the previous reply: {}",
                    shown(&String::from_utf8_lossy(&text))
                ),
                Line::TooLong => "an extra, overlong line after the previous reply".to_owned(),
                Line::End => return Err(self.ended()),
            };
            return Err(self.restart(Fault::BadReply(why)));
        }
        if running.send(&request.to_string()).is_err() {
            return Err(self.ended());
        }
        match running.recv(timeout) {
            Some(Line::Text(text)) => match parse_reply(id, &text) {
                Ok(reply) => Ok(reply),
                Err(why) => Err(self.restart(Fault::BadReply(why))),
            },
            Some(Line::TooLong) => Err(self.restart(Fault::BadReply(format!(
                "a reply line longer than {MAX_REPLY_BYTES} bytes"
            )))),
            Some(Line::End) => Err(self.ended()),
            None => Err(self.restart(Fault::Timeout(timeout))),
        }
    }

    /// Kills the client (it starts again for the next case) and returns `fault`.
    fn restart(&mut self, fault: Fault) -> Fault {
        if let Some(running) = self.running.take() {
            running.stop();
        }
        fault
    }

    /// The client closed its output: waits for it to end and reports its status.
    fn ended(&mut self) -> Fault {
        match self.running.take() {
            Some(running) => Fault::Exited(running.end().0),
            None => Fault::Exited("exit status unknown".into()),
        }
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        // Closing its input ends a well-behaved client; one that lingers is killed.
        if let Some(running) = self.running.take() {
            running.end();
        }
    }
}

/// A client's text as shown in a report: bounded, control characters escaped.
fn shown(text: &str) -> String {
    crate::text::escape_controls(&crate::text::bounded(text.trim_end(), 300)).to_string()
}

/// Checks one reply line against the request's id.
pub fn parse_reply(id: &str, line: &[u8]) -> Result<Reply, String> {
    let text = std::str::from_utf8(line).map_err(|_| "the reply is not UTF-8".to_owned())?;
    let value: Value = serde_json::from_str(text.trim_end())
        .map_err(|e| format!("not JSON ({e}): {}", shown(text)))?;
    let Some(object) = value.as_object() else {
        return Err(format!("not a JSON object: {}", shown(text)));
    };
    match object.get("id") {
        Some(Value::String(got)) if got == id => {}
        Some(Value::String(got)) => {
            return Err(format!(
                "the reply is for case {:?}, not {id:?}",
                shown(got)
            ));
        }
        _ => return Err(format!("no string `id`: {}", shown(text))),
    }
    let claim = object
        .get("outcome")
        .and_then(Value::as_str)
        .and_then(Claim::parse)
        .ok_or_else(|| format!("`outcome` is not tls, plain or fail: {}", shown(text)))?;
    let message = match object.get("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(shown(m)),
        Some(other) => Some(shown(&other.to_string())),
    };
    Ok(Reply { claim, message })
}

/// The request for one case (see PROTOCOL.md): the keyword map with the password and the
/// case's unique `application_name`, the same as a URI, the home and the files.
pub fn request(
    case: &Case,
    server: &PgServer,
    files: &ClientFiles,
    application_name: &str,
    timeout: Duration,
) -> Value {
    let mut params = matrix::params(case, server.port(), server.user(), files);
    params.push(("password", server.password().to_owned()));
    params.push(("application_name", application_name.to_owned()));
    let info = matrix::to_conninfo(&params);
    let map: serde_json::Map<String, Value> = params
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    json!({
        "id": case.id(),
        "params": map,
        "uri": info.to_uri(),
        "home": files.home(case.root).display().to_string(),
        "files": {
            "right_ca": files.right_ca().display().to_string(),
            "wrong_ca": files.wrong_ca().display().to_string(),
            "home_root_crt": files.home_root_crt(case.root).map(|p| p.display().to_string()),
            "client_crt": files.client_crt().display().to_string(),
            "client_key": files.client_key().display().to_string(),
        },
        "timeout_s": timeout.as_secs().max(1),
    })
}

/// One client's part of a run.
#[derive(Debug)]
pub struct ClientRun {
    /// The client.
    pub process: ClientProcess,
    /// Its expectations (empty when it has no file).
    pub expectations: Expectations,
    /// Its result per case, in matrix order.
    pub results: Vec<ClientResult>,
    /// How long it may take per case ([`CASE_TIMEOUT`] unless changed).
    pub timeout: Duration,
}

impl ClientRun {
    /// A client and its expectations file (read now: a bad file stops the run before it starts).
    pub fn new(spec: ClientSpec) -> Result<Self, String> {
        let expectations = match &spec.expectations {
            Some(path) => Expectations::load(path)?,
            None => Expectations::default(),
        };
        Ok(Self {
            process: ClientProcess::new(spec, Vec::new()),
            expectations,
            results: Vec::new(),
            timeout: CASE_TIMEOUT,
        })
    }
}

/// The run's facts besides the clients' results.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// `psql --version`.
    pub libpq: String,
    /// The server version.
    pub server: String,
    /// The launcher (`native`, or `docker (IMAGE)`).
    pub launcher: String,
    /// Wall time.
    pub elapsed: Duration,
    /// Cases where libpq's live outcome is not the recorded one: (id, live, recorded).
    pub drift: Vec<(String, Outcome, Option<Outcome>)>,
}

/// Runs the matrix through libpq and every client on one server from `launcher`, switched from
/// profile to profile by reload; only the cases matching one of `select` (case-id patterns, see
/// [`super::verdict::pattern_matches`]) when it is not empty. `progress(done, total, case id)`
/// is called after each case.
pub fn run(
    launcher: &Launcher,
    recording: &Recording,
    clients: &mut [ClientRun],
    select: &[String],
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<RunInfo, String> {
    let selected = |case: &Case| {
        select.is_empty()
            || select
                .iter()
                .any(|p| super::verdict::pattern_matches(p, &case.id()))
    };
    let started = Instant::now();
    let factory = CertFactory::new().map_err(|e| e.to_string())?;
    let files = ClientFiles::new(&factory).map_err(|e| e.to_string())?;
    let mut info = RunInfo {
        libpq: oracle::libpq_version().map_err(|e| e.to_string())?,
        launcher: launcher.describe(),
        ..RunInfo::default()
    };
    let run_tag = crate::conformance::server::random_hex(4).map_err(|e| e.to_string())?;
    let total = PROFILES
        .iter()
        .flat_map(matrix::cases)
        .filter(|c| selected(c))
        .count();
    if total == 0 {
        return Err(format!("no case matches {}", select.join(", ")));
    }
    let mut done = 0;
    let mut sequence = 0usize;
    let mut pending = Vec::new();
    let mut server: Option<PgServer> = None;
    for profile in PROFILES {
        let cases: Vec<Case> = matrix::cases(profile)
            .into_iter()
            .filter(|c| selected(c))
            .collect();
        if cases.is_empty() {
            continue;
        }
        let server = match server.as_mut() {
            Some(server) => {
                matrix::apply_profile(server, profile, &factory)?;
                server
            }
            None => {
                let started = launcher
                    .start(&matrix::server_profile(profile, &factory)?)
                    .map_err(|e| e.to_string())?;
                // Every authorized connection is logged with its application_name and TLS
                // state: how a client's claim is checked. ALTER SYSTEM outlives the profile
                // reloads.
                started
                    .admin_sql("ALTER SYSTEM SET log_connections = on;\nSELECT pg_reload_conf();")
                    .map_err(|e| e.to_string())?;
                server.insert(started)
            }
        };
        info.server = server.server_version().to_owned();
        for case in cases {
            let id = case.id();
            let conninfo = matrix::conninfo(&case, server, &files);
            let libpq = matrix::run_libpq(&conninfo, server, files.home(case.root))?;
            let recorded = recording.get(&id);
            if recorded != Some(libpq.outcome) {
                info.drift.push((id.clone(), libpq.outcome, recorded));
            }
            for (n, client) in clients.iter_mut().enumerate() {
                sequence += 1;
                let application_name = format!("tea-ck-{run_tag}-{sequence}");
                let request = request(&case, server, &files, &application_name, client.timeout);
                let mut answer = client.process.ask(&id, &request, client.timeout);
                // A client's message may quote its connection string: the run's password
                // never reaches a report.
                if let Ok(Reply {
                    message: Some(message),
                    ..
                }) = &mut answer
                    && message.contains(server.password())
                {
                    *message = message.replace(server.password(), "<password>");
                }
                pending.push(Pending {
                    client: n,
                    case,
                    libpq: libpq.outcome,
                    libpq_message: libpq.message.clone(),
                    answer,
                    application_name,
                });
            }
            done += 1;
            progress(done, total, &id);
        }
        // The profile's claims are checked against the server log in one read (a container's
        // log arrives through the engine, so the read waits, up to LOG_WAIT, until every
        // claimed connection can be there).
        let log = read_log(server, &pending);
        let seen = connections_in_log(&log);
        for p in pending.drain(..) {
            let seen = match &p.answer {
                Ok(_) => seen
                    .get(p.application_name.as_str())
                    .copied()
                    .unwrap_or_default(),
                Err(_) => Seen::default(),
            };
            clients[p.client].results.push(ClientResult::judge(
                p.case,
                p.libpq,
                p.libpq_message,
                p.answer,
                seen,
            ));
        }
    }
    info.elapsed = started.elapsed();
    Ok(info)
}

/// A client's answer on one case, waiting for the server log.
struct Pending {
    client: usize,
    case: Case,
    libpq: Outcome,
    libpq_message: Option<String>,
    answer: Result<Reply, Fault>,
    application_name: String,
}

/// The whole server log, read again until it confirms every `tls` or `plain` claim of `pending`
/// or [`LOG_WAIT`] passes.
fn read_log(server: &PgServer, pending: &[Pending]) -> String {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let log = server.log_tail(usize::MAX);
        let seen = connections_in_log(&log);
        let all_there = pending.iter().all(|p| match &p.answer {
            Ok(reply) => confirms(
                seen.get(p.application_name.as_str())
                    .copied()
                    .unwrap_or_default(),
                reply.claim,
            ),
            Err(_) => true,
        });
        if all_there || Instant::now() >= deadline {
            return log;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Serves the client protocol for this library (`tea-pgcloud conformance --serve-client`): each
/// request's keyword map goes through the same plan-and-connect path as the matrix's own runs.
pub fn serve(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(request) => runtime.block_on(serve_one(&request)),
            Err(e) => {
                json!({"id": null, "outcome": "fail", "message": format!("bad request: {e}")})
            }
        };
        writeln!(output, "{reply}")?;
        output.flush()?;
    }
    Ok(())
}

async fn serve_one(request: &Value) -> Value {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let reply = |claim: Claim, message: Option<String>| json!({"id": id, "outcome": claim.as_str(), "message": message});
    let Some(params) = request.get("params").and_then(Value::as_object) else {
        return reply(Claim::Fail, Some("the request has no `params` map".into()));
    };
    let mut info = ConnInfo::new();
    let mut password = String::new();
    for (key, value) in params {
        let Some(value) = value.as_str() else {
            return reply(Claim::Fail, Some(format!("`{key}` is not a string")));
        };
        if key == "password" {
            password = value.to_owned();
        } else if let Err(e) = info.set(key, value) {
            return reply(Claim::Fail, Some(e.to_string()));
        }
    }
    let home = request
        .get("home")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .unwrap_or_default();
    let (outcome, message) = matrix::run_ours(&info.to_keyword_value(), &password, &home).await;
    reply(Claim::of(outcome), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_must_carry_the_request_id_and_an_outcome() {
        let ok = parse_reply(
            "a/b/c/d",
            br#"{"id":"a/b/c/d","outcome":"tls","message":null}"#,
        );
        assert_eq!(
            ok,
            Ok(Reply {
                claim: Claim::Tls,
                message: None
            })
        );
        let other = parse_reply("a/b/c/d", br#"{"id":"x","outcome":"tls"}"#).expect_err("an error");
        assert!(other.contains("not \"a/b/c/d\""), "{other}");
        assert!(parse_reply("a", br#"{"id":"a","outcome":"connected"}"#).is_err());
        assert!(parse_reply("a", b"tls").is_err());
        assert!(parse_reply("a", br#"["a","tls"]"#).is_err());
        assert!(parse_reply("a", b"\xff\xfe").is_err());
    }

    #[test]
    fn the_log_confirms_by_exact_application_name_and_encryption() {
        let log = "\
2026-12-07 10:00:00.000 UTC [1] LOG:  connection received: host=127.0.0.1 port=5\n\
2026-12-07 10:00:00.001 UTC [1] LOG:  connection authorized: user=tea database=postgres application_name=tea-ck-ab-17 SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)\n\
2026-12-07 10:00:00.002 UTC [2] LOG:  connection authorized: user=tea database=postgres application_name=tea-ck-ab-170\n\
2026-12-07 10:00:00.003 UTC [3] LOG:  connection authorized: user=tea database=postgres application_name=tea-ck-ab-18\n";
        let seen = seen_in_log(log, "tea-ck-ab-17");
        assert_eq!(
            seen,
            Seen {
                tls: true,
                plain: false
            }
        );
        assert!(confirms(seen, Claim::Tls));
        assert!(!confirms(seen, Claim::Plain));
        let plain = seen_in_log(log, "tea-ck-ab-18");
        assert!(plain.plain && !plain.tls);
        assert_eq!(seen_in_log(log, "tea-ck-ab-1"), Seen::default());
    }
}
