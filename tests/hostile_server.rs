//! This crate's `ping` against a hostile server, beside libpq (psql 15) as the oracle.
//!
//! Every [`Mode`] of `conformance/hostile.rs` times the six sslmodes (`connect_timeout=3`, the
//! CA file as `sslrootcert` for `verify-ca` and `verify-full`, an empty `HOME`) is run once
//! through `psql` and once through the real CLI, `tea-pgcloud ping FILE --json` with a bare
//! catalog (`connection_string: "..."` and `credentials: {source: env}`, so the password comes
//! from `POSTGRES_PASSWORD`). Each client run
//! gets a server of its own, so what the server records belongs to that run alone.
//!
//! # The contract
//!
//! Outcomes may differ (this crate may refuse more, and words its errors its own way); what may
//! not:
//! - this crate connects (the server sent `ReadyForQuery`) where libpq does not, or claims a
//!   connection (exit 0) that the server never completed;
//! - this crate sends the password where libpq does not, or in plain text where libpq does
//!   not;
//! - this crate runs longer than [`TIME_BUDGET`]: `connect_timeout` plus [`TIME_MARGIN`], a
//!   generous margin because the machine is shared and noisy; it is a bound on a runaway,
//!   not a performance figure;
//! - its peak resident memory exceeds [`RSS_BOUND_KIB`] (64 MiB; a connection attempt needs a
//!   few MiB);
//! - it prints more than [`OUTPUT_BOUND`] bytes (64 KiB) on stdout and stderr together.
//!
//! libpq's own figures are measured and printed, never judged: they are the reference.
//! The harness checks itself too: in [`Mode::Baseline`] both clients must connect under every
//! sslmode (the suite can see a success), and psql must never claim a connection that the
//! server did not complete.
//!
//! # Measuring
//!
//! - **Peak RSS**: each client runs under GNU time, `/usr/bin/time -f %M -o FILE`, which
//!   reports the child's `ru_maxrss` from `wait4(2)`: the exact high-water mark of its
//!   resident set, in KiB, kept by the kernel (sampling `/proc` would miss short peaks).
//!   `conformance/setup.sh` installs it (Debian package `time`).
//! - **Time**: wall time from spawn to exit, on this process's monotonic clock.
//! - **Output**: bytes read from the client's stdout and stderr pipes, all of them (only the
//!   first MiB of each is kept).
//! - **Connected / password**: from the server's record ([`Summary`]), after the server has
//!   seen every connection end (or 3 s passed).
//!
//! Every client is killed after [`KILL_AFTER`] (its GNU time reports the peak even then);
//! [`PARALLEL`] runs at a time. The report table is printed and written to
//! `hostile-server-report.txt` under cargo's `CARGO_TARGET_TMPDIR`.
//! `TEA_HOSTILE_MODES=baseline,huge-error` runs only the modes named.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tea_pgcloud::conformance::certs::{CertFactory, Pem, ServerCertKind};
use tea_pgcloud::conformance::hostile::{
    Channel, End, HUGE_ERROR_BYTES, HostileServer, MAX_BYTES_SENT, Mode, SERVER_VERSION, Summary,
};
use tea_pgcloud::conformance::oracle;
use tea_pgcloud::sslmode::SslMode;

const BIN: &str = env!("CARGO_BIN_EXE_tea-pgcloud");

/// The `connect_timeout` both clients get, in seconds.
const CONNECT_TIMEOUT_SECS: u64 = 3;

/// What this crate may take beyond `connect_timeout`: process start-up, a debug build, a
/// shared machine.
const TIME_MARGIN: Duration = Duration::from_secs(2);

/// The longest this crate may run on one case: `connect_timeout` plus [`TIME_MARGIN`].
const TIME_BUDGET: Duration = Duration::from_secs(CONNECT_TIMEOUT_SECS).saturating_add(TIME_MARGIN);

/// The largest peak resident set this crate may reach, in KiB (64 MiB).
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// The most this crate may print, stdout and stderr together (64 KiB).
const OUTPUT_BOUND: u64 = 64 * 1024;

/// When a client is killed, whatever it is doing.
const KILL_AFTER: Duration = Duration::from_secs(30);

/// Client runs at a time.
const PARALLEL: usize = 4;

/// GNU time.
const GNU_TIME: &str = "/usr/bin/time";

/// How much of each output stream is kept (all of it is counted).
const KEEP: usize = 1024 * 1024;

