//! A launched server ends with the process that launched it, however that process ends.
//!
//! Each test runs this program again as a child (`TEA_LIFETIME_CHILD=<launcher>-<ending>`) that
//! launches a server, prints where it is, and then either returns from `main` with the server
//! held in a `static` (statics are never dropped, as with the benches' shared servers) or waits
//! to be killed: with SIGKILL, or with SIGTERM sent to its whole process group (a job
//! controller's stop, a terminal's Ctrl-C). The parent then polls, within a generous budget, until the server
//! is gone: for the native launcher the postmaster's process and the private directory, for the
//! docker launcher the container. A server found still there when the budget runs out fails
//! the test, and the test removes it itself.
//!
//! The docker tests run when an engine answers and holds the image (`TEA_PG_IMAGE`, default as
//! the launcher's); otherwise they are ignored, saying why.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use tea_pgcloud::conformance::launcher::{Launcher, PgServer, Profile};

/// Names the child's launcher and how it ends.
const CHILD_ENV: &str = "TEA_LIFETIME_CHILD";
/// How long the child may take to report its server (a container may need an image start).
const REPORT_BUDGET: Duration = Duration::from_secs(180);
/// How long the server may take to go once the child has ended.
const GONE_BUDGET: Duration = Duration::from_secs(30);

/// Where the held server lives, so that it is never dropped.
static HELD: OnceLock<PgServer> = OnceLock::new();

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        child(&mode);
        // Returning from main: the process exits with HELD still alive.
        return;
    }
    let args = Arguments::from_args();
    #[cfg(feature = "docker")]
    if let Some(code) = tea_pgcloud::conformance::docker_shim::rerun_through_shim() {
        std::process::exit(code);
    }
    let docker_skip = docker_skip_reason();
    if let Some(why) = &docker_skip {
        eprintln!("server_lifetime: docker tests ignored: {why}");
    }
    let mut trials = Vec::new();
    for ending in [Ending::Exit, Ending::Kill, Ending::GroupTerm] {
        trials.push(Trial::test(
            format!("native_server_ends_when_the_launcher_{}", ending.verb()),
            move || native(ending).map_err(Failed::from),
        ));
    }
    for ending in [Ending::Exit, Ending::Kill] {
        trials.push(
            Trial::test(
                format!("docker_server_ends_when_the_launcher_{}", ending.verb()),
                move || docker(ending).map_err(Failed::from),
            )
            .with_ignored_flag(docker_skip.is_some()),
        );
    }
    libtest_mimic::run(&args, trials).exit();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Returns from `main` with the server in a static.
    Exit,
    /// Is killed with SIGKILL.
    Kill,
    /// Its process group gets SIGTERM.
    GroupTerm,
}

impl Ending {
    fn name(self) -> &'static str {
        match self {
            Self::Exit => "exit",
            Self::Kill => "kill",
            Self::GroupTerm => "term",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Exit => "exits_holding_it_in_a_static",
            Self::Kill => "is_sigkilled",
            Self::GroupTerm => "process_group_gets_sigterm",
        }
    }
}

fn profile() -> Profile {
    Profile::new(
        "lifetime",
        None,
        ["host all all 127.0.0.1/32 scram-sha-256"],
    )
}

/// The child: launches, reports `key=value` pairs on one line, waits until its standard input
/// ends (the parent has looked at the server), then ends as told.
fn child(mode: &str) {
    let (launcher, ending) = mode.split_once('-').unwrap_or((mode, "exit"));
    let started = match launcher {
        "native" => PgServer::start_native(&profile()),
        _ => docker_launcher().start(&profile()),
    };
    let server = started.unwrap_or_else(|e| {
        eprintln!("child: launching failed: {e}");
        std::process::exit(3);
    });
    // Admin SQL runs psql (native) or an exec (docker): children of this process that must not
    // keep anything of the server's alive.
    if let Err(e) = server.admin_sql("SELECT 1") {
        eprintln!("child: admin SQL failed: {e}");
        std::process::exit(3);
    }
    let mut line = format!("port={}", server.port());
    if let Some(dir) = server.dir() {
        let pid = fs::read_to_string(dir.join("data/postmaster.pid")).unwrap_or_default();
        line.push_str(&format!(
            " pid={} dir={}",
            pid.lines().next().unwrap_or_default().trim(),
            dir.display()
        ));
    }
    if let Some(id) = container_id(&server) {
        line.push_str(&format!(" container={id}"));
    }
    println!("{line}");
    if HELD.set(server).is_err() {
        std::process::exit(3);
    }
    // For `exit` the parent closes standard input; for the others it kills us while we wait.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    if ending != "exit" {
        std::process::exit(4);
    }
}

#[cfg(feature = "docker")]
fn container_id(server: &PgServer) -> Option<String> {
    server.docker().map(|d| d.container_id().to_owned())
}

