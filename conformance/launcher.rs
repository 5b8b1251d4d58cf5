//! Throwaway PostgreSQL servers for the conformance suite (DESIGN.md, "Launching PostgreSQL for
//! tests"). [`PgServer`] is a server from either launcher, chosen by [`Launcher`]
//! (`TEA_PG_LAUNCHER`: `native`, `docker` or `auto`):
//!
//! - `native` (this module): the machine's own server binaries;
//! - `docker` (cargo feature `docker`, `conformance::docker`): a container through
//!   testcontainers, image `TEA_PG_IMAGE`.
//!
//! Either way the server listens on 127.0.0.1, has the login role `tea` with a random
//! SCRAM-SHA-256 password, and runs a [`Profile`]: the TLS files the server presents and its
//! `pg_hba.conf` lines. [`PgServer::apply`] switches to another profile, proven in effect before
//! it returns; dropping the [`PgServer`] stops the server and removes what it left behind, also
//! when a test panics, and a watchdog does the same when the launching process ends without
//! dropping it (see "When the launching process ends").
//!
//! The native launcher runs `initdb` into a fresh private directory, starts the server on a free
//! loopback port (unix socket in the same directory) and stops it with `pg_ctl stop -m
//! immediate`.
//!
//! # Layout of the private directory
//!
//! ```text
//! tea-pg-<random>/         0700; owned by the postgres OS user when we run as root
//!   data/                  the cluster (initdb --no-sync)
//!     postgresql.conf      initdb's, plus `include 'tea_base.conf'` and `include 'tea_profile.conf'`
//!     tea_base.conf        port, listen address, socket directory, speed settings
//!     tea_profile.conf     ssl on/off, the TLS file paths, `tea.generation` (a reload sentinel)
//!     pg_hba.conf          `local all all trust`, then the profile's lines
//!   sock/                  unix_socket_directories
//!   tls/                   server.crt, server.key (0600), client-ca.crt
//!   server.log             the server's log (pg_ctl -l)
//! ```
//!
//! # Root
//!
//! `initdb` and `postgres` refuse to run as root. When the effective uid is 0 every server-side
//! command (`initdb`, `pg_ctl`, the admin `psql`) runs as the `postgres` OS user through
//! `runuser -u postgres --`, and the directory and every file the server reads are owned by that
//! user. Otherwise they run directly, as the current user.
//!
//! # How `apply` makes a profile take effect
//!
//! Since PostgreSQL 10 the `ssl*` settings and `pg_hba.conf` reload on SIGHUP, so
//! [`PgServer::apply`] rewrites the files and runs `pg_ctl reload`. A reload is only trusted once it
//! is proven in effect:
//!
//! 1. every profile bumps a sentinel setting, `tea.generation`, in `tea_profile.conf`. The
//!    postmaster re-reads the configuration, `pg_hba.conf` and the TLS files in one step (its
//!    SIGHUP processing) before it forks any later backend, and backends inherit its settings: so
//!    a fresh admin connection that sees the new generation proves the postmaster has processed
//!    the whole reload;
//! 2. the server log written since the reload must not say `... was not reloaded` (a bad
//!    `pg_hba.conf`, or TLS files that failed to load: the server would keep the old ones) or
//!    `contains errors` (a configuration file only partly applied);
//! 3. `SHOW ssl` must match the profile and, when the profile has TLS off, the postmaster must
//!    answer an `SSLRequest` with `N`.
//!
//! When any check fails the server is restarted instead (`pg_ctl stop -m fast` and start), which
//! either applies the profile or fails with the server log. [`PgServer::apply_with`] can force a
//! restart.
//!
//! # When the launching process ends
//!
//! Servers held in a `static` (the benches' and some test targets' shared servers) are never
//! dropped, and a process killed by a signal drops nothing. So every server, from either
//! launcher, has a watchdog from before it is started: a small `sh` (named
//! [`WATCHDOG_NAME`] in `ps`) whose standard input is a pipe whose only write end the launching
//! process holds. The write end is close-on-exec (as every pipe std opens), so neither the
//! server nor `psql` nor any other child inherits it, and the kernel closes it when the process
//! ends, however it ends: returning from `main`, `exit`, a panic, SIGTERM, SIGKILL. The
//! watchdog then cleans up:
//!
//! - native: the postmaster of the private directory (the pid in `data/postmaster.pid`, checked
//!   against the process's working directory, which is its data directory) gets SIGQUIT (an
//!   immediate shutdown), SIGKILL if it has not gone within 5 s, then the directory is removed.
//!   Were a `pg_ctl start` still under way when the watchdog looks, the postmaster it starts
//!   finds its lock file gone and shuts itself down within a minute (PostgreSQL rechecks the
//!   lock file);
//! - docker: the containers labelled with the server's own `tea-pgcloud.watchdog` label are
//!   removed (`docker rm -f -v`, else the engine's API through `curl`), through `DOCKER_HOST` and
//!   then the default engine (a version shim may have ended with the launcher).
//!
//! The watchdog runs in a process group of its own and ignores SIGHUP, SIGINT, SIGQUIT and
//! SIGTERM, so a Ctrl-C or a `kill` sent to the launcher's process group does not take it
//! along. Dropping a server still stops it in order first (`pg_ctl stop`, `docker rm`); the
//! drop then tells the watchdog it has nothing to do and waits for it to end (a few
//! milliseconds), or, when the orderly stop failed, lets it clean up and waits for that.
//! (A parent-death signal, `PR_SET_PDEATHSIG`, would not do: it fires when the spawning
//! *thread* ends, and test threads end all the time.)
//!
//! # Environment
//!
//! - `TEA_PG_BINDIR`: the directory holding `initdb`, `pg_ctl` and `postgres` (see
//!   [`find_bindir`]).
//! - `TEA_PG_TMPDIR`: where the private directories go; by default the temp dir, or `/tmp` when
//!   the postgres OS user could not reach the temp dir or its path is too long for a socket.

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The superuser `initdb` creates; the harness's admin connections use it over the unix socket.
const SUPERUSER: &str = "postgres";
/// The OS user the server runs as when we are root.
const OS_USER: &str = "postgres";
/// The login role the tests connect as.
const ROLE: &str = "tea";
/// The only address the server listens on, and the only one this module connects to.
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// How many server-log lines an error carries.
const ERROR_LOG_LINES: usize = 30;
/// `pg_ctl -t`: how long start and stop may take, in seconds.
const PG_CTL_TIMEOUT_SECS: &str = "30";
/// How long a reload may take to show up.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the TCP port may take to accept once `pg_ctl` says the server is ready.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Start attempts, each on a fresh port, when the port was taken between picking and binding.
const PORT_ATTEMPTS: usize = 5;
/// Server-log text that means a reload did not (fully) take effect.
pub(crate) const RELOAD_FAILURE_MARKERS: [&str; 2] = ["was not reloaded", "contains errors"];
/// Server-log text that means the port was taken.
const PORT_TAKEN_MARKERS: [&str; 2] = ["Address already in use", "could not bind"];

/// TLS files a server presents.
#[derive(Clone)]
pub struct TlsFiles {
    /// The certificate chain as served: the leaf first, then any intermediates (PEM).
    pub cert_pem: String,
    /// The leaf's private key (PEM, unencrypted).
    pub key_pem: String,
    /// The CA certificates that client certificates must chain to (`ssl_ca_file`), for
    /// client-certificate (`cert`) authentication; `None` leaves `ssl_ca_file` empty.
    pub client_ca_pem: Option<String>,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .field(
                "client_ca_pem",
                &self
                    .client_ca_pem
                    .as_ref()
                    .map(|ca| format!("<{} bytes>", ca.len())),
            )
            .finish()
    }
}