/// How much of the end of each output stream is kept beyond [`KEEP`].
const KEEP_TAIL: usize = 64 * 1024;

/// The user and the password both clients log in with.
const USER: &str = "tea";
const PASSWORD: &str = "hostile-test-password";

/// The environment variable that picks modes.
const MODES_ENV: &str = "TEA_HOSTILE_MODES";

/// Files shared by every run.
struct Fixture {
    dir: tempfile::TempDir,
    ca: PathBuf,
    home: PathBuf,
    identity: Pem,
}

impl Fixture {
    fn new() -> Self {
        let factory = CertFactory::new().expect("a certificate factory");
        let dir = tempfile::tempdir().expect("a temp dir");
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, factory.root_pem()).expect("writes the CA");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).expect("an empty HOME");
        let identity = factory
            .server(ServerCertKind::Good)
            .expect("a server certificate");
        Self {
            dir,
            ca,
            home,
            identity,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Libpq,
    Crate,
}

/// What was read from one output stream.
#[derive(Debug, Default)]
struct Capture {
    /// Every byte read.
    bytes: u64,
    /// The first [`KEEP`] bytes.
    kept: Vec<u8>,
    /// The last [`KEEP_TAIL`] bytes after `kept` (where psql's `psql: error:` line is).
    tail: std::collections::VecDeque<u8>,
}

impl Capture {
    /// Whether all of it was kept.
    fn whole(&self) -> bool {
        self.kept.len() as u64 == self.bytes
    }

    /// The kept text, with the tail after a cut when not whole.
    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if !self.tail.is_empty() {
            let (a, b) = self.tail.as_slices();
            text.push_str("\n[...]\n");
            text.push_str(&String::from_utf8_lossy(&[a, b].concat()));
        }
        text
    }
}

/// One client process, measured.
#[derive(Debug)]
struct Measured {
    status: Option<ExitStatus>,
    killed: bool,
    elapsed: Duration,
    rss_kib: Option<u64>,
    stdout: Capture,
    stderr: Capture,
}

/// One client run on one case.
#[derive(Debug)]
struct Run {
    /// `tls`, `plain`, an error class, or `killed`.
    outcome: String,
    /// The client's error message, first line, shortened.
    message: String,
    /// The client said it connected (exit 0).
    claimed: bool,
    killed: bool,
    elapsed: Duration,
    rss_kib: Option<u64>,
    output: u64,
    server: Summary,
}

impl Run {
    fn password(&self) -> &'static str {
        match (self.server.password, self.server.password_plain) {
            (_, true) => "plain",
            (true, false) => "tls",
            _ => "-",
        }
    }
}

/// Reads `pipe` to its end, counting everything, keeping the first [`KEEP`] bytes.
fn capture<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Capture> {
    thread::spawn(move || {
        let mut c = Capture::default();
        let Some(mut pipe) = pipe else { return c };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    c.bytes += n as u64;
                    let room = KEEP.saturating_sub(c.kept.len()).min(n);
                    c.kept.extend_from_slice(&buf[..room]);
                    c.tail.extend(&buf[room..n]);
                    let over = c.tail.len().saturating_sub(KEEP_TAIL);
                    c.tail.drain(..over);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        c
    })
}

/// Kills the program GNU time runs (by PID, so time still reports its peak), and time
/// itself with its process group if it does not exit then.
fn kill(child: &mut Child) {
    let pid = child.id();
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for grandchild in children.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", grandchild]).status();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    // Its own process group (see `measure`): time and whatever it started.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status();
}

/// Runs `program args` under GNU time with `env` only, measured, killed after [`KILL_AFTER`].
fn measure(program: &Path, args: &[&str], env: &[(&str, &str)], rss_file: &Path) -> Measured {
    let mut command = Command::new(GNU_TIME);
    command
        .args(["-f", "%M", "-o"])
        .arg(rss_file)
        .arg(program)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = command.spawn().unwrap_or_else(|e| {
        panic!("cannot run {GNU_TIME} (GNU time; conformance/setup.sh installs it): {e}")
    });
    let stdout = capture(child.stdout.take());
    let stderr = capture(child.stderr.take());
    let mut killed = false;
    let status = loop {
        match child.try_wait().expect("waits for the client") {
            Some(status) => break Some(status),
            None if started.elapsed() >= KILL_AFTER => {
                killed = true;
                kill(&mut child);
                break child.wait().ok();
            }
            None => thread::sleep(Duration::from_millis(5)),
        }
    };
    let elapsed = started.elapsed();
    let stdout = stdout.join().expect("the stdout reader");
    let stderr = stderr.join().expect("the stderr reader");
    // "Command exited with non-zero status 1" (or "terminated by signal 9"), then %M.
    let rss_kib = std::fs::read_to_string(rss_file).ok().and_then(|text| {
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.trim().parse().ok())
    });
    Measured {
        status,
        killed,
        elapsed,
        rss_kib,
        stdout,
        stderr,
    }
}