#[cfg(not(feature = "docker"))]
fn container_id(_: &PgServer) -> Option<String> {
    None
}

#[cfg(feature = "docker")]
fn docker_launcher() -> Launcher {
    Launcher::Docker {
        image: tea_pgcloud::conformance::docker::default_image(),
    }
}

#[cfg(not(feature = "docker"))]
fn docker_launcher() -> Launcher {
    Launcher::Docker {
        image: String::new(),
    }
}

#[cfg(feature = "docker")]
fn docker_skip_reason() -> Option<String> {
    use tea_pgcloud::conformance::{docker, docker_shim};
    if !docker::engine_answers() {
        return Some(format!(
            "no Docker engine answers at {} (set DOCKER_HOST, or start one)",
            docker_shim::engine_socket().display()
        ));
    }
    let image = docker::default_image();
    if !docker::image_present(&image) {
        return Some(format!(
            "the engine does not hold {image} (conformance/image/build.sh 17, then \
             TEA_PG_IMAGE=tea-pgcloud/postgres:17)"
        ));
    }
    None
}

#[cfg(not(feature = "docker"))]
fn docker_skip_reason() -> Option<String> {
    Some("built without --features docker".to_owned())
}

/// What the child reported.
#[derive(Debug, Default)]
struct Report {
    port: u16,
    pid: Option<u32>,
    dir: Option<PathBuf>,
    container: Option<String>,
}

impl Report {
    fn parse(line: &str) -> Result<Self, String> {
        let mut report = Report::default();
        for pair in line.split_whitespace() {
            match pair.split_once('=') {
                Some(("port", v)) => report.port = v.parse().map_err(|_| line.to_owned())?,
                Some(("pid", v)) => report.pid = Some(v.parse().map_err(|_| line.to_owned())?),
                Some(("dir", v)) => report.dir = Some(PathBuf::from(v)),
                Some(("container", v)) => report.container = Some(v.to_owned()),
                _ => return Err(format!("the child reported {line:?}")),
            }
        }
        if report.port == 0 {
            return Err(format!("the child reported no port: {line:?}"));
        }
        Ok(report)
    }
}