/// How a server is configured: its TLS files (`None` = ssl off) and its `pg_hba.conf` lines.
#[derive(Clone, Debug)]
pub struct Profile {
    /// A name for messages and the header of the generated files.
    pub name: String,
    /// What the server presents; `None` turns TLS off (`ssl = off`).
    pub tls: Option<TlsFiles>,
    /// Full `pg_hba.conf` lines, e.g. `hostssl all all 127.0.0.1/32 scram-sha-256`. The launcher
    /// puts `local all all trust` before them, for its own admin connections over the unix
    /// socket.
    pub hba: Vec<String>,
}

impl Profile {
    /// A profile from its parts.
    pub fn new<I, S>(name: impl Into<String>, tls: Option<TlsFiles>, hba: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.into(),
            tls,
            hba: hba.into_iter().map(Into::into).collect(),
        }
    }
}

/// How [`PgServer::apply_with`] makes a profile take effect (the native launcher).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// `pg_ctl reload`, proven in effect (see the module documentation), else a restart.
    Reload,
    /// `pg_ctl stop -m fast`, then start again.
    Restart,
}

/// Why the launcher failed: what it was doing, the command, its stderr and the server log's tail.
#[derive(Debug)]
pub struct LaunchError {
    what: String,
    command: Option<String>,
    stderr: Option<String>,
    log_tail: Option<String>,
}

impl LaunchError {
    pub(crate) fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            command: None,
            stderr: None,
            log_tail: None,
        }
    }

    fn io(what: impl fmt::Display, err: &io::Error) -> Self {
        Self::new(format!("{what}: {err}"))
    }

    #[cfg(feature = "docker")]
    pub(crate) fn with_command(mut self, command: impl Into<String>) -> Self {
        self.command = Some(command.into());
        self
    }

    #[cfg(feature = "docker")]
    pub(crate) fn with_stderr(mut self, stderr: impl Into<String>) -> Self {
        self.stderr = Some(stderr.into());
        self
    }

    pub(crate) fn with_log(mut self, tail: String) -> Self {
        if self.log_tail.is_none() && !tail.trim().is_empty() {
            self.log_tail = Some(tail);
        }
        self
    }

    /// What failed, in one line.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The command that failed, if a command did.
    pub fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// The failed command's standard error.
    pub fn stderr(&self) -> Option<&str> {
        self.stderr.as_deref()
    }

    /// The last lines of the server log at the time of the failure.
    pub fn log_tail(&self) -> Option<&str> {
        self.log_tail.as_deref()
    }
}

fn write_indented(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for line in text.trim_end().lines() {
        write!(f, "\n    {line}")?;
    }
    Ok(())
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if let Some(command) = &self.command {
            write!(f, "\n  command: {command}")?;
        }
        if let Some(stderr) = self.stderr.as_deref().filter(|s| !s.trim().is_empty()) {
            f.write_str("\n  stderr:")?;
            write_indented(f, stderr)?;
        }
        if let Some(tail) = &self.log_tail {
            f.write_str("\n  server log (last lines):")?;
            write_indented(f, tail)?;
        }
        Ok(())
    }
}

impl std::error::Error for LaunchError {}

/// Where the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`) are.
///
/// In order: `TEA_PG_BINDIR` (used as is, an error if it lacks them); the directory of the first
/// `initdb` on `PATH` (symlinks resolved); `pg_config --bindir`; `/usr/lib/postgresql/*/bin` and
/// `/usr/pgsql-*/bin`, highest version first. The error says how to install them.
pub fn find_bindir() -> Result<PathBuf, LaunchError> {
    if let Some(dir) = env::var_os("TEA_PG_BINDIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if has_server_binaries(&dir) {
            Ok(dir)
        } else {
            Err(LaunchError::new(format!(
                "TEA_PG_BINDIR={} does not hold the PostgreSQL server binaries (initdb, pg_ctl, \
                 postgres)",
                dir.display()
            )))
        };
    }
    if let Some(path) = env::var_os("PATH") {
        for dir in env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if !initdb.is_file() {
                continue;
            }
            let real = fs::canonicalize(&initdb).unwrap_or(initdb);
            if let Some(parent) = real.parent().filter(|p| has_server_binaries(p)) {
                return Ok(parent.to_path_buf());
            }
        }
    }
    if let Ok(out) = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server_binaries(&dir) {
            return Ok(dir);
        }
    }
    let mut candidates = Vec::new();
    for (parent, prefix) in [("/usr/lib/postgresql", ""), ("/usr", "pgsql-")] {
        let Ok(entries) = fs::read_dir(parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(version) = name.strip_prefix(prefix) else {
                continue;
            };
            let Some(key) = version
                .split('.')
                .map(|part| part.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()
            else {
                continue;
            };
            let bin = entry.path().join("bin");
            if has_server_binaries(&bin) {
                candidates.push((key, bin));
            }
        }
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0));
    if let Some((_, bin)) = candidates.into_iter().next() {
        return Ok(bin);
    }
    Err(LaunchError::new(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: not on PATH, not at \
         `pg_config --bindir`, not in /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: \
         `apt-get install postgresql`) or set TEA_PG_BINDIR to the directory holding initdb",
    ))
}

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

/// The psql next to the server binaries, else the one on `PATH`.
fn psql_program(bindir: &Path) -> PathBuf {
    let own = bindir.join("psql");
    if own.is_file() {
        own
    } else {
        PathBuf::from("psql")
    }
}