fn conninfo(port: u16, sslmode: SslMode, ca: &Path) -> String {
    let mut s = format!(
        "host=127.0.0.1 port={port} user={USER} dbname={USER} sslmode={} connect_timeout={CONNECT_TIMEOUT_SECS}",
        sslmode.as_str()
    );
    if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) {
        write!(s, " sslrootcert={}", ca.display()).expect("writes to a String");
    }
    s
}

/// The first line of `text`, at most 100 characters.
fn short(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut out: String = line.trim().chars().take(100).collect();
    if line.trim().chars().count() > 100 {
        out.push_str("...");
    }
    out
}

fn run_one(fixture: &Fixture, mode: Mode, sslmode: SslMode, client: Client, id: usize) -> Run {
    let server = HostileServer::start(mode, &fixture.identity).expect("a hostile server");
    let conninfo = conninfo(server.port(), sslmode, &fixture.ca);
    let rss_file = fixture.dir.path().join(format!("rss-{id}"));
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let home = fixture.home.to_str().expect("a UTF-8 temp path");
    let measured = match client {
        Client::Libpq => measure(
            &oracle::psql_program(),
            &["-X", "-A", "-t", "-w", "-d", &conninfo, "-c", oracle::QUERY],
            &[
                ("PATH", &path),
                ("HOME", home),
                ("LC_ALL", "C"),
                ("PGPASSWORD", PASSWORD),
            ],
            &rss_file,
        ),
        Client::Crate => {
            let config = fixture.dir.path().join(format!("catalog-{id}.yaml"));
            std::fs::write(
                &config,
                format!("connection_string: \"{conninfo}\"\ncredentials:\n  source: env\n"),
            )
            .expect("writes the catalog");
            let config = config.to_str().expect("a UTF-8 temp path").to_owned();
            measure(
                Path::new(BIN),
                &["ping", &config, "--json"],
                &[
                    ("PATH", &path),
                    ("HOME", home),
                    ("LC_ALL", "C"),
                    ("POSTGRES_PASSWORD", PASSWORD),
                ],
                &rss_file,
            )
        }
    };
    server.settle(Duration::from_secs(3));
    let summary = server.summary();
    drop(server);

    let stdout = measured.stdout.text();
    let stderr = measured.stderr.text();
    let success = measured.status.is_some_and(|s| s.success());
    let (outcome, message) = if measured.killed {
        (
            "killed".to_owned(),
            format!("killed after {} s", KILL_AFTER.as_secs()),
        )
    } else {
        match client {
            Client::Libpq => {
                let status = measured
                    .status
                    .map_or_else(|| "no status".to_owned(), |s| s.to_string());
                let r =
                    oracle::interpret_exit(success, &status, &stdout, &stderr, measured.elapsed);
                (
                    r.outcome.to_string(),
                    short(r.message.as_deref().unwrap_or("")),
                )
            }
            Client::Crate => crate_outcome(&stdout, &stderr, &measured),
        }
    };
    let message = if success && message.is_empty() {
        format!("connected ({outcome})")
    } else {
        message
    };
    Run {
        outcome,
        message,
        claimed: success,
        killed: measured.killed,
        elapsed: measured.elapsed,
        rss_kib: measured.rss_kib,
        output: measured.stdout.bytes + measured.stderr.bytes,
        server: summary,
    }
}

/// `ping --json`'s outcome: `tls`, `plain`, or the error class, and the error message.
fn crate_outcome(stdout: &str, stderr: &str, measured: &Measured) -> (String, String) {
    if !measured.stdout.whole() {
        // Too big to parse: the class is near the start of the report.
        const CLASS: &str = "\"class\": \"";
        let class = stdout
            .find(CLASS)
            .map(|at| &stdout[at + CLASS.len()..])
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("unparsed");
        return (
            class.to_owned(),
            format!("stdout of {} bytes", measured.stdout.bytes),
        );
    }
    let Ok(report) = serde_json::from_str::<serde_json::Value>(stdout) else {
        return ("no-json".to_owned(), short(stderr));
    };
    if report["connected"] == true {
        let tls = if report["tls"].is_null() {
            "plain"
        } else {
            "tls"
        };
        return (tls.to_owned(), String::new());
    }
    let class = report["error"]["class"].as_str().unwrap_or("?").to_owned();
    let message = report["error"]["message"].as_str().unwrap_or("");
    (class, short(message))
}