/// Runs the child in `mode` and returns it with its report.
fn launch_child(mode: &str) -> Result<(Child, Report), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        // A process group of its own, which GroupTerm signals as a whole.
        .process_group(0)
        .env(CHILD_ENV, mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("running the child: {e}"))?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(REPORT_BUDGET) {
        Ok(line) if !line.trim().is_empty() => line,
        other => {
            let _ = child.kill();
            let status = child.wait().ok();
            return Err(format!(
                "the child reported nothing ({other:?}), exit status {status:?}"
            ));
        }
    };
    match Report::parse(line.trim()) {
        Ok(report) => Ok((child, report)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Ends the child as `ending` says.
fn end_child(mut child: Child, ending: Ending) -> Result<(), String> {
    match ending {
        Ending::Exit => {
            // The end of its standard input lets the child return from main.
            drop(child.stdin.take());
            let status = child.wait().map_err(|e| format!("waiting: {e}"))?;
            if !status.success() {
                return Err(format!("the child exited with {status}"));
            }
        }
        Ending::Kill => {
            // Child::kill sends SIGKILL.
            child.kill().map_err(|e| format!("kill: {e}"))?;
            let status = child.wait().map_err(|e| format!("waiting: {e}"))?;
            if status.code().is_some() {
                return Err(format!("the child was not killed: {status}"));
            }
        }
        Ending::GroupTerm => {
            let group = format!("-{}", child.id());
            let sent = Command::new("kill")
                .args(["-TERM", "--", &group])
                .status()
                .map_err(|e| format!("kill: {e}"))?;
            if !sent.success() {
                let _ = child.kill();
                return Err(format!("kill -TERM -- {group}: {sent}"));
            }
            let status = child.wait().map_err(|e| format!("waiting: {e}"))?;
            if status.code().is_some() {
                return Err(format!("the child was not killed: {status}"));
            }
        }
    }
    Ok(())
}

/// Polls `gone` until it holds or the budget runs out.
fn poll(mut gone: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + GONE_BUDGET;
    loop {
        if gone() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `pid` is the postmaster of `data` (its working directory), and not a zombie.
fn is_postmaster_of(pid: u32, data: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let zombie = fs::read_to_string(proc.join("stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true);
    let cwd = fs::read_link(proc.join("cwd")).ok();
    let data = fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
    !zombie && cwd.as_deref() == Some(data.as_path())
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(1),
    )
    .is_ok()
}

fn native(ending: Ending) -> Result<(), String> {
    let (child, report) = launch_child(&format!("native-{}", ending.name()))?;
    let dir = report.dir.clone().ok_or("no dir reported")?;
    let pid = report.pid.ok_or("no pid reported")?;
    let data = dir.join("data");
    if !is_postmaster_of(pid, &data) {
        let _ = end_child(child, Ending::Kill);
        return Err(format!(
            "pid {pid} is not the postmaster of {}",
            data.display()
        ));
    }
    let mut problems = Vec::new();
    if ending != Ending::Exit
        && let Err(e) = pipe_writers_of_watchdog(child.id(), &data)
    {
        problems.push(e);
    }
    end_child(child, ending)?;
    let ended = poll(|| !is_postmaster_of(pid, &data) && !dir.exists() && !accepts(report.port));
    if ended {
        return if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        };
    }
    let state = format!(
        "postmaster {pid} running: {}, {} exists: {}, port {} accepts: {}",
        is_postmaster_of(pid, &data),
        dir.display(),
        dir.exists(),
        report.port,
        accepts(report.port)
    );
    // Remove the leak ourselves, only what is provably the child's server.
    if is_postmaster_of(pid, &data) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        poll(|| !is_postmaster_of(pid, &data));
    }
    let _ = fs::remove_dir_all(&dir);
    problems.push(format!(
        "the server outlived its launcher by {GONE_BUDGET:?}: {state}"
    ));
    Err(problems.join("\n"))
}

/// The processes holding the write end of the watchdog's pipe must be the launcher alone: a
/// server or psql process that inherited it would keep the watchdog from ever seeing the end.
/// Finds the watchdog as the process whose command line names `data`, and its stdin pipe.
fn pipe_writers_of_watchdog(launcher: u32, data: &Path) -> Result<(), String> {
    let data = fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
    let needle = data.to_string_lossy().into_owned();
    let mut watchdogs = Vec::new();
    for entry in fs::read_dir("/proc")
        .map_err(|e| format!("/proc: {e}"))?
        .flatten()
    {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.ends_with("sh"))
            && args.iter().any(|a| a == "tea-pgcloud-watchdog")
            && args.iter().any(|a| a == &needle)
        {
            watchdogs.push(pid);
        }
    }
    let [watchdog] = watchdogs[..] else {
        return Err(format!(
            "expected one watchdog process for {needle}, found {watchdogs:?}"
        ));
    };
    let pipe = fs::read_link(format!("/proc/{watchdog}/fd/0"))
        .map_err(|e| format!("the watchdog's stdin: {e}"))?;
    let writers = writers_of(&pipe)?;
    let expected = BTreeSet::from([launcher]);
    if writers == expected {
        Ok(())
    } else {
        Err(format!(
            "the write end of the watchdog's pipe {} is held by {writers:?}, expected only the \
             launcher {launcher}",
            pipe.display()
        ))
    }
}

/// The processes with `pipe` (a `pipe:[inode]` link) open for writing.
fn writers_of(pipe: &Path) -> Result<BTreeSet<u32>, String> {
    let mut writers = BTreeSet::new();
    for entry in fs::read_dir("/proc")
        .map_err(|e| format!("/proc: {e}"))?
        .flatten()
    {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).ok().as_deref() != Some(pipe) {
                continue;
            }
            let info = fs::read_to_string(entry.path().join("fdinfo").join(fd.file_name()))
                .unwrap_or_default();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .unwrap_or(0);
            // O_WRONLY (1) or O_RDWR (2).
            if flags & 0o3 != 0 {
                writers.insert(pid);
            }
        }
    }
    Ok(writers)
}

#[cfg(feature = "docker")]
fn container_exists(id: &str) -> Result<bool, String> {
    use tea_pgcloud::conformance::docker_shim;
    let socket = docker_shim::engine_socket();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime
        .block_on(docker_shim::engine_api_version(&socket))
        .map_err(|e| format!("the engine stopped answering: {e}"))?;
    Ok(runtime
        .block_on(docker_shim::engine_get(
            &socket,
            &format!("/containers/{id}/json"),
        ))
        .is_ok())
}

#[cfg(feature = "docker")]
fn docker(ending: Ending) -> Result<(), String> {
    let (child, report) = launch_child(&format!("docker-{}", ending.name()))?;
    let id = report.container.clone().ok_or("no container reported")?;
    if !container_exists(&id)? {
        let _ = end_child(child, Ending::Kill);
        return Err(format!("container {id} is not there while the child runs"));
    }
    end_child(child, ending)?;
    let mut failure = None;
    let ended = poll(|| match container_exists(&id) {
        Ok(exists) => !exists,
        Err(e) => {
            failure = Some(e);
            true
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    if ended {
        return Ok(());
    }
    let _ = Command::new("docker")
        .args(["rm", "-f", "-v", &id])
        .stdout(Stdio::null())
        .status();
    Err(format!(
        "container {id} outlived its launcher by {GONE_BUDGET:?}"
    ))
}

#[cfg(not(feature = "docker"))]
fn docker(_: Ending) -> Result<(), String> {
    Err("built without --features docker".to_owned())
}
