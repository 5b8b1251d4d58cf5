//! The `native` launcher: a throwaway PostgreSQL from the machine's own server binaries
//! ([`find_bindir`]), as a [`NativeServer`] (one [`Server`] of `conformance::launcher`'s
//! `PgServer`).
//!
//! It runs `initdb` into a fresh private directory, starts the server on a free loopback port
//! (unix socket in the same directory) and stops it with `pg_ctl stop -m immediate`. A
//! watchdog, armed before anything runs in the directory, stops the postmaster and removes the
//! directory when the launching process ends without dropping the server
//! (`conformance::server`, "When the launching process ends").
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
//! [`Server::apply`] rewrites the files and runs `pg_ctl reload`. A reload is only trusted once
//! it is proven in effect:
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
//! either applies the profile or fails with the server log. [`Server::apply_with`] can force a
//! restart.
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
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::server::{
    ApplyMode, ERROR_LOG_LINES, LOOPBACK, LaunchError, Profile, RELOAD_FAILURE_MARKERS,
    RELOAD_TIMEOUT, ROLE, SUPERUSER, Server, Watchdog, answers_ssl_request, conf_quote, last_lines,
    random_hex,
};

/// The OS user the server runs as when we are root.
const OS_USER: &str = "postgres";
/// `pg_ctl -t`: how long start and stop may take, in seconds.
const PG_CTL_TIMEOUT_SECS: &str = "30";
/// How long the TCP port may take to accept once `pg_ctl` says the server is ready.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Start attempts, each on a fresh port, when the port was taken between picking and binding.
const PORT_ATTEMPTS: usize = 5;
/// Server-log text that means the port was taken.
const PORT_TAKEN_MARKERS: [&str; 2] = ["Address already in use", "could not bind"];

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