/// One mode x sslmode, both clients.
struct Case {
    mode: Mode,
    sslmode: SslMode,
    libpq: Run,
    krate: Run,
}

impl Case {
    /// How the two outcomes compare, beyond the contract: `same` (both connected the same
    /// way, or both refused), `stricter` (libpq connected, this crate refused), `different`.
    fn comparison(&self) -> &'static str {
        let connected = |r: &Run| r.server.ready;
        match (connected(&self.libpq), connected(&self.krate)) {
            (false, false) => "same",
            (true, true) if self.libpq.outcome == self.krate.outcome => "same",
            (true, false) => "stricter",
            _ => "different",
        }
    }

    /// Where this crate breaks the contract (see the module documentation).
    fn violations(&self) -> Vec<String> {
        let (l, c) = (&self.libpq, &self.krate);
        let mut v = Vec::new();
        if c.server.ready && !l.server.ready {
            v.push("connected where libpq did not".to_owned());
        }
        if c.claimed && !c.server.ready {
            v.push("claimed a connection the server never completed".to_owned());
        }
        if c.server.password && !l.server.password {
            v.push("sent the password where libpq did not".to_owned());
        }
        if c.server.password_plain && !l.server.password_plain {
            v.push("sent the password in plain text where libpq did not".to_owned());
        }
        if c.killed || c.elapsed > TIME_BUDGET {
            v.push(format!(
                "ran {:.1} s, budget {} s",
                c.elapsed.as_secs_f64(),
                TIME_BUDGET.as_secs()
            ));
        }
        match c.rss_kib {
            None => v.push("peak RSS not measured".to_owned()),
            Some(kib) if kib > RSS_BOUND_KIB => v.push(format!(
                "peak RSS {}, bound {}",
                mib(kib * 1024),
                mib(RSS_BOUND_KIB * 1024)
            )),
            Some(_) => {}
        }
        if c.output > OUTPUT_BOUND {
            v.push(format!(
                "printed {}, bound {}",
                bytes(c.output),
                bytes(OUTPUT_BOUND)
            ));
        }
        v
    }

    /// Where the harness cannot be trusted.
    fn harness_problems(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.libpq.claimed && !self.libpq.server.ready {
            v.push("psql claims a connection the server never completed".to_owned());
        }
        if self.mode == Mode::Baseline {
            for (name, run) in [("libpq", &self.libpq), ("this crate", &self.krate)] {
                if !(run.claimed && run.server.ready) {
                    v.push(format!(
                        "{name} did not connect to the baseline: {} {}",
                        run.outcome, run.message
                    ));
                }
            }
        }
        v
    }
}

fn mib(b: u64) -> String {
    format!("{:.1}M", b as f64 / (1024.0 * 1024.0))
}

fn bytes(b: u64) -> String {
    if b < 1024 {
        format!("{b}B")
    } else if b < 1024 * 1024 {
        format!("{:.1}K", b as f64 / 1024.0)
    } else {
        mib(b)
    }
}

fn cells(run: &Run) -> String {
    format!(
        "{:<16} {:<5} {:>6.2}s {:>7} {:>7}",
        run.outcome,
        run.password(),
        run.elapsed.as_secs_f64(),
        run.rss_kib
            .map_or_else(|| "?".to_owned(), |k| mib(k * 1024)),
        bytes(run.output)
    )
}