/// `len` random bytes from `/dev/urandom`, as lowercase hex.
pub(crate) fn random_hex(len: usize) -> Result<String, LaunchError> {
    let mut bytes = vec![0u8; len];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| LaunchError::io("reading /dev/urandom", &e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A directory removed (recursively) on drop.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<base>/<prefix><random>` with mode 0700.
    fn create(base: &Path, prefix: &str) -> Result<Self, LaunchError> {
        for _ in 0..16 {
            let path = base.join(format!("{prefix}{}", random_hex(6)?));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(LaunchError::io(
                        format_args!("creating a directory in {}", base.display()),
                        &e,
                    ));
                }
            }
        }
        Err(LaunchError::new(format!(
            "could not create a fresh directory in {}",
            base.display()
        )))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The `$0` of every watchdog shell: what `ps` shows for it.
pub const WATCHDOG_NAME: &str = "tea-pgcloud-watchdog";
/// How long dropping a server waits for its watchdog to finish a cleanup.
const WATCHDOG_WAIT: Duration = Duration::from_secs(60);

/// The start of every watchdog: ignore the signals a terminal or a job controller sends a
/// whole process group (the launcher's end is what counts, and that shows as the end of
/// standard input), then read standard input to its end. A last line `disarm` means the
/// launcher cleaned up itself.
const WATCHDOG_PRELUDE: &str = r#"trap '' HUP INT QUIT TERM PIPE
last=
while IFS= read -r line; do last=$line; done
[ "$last" = disarm ] && exit 0
"#;

/// The native watchdog's cleanup; `$1` the data directory (canonical), `$2` the private
/// directory. The postmaster is the pid on the first line of `postmaster.pid`, and only if its
/// working directory is `$1` (the postmaster runs in its data directory: a stale pid file or
/// a reused pid is left alone): SIGQUIT (immediate shutdown), then SIGKILL if it has not gone
/// within 5 s. Then the directory goes.
const NATIVE_CLEANUP: &str = r#"data=$1
dir=$2
gone() {
  [ -e "/proc/$1" ] || return 0
  state=
  read -r _ _ state _ 2>/dev/null < "/proc/$1/stat" || return 0
  [ "$state" = Z ]
}
wait_gone() {
  n=0
  while ! gone "$1"; do
    [ "$n" -lt 100 ] || return 1
    sleep 0.05
    n=$((n + 1))
  done
}
pid=
if [ -f "$data/postmaster.pid" ]; then
  read -r pid 2>/dev/null < "$data/postmaster.pid" || true
fi
case "$pid" in '' | *[!0-9]*) pid= ;; esac
if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$data" ]; then
  kill -QUIT "$pid" 2>/dev/null
  wait_gone "$pid" || { kill -KILL "$pid" 2>/dev/null; wait_gone "$pid"; }
fi
case "$dir" in /?*) rm -rf -- "$dir" ;; esac
"#;

/// A companion process that stops one server when the process that launched it ends, however
/// it ends: dropped, exiting with the server still in a `static` (statics are never dropped),
/// panicking, or killed by a signal, SIGKILL included (see the module documentation, "When
/// the launching process ends").
///
/// It is a `sh` whose standard input is a pipe whose only write end this process holds (std
/// opens pipes close-on-exec, so no other child, the server and `psql` included, inherits it).
/// When that end closes (dropped here, or closed by the kernel as the process dies), the shell
/// runs its cleanup. It runs in a process group of its own and ignores the signals sent to
/// groups (a terminal's Ctrl-C, `kill -- -PGID`), so it outlives the launcher's group.
pub(crate) struct Watchdog {
    pipe: Option<ChildStdin>,
    child: Child,
    done: bool,
}

impl Watchdog {
    fn spawn(cleanup: &str, args: &[&std::ffi::OsStr]) -> Result<Self, LaunchError> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{WATCHDOG_PRELUDE}{cleanup}"))
            .arg(WATCHDOG_NAME)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir("/")
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| LaunchError::io("starting the server's watchdog (sh)", &e))?;
        Ok(Self {
            pipe: child.stdin.take(),
            child,
            done: false,
        })
    }

    /// The watchdog of a native server whose private directory is `dir`: it stops the
    /// postmaster of `dir/data` and removes `dir`.
    fn native(dir: &Path) -> Result<Self, LaunchError> {
        // The postmaster's working directory is its data directory with every link resolved.
        let dir = fs::canonicalize(dir)
            .map_err(|e| LaunchError::io(format_args!("resolving {}", dir.display()), &e))?;
        let data = dir.join("data");
        Self::spawn(NATIVE_CLEANUP, &[data.as_os_str(), dir.as_os_str()])
    }

    /// The watchdog of containers labelled `label` (`key=value`, ASCII): it removes them (`docker rm
    /// -f -v`, else the engine's API through `curl`), through `DOCKER_HOST` and, when that no
    /// longer answers (a version shim that ended with the launcher), the default engine.
    #[cfg(feature = "docker")]
    pub(crate) fn docker(label: &str) -> Result<Self, LaunchError> {
        const DOCKER_CLEANUP: &str = r#"label=$1
filters=$2
shift 2
for host in "$@"; do
  if [ "$host" = default ]; then
    unset DOCKER_HOST
    sock=/var/run/docker.sock
  else
    DOCKER_HOST=$host
    export DOCKER_HOST
    case "$host" in unix://*) sock=${host#unix://} ;; *) sock= ;; esac
  fi
  if command -v docker >/dev/null 2>&1 && ids=$(docker ps -aq --filter "label=$label"); then
    [ -z "$ids" ] && exit 0
    docker rm -f -v $ids >/dev/null && exit 0
  elif [ -n "$sock" ] && command -v curl >/dev/null 2>&1 &&
    list=$(curl -sf --max-time 30 --unix-socket "$sock" "http://docker/containers/json?all=1&filters=$filters"); then
    ok=1
    for id in $(printf '%s' "$list" | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4); do
      curl -sf --max-time 30 --unix-socket "$sock" -X DELETE "http://docker/containers/$id?force=1&v=1" >/dev/null || ok=0
    done
    [ "$ok" = 1 ] && exit 0
  fi
done
exit 1
"#;
        // `{"label":["<label>"]}`, percent-encoded for the API's query string.
        let filters: String = format!("{{\"label\":[\"{label}\"]}}")
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let host = env::var_os("DOCKER_HOST").filter(|h| !h.is_empty());
        let default = OsString::from("default");
        let mut args = vec![std::ffi::OsStr::new(label), std::ffi::OsStr::new(&filters)];
        args.extend(host.as_deref());
        args.push(&default);
        Self::spawn(DOCKER_CLEANUP, &args)
    }

    /// Tells the watchdog that the launcher cleaned up itself, then lets it end.
    pub(crate) fn disarm(mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            // A watchdog that is already gone cannot be told; nothing is left to do then.
            let _ = pipe.write_all(b"disarm\n");
        }
        self.finish();
    }

    /// Closes the pipe (the watchdog cleans up unless disarmed) and waits for the watchdog,
    /// within [`WATCHDOG_WAIT`]; past that it is left to finish on its own.
    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        drop(self.pipe.take());
        let deadline = Instant::now() + WATCHDOG_WAIT;
        let mut pause = Duration::from_millis(1);
        while let Ok(None) = self.child.try_wait() {
            if Instant::now() >= deadline {
                return;
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The postgres OS user's uid and gid, for running the server when we are root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn command_line(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// The program a command runs, by file name: for `runuser -u postgres -- prog ...`, `prog`.
fn program_name(cmd: &Command) -> String {
    let name = |p: &std::ffi::OsStr| {
        Path::new(p)
            .file_name()
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    if name(cmd.get_program()) == "runuser"
        && let Some(prog) = cmd.get_args().skip_while(|a| *a != "--").nth(1)
    {
        return name(prog);
    }
    name(cmd.get_program())
}

/// Runs `cmd` to completion, feeding it `stdin`; a spawn failure or a non-zero exit is an error
/// carrying the command line and its stderr.
fn run(mut cmd: Command, stdin: Option<&str>) -> Result<Output, LaunchError> {
    let line = command_line(&cmd);
    let program = program_name(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let fail = |what: String| LaunchError {
        what,
        command: Some(line.clone()),
        stderr: None,
        log_tail: None,
    };
    let mut child = cmd.spawn().map_err(|e| {
        fail(format!(
            "could not run {}: {e}",
            cmd.get_program().display()
        ))
    })?;
    let output = thread::scope(|scope| {
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A writer thread, so that a large output cannot block us while we still write.
            scope.spawn(move || {
                let _ = pipe.write_all(text.as_bytes());
            });
        }
        child.wait_with_output()
    })
    .map_err(|e| fail(format!("waiting for {program}: {e}")))?;
    if output.status.success() {
        Ok(output)
    } else {
        let mut err = fail(format!("{program} failed ({})", output.status));
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        if text.trim().is_empty() {
            text = String::from_utf8_lossy(&output.stdout).into_owned();
        }
        err.stderr = Some(text);
        Err(err)
    }
}

/// A command with a clean environment (`PATH`, a C locale, UTC), as `run_as` when given.
fn base_command(run_as: Option<RunAs>, program: &Path, cwd: &Path) -> Command {
    let mut cmd = match run_as {
        Some(_) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", OS_USER, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    };
    let path = env::var_os("PATH")
        .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"));
    cmd.env_clear()
        .env("PATH", path)
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .env("TZ", "UTC")
        .current_dir(cwd);
    cmd
}

fn id_of(args: &[&str]) -> Result<u32, LaunchError> {
    let mut cmd = Command::new("id");
    cmd.args(args);
    let out = run(cmd, None)?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .map_err(|_| LaunchError::new(format!("`id {}` printed {text:?}", args.join(" "))))
}

/// `Some` (run as the postgres OS user) when we are root, `None` otherwise.
fn server_identity() -> Result<Option<RunAs>, LaunchError> {
    if id_of(&["-u"])? != 0 {
        return Ok(None);
    }
    let lookup = |flag: &str| {
        id_of(&[flag, OS_USER]).map_err(|e| {
            LaunchError::new(format!(
                "running as root, and PostgreSQL refuses to run as root; the `{OS_USER}` OS user \
                 it should run as is missing (`apt-get install postgresql` creates it), or run \
                 the tests as an ordinary user: {}",
                e.what
            ))
        })
    };
    Ok(Some(RunAs {
        uid: lookup("-u")?,
        gid: lookup("-g")?,
    }))
}

/// Whether every directory from `dir` up to `/` lets others through (mode o+x).
fn world_traversable(dir: &Path) -> bool {
    dir.ancestors().all(|d| {
        fs::metadata(d)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    })
}

/// Where the private directory goes: `TEA_PG_TMPDIR`, else the temp dir, else `/tmp` when the
/// temp dir is unusable (not traversable by the postgres user, or too long for a socket path).
fn scratch_base(run_as: Option<RunAs>) -> PathBuf {
    if let Some(dir) = env::var_os("TEA_PG_TMPDIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = env::temp_dir();
    // <base>/tea-pg-<12 hex>/sock/.s.PGSQL.<port>.lock must fit in sun_path (108 bytes).
    let fits = base.as_os_str().len() + 48 < 100;
    if !fits || (run_as.is_some() && !world_traversable(&base)) {
        PathBuf::from("/tmp")
    } else {
        base
    }
}

/// A free loopback port: bind port 0, read the port, let it go.
fn free_port() -> Result<u16, LaunchError> {
    TcpListener::bind(SocketAddr::from((LOOPBACK, 0)))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| LaunchError::io("picking a free port on 127.0.0.1", &e))
}

/// Whether the server on `port` answers an `SSLRequest` with `S` (TLS on) rather than `N`.
pub(crate) fn answers_ssl_request(port: u16) -> io::Result<bool> {
    let addr = SocketAddr::from((LOOPBACK, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    // Length 8, then the SSLRequest code 1234.5679.
    stream.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer)?;
    match answer[0] {
        b'S' => Ok(true),
        b'N' => Ok(false),
        other => Err(io::Error::other(format!(
            "unexpected answer to SSLRequest: {other:#04x}"
        ))),
    }
}

/// A single-quoted postgresql.conf string.
pub(crate) fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// A PostgreSQL server from the machine's binaries (the `native` launcher); stopped (`pg_ctl
/// stop -m immediate`) and its directory removed on drop, also when a test panics, and by its
/// watchdog when the launching process ends without dropping it.
pub struct NativeServer {
    dir: ScratchDir,
    watchdog: Option<Watchdog>,
    sock: PathBuf,
    bindir: PathBuf,
    run_as: Option<RunAs>,
    port: u16,
    password: String,
    version: String,
    profile: Profile,
    generation: u64,
    running: bool,
}

impl fmt::Debug for NativeServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeServer")
            .field("dir", &self.dir.path)
            .field("bindir", &self.bindir)
            .field("port", &self.port)
            .field("version", &self.version)
            .field("profile", &self.profile.name)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl NativeServer {
    /// Creates a cluster (`initdb --no-sync`, superuser `postgres`), applies `profile`, starts
    /// the server on a free loopback port, waits until it accepts connections and creates the
    /// login role `tea` with a random SCRAM-SHA-256 password.
    ///
    /// The final `pg_hba.conf` is `local all all trust` (the harness's admin connections over the
    /// unix socket) followed by the profile's lines.
    pub fn start(profile: &Profile) -> Result<NativeServer, LaunchError> {
        let bindir = find_bindir()?;
        let run_as = server_identity()?;
        let dir = ScratchDir::create(&scratch_base(run_as), "tea-pg-")?;
        // Before anything runs in the directory: whatever this process starts there from now
        // on ends with it.
        let watchdog = Watchdog::native(&dir.path)?;
        let mut server = NativeServer {
            sock: dir.path.join("sock"),
            dir,
            watchdog: Some(watchdog),
            bindir,
            run_as,
            port: 0,
            password: random_hex(16)?,
            version: String::new(),
            profile: profile.clone(),
            generation: 1,
            running: false,
        };
        // From here on, dropping `server` cleans up whatever got started.
        server.chown(&server.dir.path)?;
        for sub in ["sock", "tls"] {
            let path = server.dir.path.join(sub);
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .map_err(|e| LaunchError::io(format_args!("creating {}", path.display()), &e))?;
            server.chown(&path)?;
        }
        server.initdb()?;
        server.write_profile(profile)?;
        server.start_postmaster()?;
        server.admin_sql(&format!(
            "SET log_statement = 'none';\n\
             SET log_min_error_statement = 'panic';\n\
             SET password_encryption = 'scram-sha-256';\n\
             CREATE ROLE {ROLE} LOGIN PASSWORD '{}';\n",
            server.password
        ))?;
        let version = server.admin_sql("SHOW server_version")?;
        server.version = version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok(server)
    }

    /// Switches to another profile: rewrites the TLS files, `ssl` and `pg_hba.conf`, then makes
    /// them take effect with a reload that is proven in effect before this returns, falling back
    /// to a restart (see the module documentation). The port may change on a restart.
    pub fn apply(&mut self, profile: &Profile) -> Result<(), LaunchError> {
        self.apply_with(profile, ApplyMode::Reload).map(|_| ())
    }

    /// [`NativeServer::apply`], choosing how; returns how the profile was in fact applied
    /// ([`ApplyMode::Restart`] when a reload could not be proven in effect).
    pub fn apply_with(
        &mut self,
        profile: &Profile,
        mode: ApplyMode,
    ) -> Result<ApplyMode, LaunchError> {
        self.generation += 1;
        self.profile = profile.clone();
        self.write_profile(profile)?;
        if mode == ApplyMode::Reload && self.running {
            match self.reload() {
                Ok(()) => return Ok(ApplyMode::Reload),
                Err(why) => eprintln!(
                    "tea-pgcloud launcher: reload to profile {:?} not proven in effect, \
                     restarting: {}",
                    profile.name, why.what
                ),
            }
        }
        self.restart()?;
        self.check_in_effect()?;
        Ok(ApplyMode::Restart)
    }

    /// The TCP port, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCP host the server listens on: `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The unix socket directory.
    pub fn socket_dir(&self) -> &Path {
        &self.sock
    }

    /// The server's private directory (data, socket, TLS files, log); removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// The server binaries in use.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The login role the tests connect as: `tea`.
    pub fn user(&self) -> &str {
        ROLE
    }

    /// The role's password: random per server (hex), never logged.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The server's version, e.g. `15.18`.
    pub fn server_version(&self) -> &str {
        &self.version
    }

    /// The profile in effect.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The server log's path.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path.join("server.log")
    }

    /// The last `lines` lines of the server log (empty when there is none yet).
    pub fn log_tail(&self, lines: usize) -> String {
        let bytes = fs::read(self.log_path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Runs SQL as the superuser over the unix socket (`psql -X -q -At -v ON_ERROR_STOP=1`, SQL
    /// on standard input, as the postgres OS user when we are root) for harness set-up such as
    /// `ALTER ROLE`; returns standard output: each query's rows, one per line, `|` between
    /// columns, no command tags.
    pub fn admin_sql(&self, sql: &str) -> Result<String, LaunchError> {
        let mut cmd = self.server_command(&psql_program(&self.bindir));
        cmd.args(["-X", "-q", "-At", "-w", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(format!(
                "host={} port={} user={SUPERUSER} dbname=postgres connect_timeout=10",
                self.socket_dir().display(),
                self.port
            ))
            .args(["-f", "-"]);
        let out = run(cmd, Some(sql)).map_err(|e| self.with_log(e))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path.join("data")
    }

    fn with_log(&self, err: LaunchError) -> LaunchError {
        err.with_log(self.log_tail(ERROR_LOG_LINES))
    }

    fn server_command(&self, program: &Path) -> Command {
        base_command(self.run_as, program, &self.dir.path)
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut cmd = self.server_command(&self.bindir.join("pg_ctl"));
        cmd.arg("-D").arg(self.data_dir()).args(args);
        cmd
    }

    fn chown(&self, path: &Path) -> Result<(), LaunchError> {
        match self.run_as {
            Some(ids) => std::os::unix::fs::chown(path, Some(ids.uid), Some(ids.gid))
                .map_err(|e| LaunchError::io(format_args!("chown {}", path.display()), &e)),
            None => Ok(()),
        }
    }

    /// Writes a file the server reads: mode 0600, owned by the server's user, replaced
    /// atomically (a reload never sees half a file).
    fn write_file(&self, path: &Path, contents: &str) -> Result<(), LaunchError> {
        let tmp = path.with_extension("tea-tmp");
        let err = |e: io::Error| LaunchError::io(format_args!("writing {}", path.display()), &e);
        let _ = fs::remove_file(&tmp);
        fs::write(&tmp, contents).map_err(err)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(err)?;
        self.chown(&tmp)?;
        fs::rename(&tmp, path).map_err(err)
    }

    fn initdb(&self) -> Result<(), LaunchError> {
        let mut cmd = self.server_command(&self.bindir.join("initdb"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg(format!("--username={SUPERUSER}"))
            .args(["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]);
        run(cmd, None)?;
        let conf = self.data_dir().join("postgresql.conf");
        let mut text = fs::read_to_string(&conf)
            .map_err(|e| LaunchError::io(format_args!("reading {}", conf.display()), &e))?;
        text.push_str(
            "\n# tea-pgcloud conformance launcher\n\
             include 'tea_base.conf'\n\
             include 'tea_profile.conf'\n",
        );
        self.write_file(&conf, &text)
    }

    fn write_base_conf(&self) -> Result<(), LaunchError> {
        let text = format!(
            "# tea-pgcloud conformance launcher: fixed settings\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = {sock}\n\
             unix_socket_permissions = 0700\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 16MB\n\
             max_connections = 40\n\
             password_encryption = 'scram-sha-256'\n\
             logging_collector = off\n",
            port = self.port,
            sock = conf_quote(&self.socket_dir().to_string_lossy()),
        );
        self.write_file(&self.data_dir().join("tea_base.conf"), &text)
    }

    /// Writes the profile's TLS files, `tea_profile.conf` (with the current generation) and
    /// `pg_hba.conf`.
    fn write_profile(&self, profile: &Profile) -> Result<(), LaunchError> {
        let name = profile.name.replace(['\n', '\r'], " ");
        let mut conf = format!("# tea-pgcloud conformance launcher: profile {name}\n");
        match &profile.tls {
            Some(tls) => {
                let tls_dir = self.dir.path.join("tls");
                let cert = tls_dir.join("server.crt");
                let key = tls_dir.join("server.key");
                let ca = tls_dir.join("client-ca.crt");
                self.write_file(&cert, &tls.cert_pem)?;
                self.write_file(&key, &tls.key_pem)?;
                conf.push_str("ssl = on\n");
                conf.push_str(&format!(
                    "ssl_cert_file = {}\n",
                    conf_quote(&cert.to_string_lossy())
                ));
                conf.push_str(&format!(
                    "ssl_key_file = {}\n",
                    conf_quote(&key.to_string_lossy())
                ));
                match &tls.client_ca_pem {
                    Some(pem) => {
                        self.write_file(&ca, pem)?;
                        conf.push_str(&format!(
                            "ssl_ca_file = {}\n",
                            conf_quote(&ca.to_string_lossy())
                        ));
                    }
                    None => conf.push_str("ssl_ca_file = ''\n"),
                }
            }
            None => conf.push_str("ssl = off\n"),
        }
        conf.push_str(&format!("tea.generation = '{}'\n", self.generation));
        self.write_file(&self.data_dir().join("tea_profile.conf"), &conf)?;

        let mut hba = format!(
            "# tea-pgcloud conformance launcher: profile {name}\n\
             local all all trust\n"
        );
        for line in &profile.hba {
            hba.push_str(line);
            hba.push('\n');
        }
        self.write_file(&self.data_dir().join("pg_hba.conf"), &hba)
    }

    fn log_len(&self) -> u64 {
        fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0)
    }

    /// The server log written since byte `offset`.
    fn log_since(&self, offset: u64) -> String {
        let bytes = fs::read(self.log_path()).unwrap_or_default();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// `pg_ctl start -w` on the current port (a fresh one if none yet), retrying on fresh ports
    /// when the port turns out to be taken; then waits until the TCP port accepts.
    fn start_postmaster(&mut self) -> Result<(), LaunchError> {
        let log = self.log_path();
        let mut last = None;
        for attempt in 0..PORT_ATTEMPTS {
            if self.port == 0 || attempt > 0 {
                self.port = free_port()?;
            }
            self.write_base_conf()?;
            let offset = self.log_len();
            let mut cmd = self.pg_ctl(&["-w", "-t", PG_CTL_TIMEOUT_SECS, "-s", "-l"]);
            cmd.arg(&log).arg("start");
            match run(cmd, None) {
                Ok(_) => {
                    self.running = true;
                    return self.wait_listening();
                }
                Err(err) => {
                    let new_log = self.log_since(offset);
                    if PORT_TAKEN_MARKERS.iter().any(|m| new_log.contains(m)) {
                        last = Some(err);
                        continue;
                    }
                    let err = LaunchError {
                        what: format!("starting PostgreSQL failed: {}", err.what),
                        ..err
                    };
                    return Err(self.with_log(err));
                }
            }
        }
        let err = last.unwrap_or_else(|| LaunchError::new("starting PostgreSQL failed"));
        Err(self.with_log(LaunchError {
            what: format!(
                "starting PostgreSQL failed: the port was taken {PORT_ATTEMPTS} times: {}",
                err.what
            ),
            ..err
        }))
    }

    fn wait_listening(&self) -> Result<(), LaunchError> {
        let addr = SocketAddr::from((LOOPBACK, self.port));
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        loop {
            // Connecting and closing without a byte sent leaves nothing in the server log.
            match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(self.with_log(LaunchError::new(format!(
                        "PostgreSQL started but {addr} does not accept connections after {:?}: \
                         {e}",
                        LISTEN_TIMEOUT
                    ))));
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn restart(&mut self) -> Result<(), LaunchError> {
        if self.running {
            let cmd = self.pg_ctl(&["-w", "-t", PG_CTL_TIMEOUT_SECS, "-s", "-m", "fast", "stop"]);
            run(cmd, None).map_err(|e| self.with_log(e))?;
            self.running = false;
        }
        self.start_postmaster()
    }

    /// `pg_ctl reload`, then the proof that it is in effect (module documentation).
    fn reload(&self) -> Result<(), LaunchError> {
        let offset = self.log_len();
        run(self.pg_ctl(&["-s", "reload"]), None).map_err(|e| self.with_log(e))?;
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        loop {
            if self.current_generation()? == self.generation.to_string() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(self.with_log(LaunchError::new(format!(
                    "the server did not process the reload within {RELOAD_TIMEOUT:?}"
                ))));
            }
            thread::sleep(Duration::from_millis(5));
        }
        let new_log = self.log_since(offset);
        if let Some(line) = new_log
            .lines()
            .find(|l| RELOAD_FAILURE_MARKERS.iter().any(|m| l.contains(m)))
        {
            return Err(
                LaunchError::new(format!("the reload did not fully take effect: {line}"))
                    .with_log(new_log.clone()),
            );
        }
        self.check_in_effect()
    }

    fn current_generation(&self) -> Result<String, LaunchError> {
        self.admin_sql("SELECT current_setting('tea.generation')")
    }

    /// The running server shows the current generation and the profile's `ssl`, and, with TLS
    /// off, refuses an `SSLRequest`.
    fn check_in_effect(&self) -> Result<(), LaunchError> {
        let out =
            self.admin_sql("SELECT current_setting('tea.generation'), current_setting('ssl')")?;
        let want_ssl = self.profile.tls.is_some();
        let want = format!(
            "{}|{}",
            self.generation,
            if want_ssl { "on" } else { "off" }
        );
        if out != want {
            return Err(self.with_log(LaunchError::new(format!(
                "profile {:?} is not in effect: generation|ssl is {out:?}, expected {want:?}",
                self.profile.name
            ))));
        }
        if !want_ssl {
            // Checked only with TLS off: an `N` answer leaves nothing in the log, while an `S`
            // followed by a hang-up logs "could not accept SSL connection". With TLS on, a failed
            // load shows as "SSL configuration was not reloaded" (checked above) or fails start.
            match answers_ssl_request(self.port) {
                Ok(false) => {}
                Ok(true) => {
                    return Err(self.with_log(LaunchError::new(format!(
                        "profile {:?} has TLS off but the server still accepts TLS",
                        self.profile.name
                    ))));
                }
                Err(e) => {
                    return Err(self.with_log(LaunchError::io(
                        format_args!("probing 127.0.0.1:{} with an SSLRequest", self.port),
                        &e,
                    )));
                }
            }
        }
        Ok(())
    }

    /// Stops the server if one runs in the data directory: `pg_ctl stop -m immediate`, and if
    /// that fails, `kill -KILL` on the postmaster's pid. Returns whether no server runs any
    /// more.
    fn shutdown(&mut self) -> bool {
        let pid_file = self.data_dir().join("postmaster.pid");
        if !pid_file.exists() {
            return true;
        }
        let stop = self.pg_ctl(&["-w", "-t", "10", "-s", "-m", "immediate", "stop"]);
        if run(stop, None).is_ok() && !pid_file.exists() {
            self.running = false;
            return true;
        }
        let pid = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.lines().next().map(str::trim).map(str::to_owned))
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        let Some(pid) = pid else {
            // No pid to stop: the postmaster is not (or no longer) running.
            self.running = false;
            return true;
        };
        let mut kill = Command::new("kill");
        kill.args(["-KILL", &pid]);
        let _ = run(kill, None);
        // Let the postmaster die and release the port before the directory goes.
        let proc = Path::new("/proc").join(&pid);
        let deadline = Instant::now() + Duration::from_secs(5);
        while proc.exists() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        self.running = false;
        !proc.exists()
    }
}

impl Drop for NativeServer {
    fn drop(&mut self) {
        let stopped = self.shutdown();
        let watchdog = self.watchdog.take();
        if !stopped {
            // The watchdog has the postmaster's pid from the directory: it stops the server
            // and removes the directory.
            drop(watchdog);
            return;
        }
        let _ = fs::remove_dir_all(&self.dir.path);
        if let Some(watchdog) = watchdog {
            if self.dir.path.exists() {
                // Its `rm -rf` runs as it ends.
                drop(watchdog);
            } else {
                watchdog.disarm();
            }
        }
        // `self.dir` drops after this, with nothing left to remove.
    }
}

/// Which launcher runs PostgreSQL (DESIGN.md, "Launching PostgreSQL for tests").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launcher {
    /// The machine's server binaries ([`find_bindir`]).
    Native,
    /// A container from this image (`name:tag`), through testcontainers (cargo feature
    /// `docker`).
    Docker {
        /// The image, e.g. `tea-pgcloud/postgres:17` or `postgres:17-alpine`.
        image: String,
    },
}

impl Launcher {
    /// The launcher `TEA_PG_LAUNCHER` names (`native`, `docker` or `auto`; unset means `auto`).
    /// `auto` picks the native binaries when they exist, else Docker when an engine answers,
    /// else fails saying how to get either. The Docker image is `TEA_PG_IMAGE` (see
    /// `conformance::docker::default_image`).
    pub fn from_env() -> Result<Self, LaunchError> {
        let name = env::var("TEA_PG_LAUNCHER").unwrap_or_default();
        Self::parse(if name.trim().is_empty() {
            "auto"
        } else {
            name.trim()
        })
    }

    /// `native`, `docker` or `auto` (see [`Launcher::from_env`]).
    pub fn parse(name: &str) -> Result<Self, LaunchError> {
        match name {
            "native" => Ok(Self::Native),
            "docker" => Self::docker_default(),
            "auto" => {
                let native = match find_bindir() {
                    Ok(_) => return Ok(Self::Native),
                    Err(e) => e,
                };
                match Self::docker_default() {
                    Ok(docker) if docker_engine_answers() => Ok(docker),
                    _ => Err(LaunchError::new(format!(
                        "no PostgreSQL to launch: {}; and no Docker engine answers (start one and \
                         build with `--features docker`, then TEA_PG_LAUNCHER=docker)",
                        native.what
                    ))),
                }
            }
            other => Err(LaunchError::new(format!(
                "TEA_PG_LAUNCHER / --launcher: unknown launcher {other:?} (expected native, \
                 docker or auto)"
            ))),
        }
    }

    #[cfg(feature = "docker")]
    fn docker_default() -> Result<Self, LaunchError> {
        Ok(Self::Docker {
            image: super::docker::default_image(),
        })
    }

    #[cfg(not(feature = "docker"))]
    fn docker_default() -> Result<Self, LaunchError> {
        Err(LaunchError::new(
            "the docker launcher is not in this build: build with `--features docker`",
        ))
    }

    /// `native`, or `docker (IMAGE)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Native => "native".to_owned(),
            Self::Docker { image } => format!("docker ({image})"),
        }
    }

    /// Starts a server with `profile`.
    pub fn start(&self, profile: &Profile) -> Result<PgServer, LaunchError> {
        match self {
            Self::Native => {
                NativeServer::start(profile).map(|s| PgServer(Backend::Native(Box::new(s))))
            }
            #[cfg(feature = "docker")]
            Self::Docker { image } => super::docker::DockerServer::start(image, profile)
                .map(|s| PgServer(Backend::Docker(Box::new(s)))),
            #[cfg(not(feature = "docker"))]
            Self::Docker { .. } => Err(LaunchError::new(
                "the docker launcher is not in this build: build with `--features docker`",
            )),
        }
    }
}

#[cfg(feature = "docker")]
fn docker_engine_answers() -> bool {
    super::docker::engine_answers()
}

#[cfg(not(feature = "docker"))]
fn docker_engine_answers() -> bool {
    false
}

#[derive(Debug)]
enum Backend {
    Native(Box<NativeServer>),
    #[cfg(feature = "docker")]
    Docker(Box<super::docker::DockerServer>),
}

/// A running PostgreSQL server from either launcher, with the login role `tea` (random SCRAM
/// password) and a [`Profile`] applied; stopped and cleaned up on drop, also when a test panics.
#[derive(Debug)]
pub struct PgServer(Backend);

impl PgServer {
    /// Starts a server with the launcher of [`Launcher::from_env`].
    pub fn start(profile: &Profile) -> Result<PgServer, LaunchError> {
        Launcher::from_env()?.start(profile)
    }

    /// Starts a server from the machine's binaries, whatever `TEA_PG_LAUNCHER` says (for tests
    /// of what only the native launcher has: its directory, restarts, the unix socket).
    pub fn start_native(profile: &Profile) -> Result<PgServer, LaunchError> {
        Launcher::Native.start(profile)
    }

    /// `native` or `docker`.
    pub fn launcher(&self) -> &'static str {
        match &self.0 {
            Backend::Native(_) => "native",
            #[cfg(feature = "docker")]
            Backend::Docker(_) => "docker",
        }
    }

    /// Switches to another profile; the new profile is proven in effect before this returns.
    pub fn apply(&mut self, profile: &Profile) -> Result<(), LaunchError> {
        match &mut self.0 {
            Backend::Native(s) => s.apply(profile),
            #[cfg(feature = "docker")]
            Backend::Docker(s) => s.apply(profile),
        }
    }

    /// [`PgServer::apply`], choosing how (native only: a container's server is its main
    /// process, so the docker launcher always reloads and refuses [`ApplyMode::Restart`]).
    pub fn apply_with(
        &mut self,
        profile: &Profile,
        mode: ApplyMode,
    ) -> Result<ApplyMode, LaunchError> {
        match &mut self.0 {
            Backend::Native(s) => s.apply_with(profile, mode),
            #[cfg(feature = "docker")]
            Backend::Docker(s) => match mode {
                ApplyMode::Reload => s.apply(profile).map(|()| ApplyMode::Reload),
                ApplyMode::Restart => Err(LaunchError::new(
                    "the docker launcher applies profiles by reload only",
                )),
            },
        }
    }

    /// The TCP port, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        match &self.0 {
            Backend::Native(s) => s.port(),
            #[cfg(feature = "docker")]
            Backend::Docker(s) => s.port(),
        }
    }

    /// The TCP host to connect to: `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The unix socket directory (native only; a container's socket is not on the host).
    pub fn socket_dir(&self) -> Option<&Path> {
        match &self.0 {
            Backend::Native(s) => Some(s.socket_dir()),
            #[cfg(feature = "docker")]
            Backend::Docker(_) => None,
        }
    }

    /// The server's private directory (native only).
    pub fn dir(&self) -> Option<&Path> {
        match &self.0 {
            Backend::Native(s) => Some(s.dir()),
            #[cfg(feature = "docker")]
            Backend::Docker(_) => None,
        }
    }

    /// The server binaries in use (native only).
    pub fn bindir(&self) -> Option<&Path> {
        match &self.0 {
            Backend::Native(s) => Some(s.bindir()),
            #[cfg(feature = "docker")]
            Backend::Docker(_) => None,
        }
    }

    /// The server log's path (native only; a container's log is read with
    /// [`PgServer::log_tail`]).
    pub fn log_path(&self) -> Option<PathBuf> {
        match &self.0 {
            Backend::Native(s) => Some(s.log_path()),
            #[cfg(feature = "docker")]
            Backend::Docker(_) => None,
        }
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        match &self.0 {
            Backend::Native(s) => s.log_tail(lines),
            #[cfg(feature = "docker")]
            Backend::Docker(s) => s.log_tail(lines),
        }
    }

    /// The login role the tests connect as: `tea`.
    pub fn user(&self) -> &str {
        ROLE
    }

    /// The role's password: random per server (hex), never logged.
    pub fn password(&self) -> &str {
        match &self.0 {
            Backend::Native(s) => s.password(),
            #[cfg(feature = "docker")]
            Backend::Docker(s) => s.password(),
        }
    }

    /// The superuser `postgres`'s password for logins over TCP; `None` for the native launcher,
    /// whose superuser logs in over the unix socket ([`PgServer::socket_dir`]) with `trust`.
    pub fn superuser_password(&self) -> Option<&str> {
        match &self.0 {
            Backend::Native(_) => None,
            #[cfg(feature = "docker")]
            Backend::Docker(s) => Some(s.superuser_password()),
        }
    }

    /// The server's version, e.g. `15.18`.
    pub fn server_version(&self) -> &str {
        match &self.0 {
            Backend::Native(s) => s.server_version(),
            #[cfg(feature = "docker")]
            Backend::Docker(s) => s.server_version(),
        }
    }

    /// The profile in effect.
    pub fn profile(&self) -> &Profile {
        match &self.0 {
            Backend::Native(s) => s.profile(),
            #[cfg(feature = "docker")]
            Backend::Docker(s) => s.profile(),
        }
    }

    /// Runs SQL as the superuser (`psql -X -q -At -v ON_ERROR_STOP=1`, SQL on standard input)
    /// for harness set-up such as `ALTER ROLE`; returns each query's rows, one per line, `|`
    /// between columns, no command tags.
    pub fn admin_sql(&self, sql: &str) -> Result<String, LaunchError> {
        match &self.0 {
            Backend::Native(s) => s.admin_sql(sql),
            #[cfg(feature = "docker")]
            Backend::Docker(s) => s.admin_sql(sql),
        }
    }

    /// The container behind a docker-launched server.
    #[cfg(feature = "docker")]
    pub fn docker(&self) -> Option<&super::docker::DockerServer> {
        match &self.0 {
            Backend::Native(_) => None,
            Backend::Docker(s) => Some(s),
        }
    }

    /// A `tokio_postgres` configuration for the superuser: over the unix socket (native) or
    /// over TCP with its password (docker); `dbname` `postgres`, no TLS.
    pub fn superuser_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        match (self.socket_dir(), self.superuser_password()) {
            (Some(dir), _) => {
                config.host_path(dir);
            }
            (None, password) => {
                config.host(self.host());
                if let Some(password) = password {
                    config.password(password);
                }
            }
        }
        config
            .port(self.port())
            .user(SUPERUSER)
            .dbname("postgres")
            .ssl_mode(tokio_postgres::config::SslMode::Disable);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic;

    const PLAIN_HBA: &str = "host all all 127.0.0.1/32 scram-sha-256";
    const SSL_HBA: &str = "hostssl all all 127.0.0.1/32 scram-sha-256";

    fn plain_profile() -> Profile {
        Profile::new("plain", None, [PLAIN_HBA])
    }

    /// A throwaway self-signed P-256 certificate for CN=localhost.
    fn self_signed() -> TlsFiles {
        let dir = ScratchDir::create(&env::temp_dir(), "tea-pg-cert-").expect("scratch dir");
        let key = dir.path.join("k");
        let cert = dir.path.join("c");
        let mut cmd = Command::new("openssl");
        cmd.args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-days",
            "2",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert);
        run(cmd, None).expect("openssl req");
        TlsFiles {
            cert_pem: fs::read_to_string(&cert).expect("cert"),
            key_pem: fs::read_to_string(&key).expect("key"),
            client_ca_pem: None,
        }
    }

    fn ssl_profile() -> Profile {
        Profile::new("ssl-only", Some(self_signed()), [SSL_HBA])
    }

    /// libpq's own client, with a clean environment: HOME is an empty directory (no
    /// ~/.postgresql certificates, no .pgpass), the password comes from PGPASSWORD.
    fn client(
        server: &PgServer,
        password: &str,
        sslmode: &str,
        sql: &str,
    ) -> Result<String, String> {
        let home = ScratchDir::create(&env::temp_dir(), "tea-pg-home-").expect("home");
        let out = Command::new(psql_program(server.bindir().expect("a native server")))
            .env_clear()
            .env("PATH", env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home.path)
            .env("LC_ALL", "C")
            .env("PGPASSWORD", password)
            .args(["-X", "-At", "-w", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={} user={} dbname=postgres sslmode={sslmode} \
                 connect_timeout=10",
                server.port(),
                server.user()
            ))
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn refuses(port: u16) -> bool {
        TcpStream::connect_timeout(&SocketAddr::from((LOOPBACK, port)), Duration::from_secs(2))
            .is_err()
    }

    #[test]
    fn plain_server_accepts_scram_and_rejects_a_wrong_password() {
        let started = Instant::now();
        let server = PgServer::start_native(&plain_profile()).unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "start: {:?} (PostgreSQL {}, port {})",
            started.elapsed(),
            server.server_version(),
            server.port()
        );
        assert!(server.server_version().starts_with(char::is_numeric));
        assert_eq!(server.user(), "tea");
        assert_eq!(server.password().len(), 32);

        let ok = client(&server, server.password(), "disable", "SELECT 1");
        assert_eq!(ok.as_deref(), Ok("1"), "{}", server.log_tail(20));

        let wrong = client(&server, "not-the-password", "disable", "SELECT 1")
            .expect_err("a wrong password must fail");
        assert!(
            wrong.contains("password authentication failed"),
            "unexpected error: {wrong}"
        );

        // The password is stored as a SCRAM-SHA-256 verifier, and never reached the log.
        let stored = server
            .admin_sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'tea'")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(stored.starts_with("SCRAM-SHA-256$"), "{stored}");
        assert!(!server.log_tail(10_000).contains(server.password()));
    }

    #[test]
    fn apply_switches_tls_and_hba() {
        let plain = plain_profile();
        let ssl = ssl_profile();
        let mut server = PgServer::start_native(&plain).unwrap_or_else(|e| panic!("{e}"));
        let pw = server.password().to_owned();
        assert_eq!(
            client(&server, &pw, "disable", "SELECT 1").as_deref(),
            Ok("1")
        );

        let t = Instant::now();
        let how = server
            .apply_with(&ssl, ApplyMode::Reload)
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("apply ssl on ({how:?}): {:?}", t.elapsed());
        assert_eq!(how, ApplyMode::Reload, "{}", server.log_tail(30));

        let refused = client(&server, &pw, "disable", "SELECT 1")
            .expect_err("hostssl only: a plain connection must be refused");
        assert!(refused.contains("no pg_hba.conf entry"), "{refused}");
        let tls = client(
            &server,
            &pw,
            "require",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        );
        assert_eq!(tls.as_deref(), Ok("t"), "{}", server.log_tail(30));

        let t = Instant::now();
        let how = server
            .apply_with(&plain, ApplyMode::Reload)
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("apply ssl off ({how:?}): {:?}", t.elapsed());
        assert_eq!(how, ApplyMode::Reload, "{}", server.log_tail(30));
        let no_tls = client(&server, &pw, "require", "SELECT 1")
            .expect_err("TLS off: sslmode=require must fail");
        assert!(no_tls.contains("server does not support SSL"), "{no_tls}");
        assert_eq!(
            client(&server, &pw, "disable", "SELECT 1").as_deref(),
            Ok("1")
        );

        // The same switches by restart.
        let t = Instant::now();
        let how = server
            .apply_with(&ssl, ApplyMode::Restart)
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("apply ssl on ({how:?}): {:?}", t.elapsed());
        assert_eq!(how, ApplyMode::Restart);
        let tls = client(
            &server,
            &pw,
            "require",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        );
        assert_eq!(tls.as_deref(), Ok("t"), "{}", server.log_tail(30));
        assert!(client(&server, &pw, "disable", "SELECT 1").is_err());

        let t = Instant::now();
        server
            .apply_with(&plain, ApplyMode::Restart)
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("apply ssl off (Restart): {:?}", t.elapsed());
        let no_tls = client(&server, &pw, "require", "SELECT 1").expect_err("TLS off");
        assert!(no_tls.contains("server does not support SSL"), "{no_tls}");
    }

    #[test]
    fn a_reload_that_fails_falls_back_to_a_restart_that_reports_the_log() {
        let mut server = PgServer::start_native(&plain_profile()).unwrap_or_else(|e| panic!("{e}"));
        let broken = Profile::new(
            "broken-key",
            Some(TlsFiles {
                cert_pem: self_signed().cert_pem,
                key_pem: "not a key\n".into(),
                client_ca_pem: None,
            }),
            [SSL_HBA],
        );
        let err = server.apply(&broken).expect_err("a bad key must not pass");
        let text = err.to_string();
        eprintln!("the error, as shown:\n{text}");
        assert!(text.contains("pg_ctl"), "{text}");
        assert!(
            err.log_tail().is_some_and(|l| l.contains("server.key")),
            "{text}"
        );
        // The server is down; a good profile brings it back.
        server
            .apply(&ssl_profile())
            .unwrap_or_else(|e| panic!("{e}"));
        let pw = server.password().to_owned();
        assert_eq!(
            client(
                &server,
                &pw,
                "require",
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )
            .as_deref(),
            Ok("t")
        );
    }

    #[test]
    fn drop_stops_the_server_and_removes_its_directory() {
        let server = PgServer::start_native(&plain_profile()).unwrap_or_else(|e| panic!("{e}"));
        let (port, dir) = (
            server.port(),
            server.dir().expect("a native server").to_path_buf(),
        );
        assert!(!refuses(port));
        assert!(dir.is_dir());
        drop(server);
        assert!(refuses(port), "port {port} still accepts after drop");
        assert!(!dir.exists(), "{} still exists", dir.display());

        let mut seen = None;
        let result = panic::catch_unwind(panic::AssertUnwindSafe(|| {
            let server = PgServer::start_native(&plain_profile()).unwrap_or_else(|e| panic!("{e}"));
            seen = Some((
                server.port(),
                server.dir().expect("a native server").to_path_buf(),
            ));
            panic!("test body panics with the server running");
        }));
        assert!(result.is_err());
        let (port, dir) = seen.expect("the server started before the panic");
        assert!(refuses(port), "port {port} still accepts after a panic");
        assert!(
            !dir.exists(),
            "{} still exists after a panic",
            dir.display()
        );
    }

    #[test]
    fn find_bindir_finds_the_server_binaries() {
        let dir = find_bindir().unwrap_or_else(|e| panic!("{e}"));
        assert!(has_server_binaries(&dir), "{}", dir.display());
    }

    #[test]
    fn launcher_names_parse() {
        assert_eq!(Launcher::parse("native").ok(), Some(Launcher::Native));
        let err = Launcher::parse("podman").expect_err("unknown");
        assert!(err.what().contains("unknown launcher \"podman\""), "{err}");
        assert!(err.what().contains("native, docker or auto"), "{err}");
        match Launcher::parse("docker") {
            #[cfg(feature = "docker")]
            Ok(Launcher::Docker { image }) => assert!(image.contains(':'), "{image}"),
            #[cfg(not(feature = "docker"))]
            Err(e) => assert!(e.what().contains("--features docker"), "{e}"),
            other => panic!("unexpected {other:?}"),
        }
        // Native binaries exist on this machine: auto picks them.
        assert_eq!(Launcher::parse("auto").ok(), Some(Launcher::Native));
        assert_eq!(Launcher::Native.describe(), "native");
        assert_eq!(
            Launcher::Docker {
                image: "postgres:17-alpine".into()
            }
            .describe(),
            "docker (postgres:17-alpine)"
        );
    }

    #[test]
    fn launch_error_display_has_every_part() {
        let err = LaunchError {
            what: "starting PostgreSQL failed".into(),
            command: Some("pg_ctl start".into()),
            stderr: Some("pg_ctl: could not start server\n".into()),
            log_tail: Some("FATAL:  bad\nLOG:  shut down".into()),
        };
        let text = err.to_string();
        for part in [
            "starting PostgreSQL failed",
            "command: pg_ctl start",
            "stderr:",
            "    FATAL:  bad",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
    }

    #[test]
    fn tls_files_debug_hides_the_key() {
        let files = TlsFiles {
            cert_pem: "CERT".into(),
            key_pem: "SECRET KEY".into(),
            client_ca_pem: None,
        };
        assert!(!format!("{files:?}").contains("SECRET"));
    }
}