/// The watchdog of a native server whose private directory is `dir`: it stops the postmaster
/// of `dir/data` and removes `dir` ([`NATIVE_CLEANUP`]).
fn watchdog(dir: &Path) -> Result<Watchdog, LaunchError> {
    // The postmaster's working directory is its data directory with every link resolved.
    let dir = fs::canonicalize(dir)
        .map_err(|e| LaunchError::io(format_args!("resolving {}", dir.display()), &e))?;
    let data = dir.join("data");
    Watchdog::spawn(NATIVE_CLEANUP, &[data.as_os_str(), dir.as_os_str()])
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
    let fail = |what: String| LaunchError::new(what).with_command(line.clone());
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
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        if text.trim().is_empty() {
            text = String::from_utf8_lossy(&output.stdout).into_owned();
        }
        Err(fail(format!("{program} failed ({})", output.status)).with_stderr(text))
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
                e.what()
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
    /// A server not yet created: its private directory (with `sock` and `tls`, owned by the
    /// server's user) and the watchdog armed on it, before anything runs there. From here on,
    /// dropping the result cleans up whatever got started.
    fn prepare(bindir: PathBuf, password: String, profile: &Profile) -> Result<Self, LaunchError> {
        let run_as = server_identity()?;
        let dir = ScratchDir::create(&scratch_base(run_as), "tea-pg-")?;
        // Before anything runs in the directory: whatever this process starts there from now
        // on ends with it.
        let watchdog = watchdog(&dir.path)?;
        let server = NativeServer {
            sock: dir.path.join("sock"),
            dir,
            watchdog: Some(watchdog),
            bindir,
            run_as,
            port: 0,
            password,
            version: String::new(),
            profile: profile.clone(),
            generation: 1,
            running: false,
        };
        server.chown(&server.dir.path)?;
        for sub in ["sock", "tls"] {
            let path = server.dir.path.join(sub);
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .map_err(|e| LaunchError::io(format_args!("creating {}", path.display()), &e))?;
            server.chown(&path)?;
        }
        Ok(server)
    }

    /// Creates a cluster (`initdb --no-sync`, superuser `postgres`), applies `profile`, starts
    /// the server on a free loopback port, waits until it accepts connections and creates the
    /// login role `tea` with a random SCRAM-SHA-256 password.
    ///
    /// The final `pg_hba.conf` is `local all all trust` (the harness's admin connections over the
    /// unix socket) followed by the profile's lines.
    pub fn start(profile: &Profile) -> Result<NativeServer, LaunchError> {
        let mut server = Self::prepare(find_bindir()?, random_hex(16)?, profile)?;
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

    /// The server log's path.
    fn log_file(&self) -> PathBuf {
        self.dir.path.join("server.log")
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
            sock = conf_quote(&self.sock.to_string_lossy()),
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

        // Replication over the unix socket too, for a standby made by `start_standby`.
        let mut hba = format!(
            "# tea-pgcloud conformance launcher: profile {name}\n\
             local all all trust\n\
             local replication all trust\n"
        );
        for line in &profile.hba {
            hba.push_str(line);
            hba.push('\n');
        }
        self.write_file(&self.data_dir().join("pg_hba.conf"), &hba)
    }

    fn log_len(&self) -> u64 {
        fs::metadata(self.log_file()).map(|m| m.len()).unwrap_or(0)
    }

    /// The server log written since byte `offset`.
    fn log_since(&self, offset: u64) -> String {
        let bytes = fs::read(self.log_file()).unwrap_or_default();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// `pg_ctl start -w` on the current port (a fresh one if none yet), retrying on fresh ports
    /// when the port turns out to be taken; then waits until the TCP port accepts.
    fn start_postmaster(&mut self) -> Result<(), LaunchError> {
        let log = self.log_file();
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
                    return Err(self.with_log(err.prefixed("starting PostgreSQL failed")));
                }
            }
        }
        let err = last.unwrap_or_else(|| LaunchError::new("starting PostgreSQL failed"));
        Err(self.with_log(err.prefixed(format_args!(
            "starting PostgreSQL failed: the port was taken {PORT_ATTEMPTS} times"
        ))))
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

/// Streaming replication between native servers: a standby made by a base backup
/// (`pg_basebackup -R -X stream`), promotion, stopping and starting, catching up. A read-only
/// primary, synchronous commit and a lagging standby are [`Server`] methods, shared with the
/// docker launcher. The failover tests run on these.
impl NativeServer {
    /// A streaming standby of `primary`: a base backup with `-R` (so `standby.signal` and
    /// `primary_conninfo`, over `primary`'s unix socket with `application_name=tea_standby`),
    /// `primary`'s profile (TLS files and `pg_hba.conf`), its own free port, started and
    /// accepting connections. The login role and its password are `primary`'s (one cluster).
    pub fn start_standby(primary: &NativeServer) -> Result<NativeServer, LaunchError> {
        let mut server = Self::prepare(
            primary.bindir.clone(),
            primary.password.clone(),
            &primary.profile,
        )?;
        server.version.clone_from(&primary.version);
        server.clone_from_primary(primary)?;
        server.start_postmaster()?;
        Ok(server)
    }

    /// Stops this server (if it runs), throws its data away and makes it a standby of
    /// `primary`, on the same port (an error when that port was taken meanwhile): how a failed
    /// primary rejoins as the new primary's standby.
    pub fn rebuild_as_standby(&mut self, primary: &NativeServer) -> Result<(), LaunchError> {
        self.stop("immediate")?;
        let data = self.data_dir();
        fs::remove_dir_all(&data)
            .map_err(|e| LaunchError::io(format_args!("removing {}", data.display()), &e))?;
        self.password = primary.password.clone();
        self.profile = primary.profile.clone();
        let port = self.port;
        self.clone_from_primary(primary)?;
        self.start_postmaster()?;
        if self.port != port {
            // Host lists name the old port: a server that moved is not the same host any more.
            return Err(self.with_log(LaunchError::new(format!(
                "the rebuilt standby could not have its port {port} back (now {})",
                self.port
            ))));
        }
        Ok(())
    }

    fn clone_from_primary(&mut self, primary: &NativeServer) -> Result<(), LaunchError> {
        let mut cmd = self.server_command(&self.bindir.join("pg_basebackup"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-R", "-X", "stream", "--no-sync", "-c", "fast", "-d"])
            .arg(format!(
                "host={} port={} user={SUPERUSER} application_name=tea_standby",
                primary.sock.display(),
                primary.port
            ));
        run(cmd, None).map_err(|e| primary.with_log(e.prefixed("pg_basebackup failed")))?;
        // The copy carries the primary's settings: this server's own port and socket, TLS
        // files in its own directory, and no leftover pid file.
        let _ = fs::remove_file(self.data_dir().join("postmaster.pid"));
        self.generation += 1;
        let profile = self.profile.clone();
        self.write_profile(&profile)?;
        self.write_base_conf()
    }

    /// `pg_ctl promote -w`: the standby ends recovery and accepts writes.
    pub fn promote(&self) -> Result<(), LaunchError> {
        run(
            self.pg_ctl(&["-w", "-t", PG_CTL_TIMEOUT_SECS, "-s", "promote"]),
            None,
        )
        .map(|_| ())
        .map_err(|e| self.with_log(e.prefixed("pg_ctl promote failed")))
    }

    /// `pg_ctl stop -m MODE` (`smart`, `fast` or `immediate`); nothing when not running. Fast
    /// ends every session with SQLSTATE 57P01; immediate is a crash.
    pub fn stop(&mut self, mode: &str) -> Result<(), LaunchError> {
        if !self.running {
            return Ok(());
        }
        run(
            self.pg_ctl(&["-w", "-t", PG_CTL_TIMEOUT_SECS, "-s", "-m", mode, "stop"]),
            None,
        )
        .map_err(|e| self.with_log(e.prefixed("pg_ctl stop failed")))?;
        self.running = false;
        Ok(())
    }

    /// Starts a stopped server again, on its port when that is still free.
    pub fn start_again(&mut self) -> Result<(), LaunchError> {
        if self.running {
            return Ok(());
        }
        self.start_postmaster()
    }

    /// Whether the postmaster runs (as far as this handle knows).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Waits until this standby has replayed everything `primary` has written so far, or
    /// `timeout` passes.
    pub fn wait_caught_up(
        &self,
        primary: &NativeServer,
        timeout: Duration,
    ) -> Result<(), LaunchError> {
        let target = primary.admin_sql("SELECT pg_current_wal_lsn()")?;
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.admin_sql(&format!(
                "SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
            ))?;
            if done == "t" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.with_log(LaunchError::new(format!(
                    "the standby did not replay up to {target} within {timeout:?}"
                ))));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Server for NativeServer {
    fn launcher(&self) -> &'static str {
        "native"
    }

    /// Rewrites the TLS files, `ssl` and `pg_hba.conf`, then makes them take effect with a
    /// reload that is proven in effect before this returns, falling back to a restart (see the
    /// module documentation); [`ApplyMode::Restart`] restarts straight away. The port may change
    /// on a restart.
    fn apply_with(&mut self, profile: &Profile, mode: ApplyMode) -> Result<ApplyMode, LaunchError> {
        self.generation += 1;
        self.profile = profile.clone();
        self.write_profile(profile)?;
        if mode == ApplyMode::Reload && self.running {
            match self.reload() {
                Ok(()) => return Ok(ApplyMode::Reload),
                Err(why) => eprintln!(
                    "tea-pgcloud launcher: reload to profile {:?} not proven in effect, \
                     restarting: {}",
                    profile.name,
                    why.what()
                ),
            }
        }
        self.restart()?;
        self.check_in_effect()?;
        Ok(ApplyMode::Restart)
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn socket_dir(&self) -> Option<&Path> {
        Some(&self.sock)
    }

    /// The server's private directory (data, socket, TLS files, log); removed on drop.
    fn dir(&self) -> Option<&Path> {
        Some(&self.dir.path)
    }

    fn bindir(&self) -> Option<&Path> {
        Some(&self.bindir)
    }

    fn log_path(&self) -> Option<PathBuf> {
        Some(self.log_file())
    }

    fn log_tail(&self, lines: usize) -> String {
        let bytes = fs::read(self.log_file()).unwrap_or_default();
        last_lines(&String::from_utf8_lossy(&bytes), lines)
    }

    fn password(&self) -> &str {
        &self.password
    }

    /// `None`: the superuser logs in over the unix socket with `trust`.
    fn superuser_password(&self) -> Option<&str> {
        None
    }

    fn server_version(&self) -> &str {
        &self.version
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Runs SQL as the superuser over the unix socket (as the postgres OS user when we are
    /// root); returns standard output.
    fn admin_sql(&self, sql: &str) -> Result<String, LaunchError> {
        let mut cmd = self.server_command(&psql_program(&self.bindir));
        cmd.args(["-X", "-q", "-At", "-w", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(format!(
                "host={} port={} user={SUPERUSER} dbname=postgres connect_timeout=10",
                self.sock.display(),
                self.port
            ))
            .args(["-f", "-"]);
        let out = run(cmd, Some(sql)).map_err(|e| self.with_log(e))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
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

#[cfg(test)]
mod tests {
    use std::panic;

    use super::*;
    use crate::conformance::server::TlsFiles;

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
        server: &NativeServer,
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
        let server = NativeServer::start(&plain_profile()).unwrap_or_else(|e| panic!("{e}"));
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
        let mut server = NativeServer::start(&plain).unwrap_or_else(|e| panic!("{e}"));
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
        let mut server = NativeServer::start(&plain_profile()).unwrap_or_else(|e| panic!("{e}"));
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
        let server = NativeServer::start(&plain_profile()).unwrap_or_else(|e| panic!("{e}"));
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
            let server = NativeServer::start(&plain_profile()).unwrap_or_else(|e| panic!("{e}"));
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
}