fn report(cases: &[Case], total: Duration) -> String {
    let mut out = String::from(
        "outcome: tls / plain (connected) or the error class; pw: the password as the server \
         received it (- none, tls, plain); time: wall time; RSS: peak resident set (GNU time \
         %M); output: stdout + stderr\n\n",
    );
    let head = format!(
        "{:<16} {:<5} {:>7} {:>7} {:>7}",
        "outcome", "pw", "time", "RSS", "output"
    );
    writeln!(
        out,
        "{:<27} {:<11} | libpq: {head} | this crate: {head} | verdict",
        "mode", "sslmode"
    )
    .expect("writes to a String");
    for case in cases {
        let v = case.violations();
        let verdict = if v.is_empty() {
            format!("ok ({})", case.comparison())
        } else {
            format!("FAIL: {}", v.join("; "))
        };
        writeln!(
            out,
            "{:<27} {:<11} |        {} |             {} | {verdict}",
            case.mode.as_str(),
            case.sslmode.as_str(),
            cells(&case.libpq),
            cells(&case.krate),
        )
        .expect("writes to a String");
    }
    let failing: Vec<&Case> = cases
        .iter()
        .filter(|c| !c.violations().is_empty())
        .collect();
    let count = |what: &str| cases.iter().filter(|c| c.comparison() == what).count();
    writeln!(
        out,
        "\n{} cases, {} failing ({} with libpq's outcome, {} stricter, {} different); total {:.1} s, {PARALLEL} runs at a time; budget {} s, RSS bound {}, output bound {}",
        cases.len(),
        failing.len(),
        count("same"),
        count("stricter"),
        count("different"),
        total.as_secs_f64(),
        TIME_BUDGET.as_secs(),
        mib(RSS_BOUND_KIB * 1024),
        bytes(OUTPUT_BOUND)
    )
    .expect("writes to a String");
    if !failing.is_empty() {
        writeln!(out, "\nmessages of the failing cases:").expect("writes to a String");
        for c in failing {
            writeln!(
                out,
                "  {} / {}\n    libpq:      {}\n    this crate: {}",
                c.mode,
                c.sslmode.as_str(),
                c.libpq.message,
                c.krate.message
            )
            .expect("writes to a String");
        }
    }
    out
}

/// The modes to run: all, or those named in [`MODES_ENV`].
fn modes() -> Vec<Mode> {
    match std::env::var(MODES_ENV) {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|m| {
                Mode::parse(m.trim())
                    .unwrap_or_else(|| panic!("{MODES_ENV}: no mode {:?}", m.trim()))
            })
            .collect(),
        _ => Mode::ALL.to_vec(),
    }
}

#[test]
fn this_crate_against_a_hostile_server_beside_libpq() {
    assert!(
        Path::new(GNU_TIME).exists(),
        "{GNU_TIME} (GNU time) is missing: run conformance/setup.sh"
    );
    let fixture = Fixture::new();
    let modes = modes();
    let jobs: Vec<(Mode, SslMode, Client)> = modes
        .iter()
        .flat_map(|m| SslMode::ALL.into_iter().map(move |s| (*m, s)))
        .flat_map(|(m, s)| [(m, s, Client::Libpq), (m, s, Client::Crate)])
        .collect();
    let results: Mutex<Vec<Option<Run>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&(mode, sslmode, client)) = jobs.get(i) else {
                        break;
                    };
                    let run = run_one(&fixture, mode, sslmode, client, i);
                    results.lock().expect("results")[i] = Some(run);
                }
            });
        }
    });
    let total = started.elapsed();
    let mut runs = results.into_inner().expect("results").into_iter();
    let mut cases = Vec::new();
    for &(mode, sslmode, _) in jobs.iter().step_by(2) {
        let libpq = runs.next().flatten().expect("a libpq run");
        let krate = runs.next().flatten().expect("a crate run");
        cases.push(Case {
            mode,
            sslmode,
            libpq,
            krate,
        });
    }
    let text = report(&cases, total);
    println!("{text}");
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-server-report.txt");
    let _ = std::fs::write(&file, &text);

    let harness: Vec<String> = cases
        .iter()
        .flat_map(|c| {
            c.harness_problems()
                .into_iter()
                .map(move |p| format!("{} / {}: {p}", c.mode, c.sslmode.as_str()))
        })
        .collect();
    assert!(
        harness.is_empty(),
        "the harness is not trustworthy:\n{}\n\n{text}",
        harness.join("\n")
    );
    let failing: Vec<String> = cases
        .iter()
        .filter(|c| !c.violations().is_empty())
        .map(|c| {
            format!(
                "{} / {}: {}",
                c.mode,
                c.sslmode.as_str(),
                c.violations().join("; ")
            )
        })
        .collect();
    assert!(
        failing.is_empty(),
        "{} of {} cases break the contract (report also in {}):\n{}",
        failing.len(),
        cases.len(),
        file.display(),
        failing.join("\n")
    );
}

// --- the server itself -------------------------------------------------------------------

/// A v3 startup packet for [`USER`].
fn startup_packet() -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for s in ["user", USER, "database", USER, ""] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    let mut packet = u32::try_from(body.len() + 4)
        .expect("small")
        .to_be_bytes()
        .to_vec();
    packet.extend(body);
    packet
}

fn raw_client(server: &HostileServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    stream
}

fn identity() -> Pem {
    CertFactory::new()
        .expect("a factory")
        .server(ServerCertKind::Good)
        .expect("a certificate")
}

#[test]
fn baseline_serves_a_real_client_and_records_it() {
    let server = HostileServer::start(Mode::Baseline, &identity()).expect("a server");
    let port = server.port();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(port)
            .user(USER)
            .password(PASSWORD)
            .dbname(USER)
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connects to the baseline");
        let driver = tokio::spawn(connection);
        let row = client
            .query_one("SHOW server_version", &[])
            .await
            .expect("answers an extended query");
        assert_eq!(row.get::<_, &str>(0), SERVER_VERSION);
        let rows = client
            .simple_query(oracle::QUERY)
            .await
            .expect("answers a simple query");
        let ssl = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        });
        assert_eq!(ssl.as_deref(), Some("f"), "a plain connection says so");
        drop(client);
        let _ = driver.await;
    });
    assert!(
        server.settle(Duration::from_secs(10)),
        "the connection ends"
    );
    let records = server.connections();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.startup, Some(Channel::Plain));
    assert_eq!(r.user.as_deref(), Some(USER));
    assert_eq!(r.password, Some(Channel::Plain));
    assert!(r.authenticated && r.ready && !r.tls, "{r:?}");
    assert_eq!(r.queries, 2);
    assert_eq!(r.end, Some(End::ClientClosed));
    assert!(r.bytes_sent > 0 && r.bytes_received > 0, "{r:?}");
}

#[test]
fn plaintext_after_s_sends_the_request_with_the_s() {
    let server = HostileServer::start(Mode::PlaintextAfterS, &identity()).expect("a server");
    let mut stream = raw_client(&server);
    let mut ssl_request = 8u32.to_be_bytes().to_vec();
    ssl_request.extend_from_slice(&80_877_103u32.to_be_bytes());
    stream.write_all(&ssl_request).expect("writes");
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < 10 {
        let n = stream.read(&mut buf).expect("reads the answer");
        assert!(n > 0, "closed after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        got, b"SR\0\0\0\x08\0\0\0\x03",
        "S, then AuthenticationCleartextPassword"
    );
}

#[test]
fn huge_error_arrives_whole_and_as_declared() {
    let server = HostileServer::start(Mode::HugeError, &identity()).expect("a server");
    let mut stream = raw_client(&server);
    stream.write_all(&startup_packet()).expect("writes");
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).expect("a header");
    assert_eq!(head[0], b'E');
    let declared = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("the rest, then the close");
    assert_eq!(
        rest.len() + 4,
        declared,
        "the length it declares is the one it sends"
    );
    let text = rest
        .split(|b| *b == 0)
        .find(|f| f.first() == Some(&b'M'))
        .expect("a message field");
    assert_eq!(text.len() - 1, HUGE_ERROR_BYTES);
    assert!(server.settle(Duration::from_secs(10)));
    assert_eq!(server.connections()[0].end, Some(End::ModeClosed));
}

#[test]
fn endless_notices_stop_when_the_client_leaves() {
    let server = HostileServer::start(Mode::EndlessNotices, &identity()).expect("a server");
    let mut stream = raw_client(&server);
    stream.write_all(&startup_packet()).expect("writes");
    let mut buf = vec![0u8; 256 * 1024];
    stream.read_exact(&mut buf).expect("notices");
    assert_eq!(buf[0], b'N');
    drop(stream);
    assert!(
        server.settle(Duration::from_secs(10)),
        "the server stops writing"
    );
    let r = &server.connections()[0];
    assert_eq!(r.end, Some(End::ClientClosed), "{r:?}");
    assert!(r.bytes_sent < MAX_BYTES_SENT, "{r:?}");
}

#[test]
fn dropping_the_server_closes_its_connections() {
    let server = HostileServer::start(Mode::TarpitBeforeLogin, &identity()).expect("a server");
    let mut stream = raw_client(&server);
    stream.write_all(&startup_packet()).expect("writes");
    // The tarpit holds the connection: nothing comes...
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("a read timeout");
    let mut buf = [0u8; 16];
    let err = stream.read(&mut buf).expect_err("nothing is sent");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    // ...until the server is dropped: then the socket closes.
    drop(server);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{n} bytes from a tarpit"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}
