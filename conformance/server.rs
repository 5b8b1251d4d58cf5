//! What every launched PostgreSQL server offers, whichever launcher started it: the [`Server`]
//! trait, the types both launchers share ([`Profile`], [`TlsFiles`], [`ApplyMode`],
//! [`LaunchError`]) and the helpers both use (the watchdog, random passwords, quoting for
//! `postgresql.conf`, the `SSLRequest` probe, the reload-failure markers).
//!
//! This module knows neither launcher: `conformance::native` and `conformance::docker`
//! implement [`Server`] with what is here, and `conformance::launcher` picks one and holds the
//! server it started as a `PgServer`.
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
//! watchdog then cleans up, with the cleanup its launcher gave it:
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

use std::any::Any;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The superuser both launchers' clusters have; the harness's admin connections use it.
pub(crate) const SUPERUSER: &str = "postgres";
/// The login role the tests connect as, on every launched server.
pub(crate) const ROLE: &str = "tea";
/// The only address a launched server listens on, and the only one the launchers connect to.
pub(crate) const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// How many server-log lines an error carries.
pub(crate) const ERROR_LOG_LINES: usize = 30;
/// How long a reload may take to show up.
pub(crate) const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Server-log text that means a reload did not (fully) take effect.
pub(crate) const RELOAD_FAILURE_MARKERS: [&str; 2] = ["was not reloaded", "contains errors"];

/// A running PostgreSQL server from one launcher, with the login role `tea` (random
/// SCRAM-SHA-256 password) and a [`Profile`] applied; stopped and cleaned up on drop, also when
/// a test panics, and by its watchdog when the launching process ends without dropping it (see
/// the module documentation).
///
/// `conformance::launcher::PgServer` holds one of these; the native and the docker launchers
/// implement it. The optional parts (a unix socket, a private directory, server binaries, a log
/// file) default to `None`.
pub trait Server: Any + fmt::Debug {
    /// The launcher's name: `native` or `docker`.
    fn launcher(&self) -> &'static str;

    /// Switches to another profile; the new profile is proven in effect before this returns.
    fn apply(&mut self, profile: &Profile) -> Result<(), LaunchError> {
        self.apply_with(profile, ApplyMode::Reload).map(|_| ())
    }

    /// [`Server::apply`], choosing how; returns how the profile was in fact applied
    /// ([`ApplyMode::Restart`] when a reload could not be proven in effect). A launcher that
    /// cannot restart its server refuses [`ApplyMode::Restart`].
    fn apply_with(&mut self, profile: &Profile, mode: ApplyMode) -> Result<ApplyMode, LaunchError>;

    /// The TCP port, on 127.0.0.1.
    fn port(&self) -> u16;

    /// The TCP host to connect to: `127.0.0.1`.
    fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The unix socket directory, when the socket is on this machine.
    fn socket_dir(&self) -> Option<&Path> {
        None
    }

    /// The server's private directory, when it has one on this machine.
    fn dir(&self) -> Option<&Path> {
        None
    }

    /// The server binaries in use, when they are this machine's.
    fn bindir(&self) -> Option<&Path> {
        None
    }

    /// The server log's path, when the log is a file on this machine (else read it with
    /// [`Server::log_tail`]).
    fn log_path(&self) -> Option<PathBuf> {
        None
    }

    /// The last `lines` lines of the server log (empty when there is none yet).
    fn log_tail(&self, lines: usize) -> String;

    /// The login role the tests connect as: `tea`.
    fn user(&self) -> &str {
        ROLE
    }

    /// The role's password: random per server (hex), never logged.
    fn password(&self) -> &str;

    /// The superuser `postgres`'s password for logins over TCP; `None` when the superuser logs
    /// in over the unix socket ([`Server::socket_dir`]) with `trust`.
    fn superuser_password(&self) -> Option<&str>;

    /// The server's version, e.g. `15.18`.
    fn server_version(&self) -> &str;

    /// The profile in effect.
    fn profile(&self) -> &Profile;

    /// Runs SQL as the superuser (`psql -X -q -At -v ON_ERROR_STOP=1`, SQL on standard input)
    /// for harness set-up such as `ALTER ROLE`; returns each query's rows, one per line, `|`
    /// between columns, no command tags.
    fn admin_sql(&self, sql: &str) -> Result<String, LaunchError>;

    /// `default_transaction_read_only` for every new transaction, by `ALTER SYSTEM` and a
    /// reload: a fenced primary that still answers. Sessions already open see it at their next
    /// statement (the server reports the change).
    fn set_read_only(&self, on: bool) -> Result<(), LaunchError> {
        self.admin_sql(&format!(
            "ALTER SYSTEM SET default_transaction_read_only = {};\nSELECT pg_reload_conf();",
            if on { "on" } else { "off" }
        ))
        .map(|_| ())
    }

    /// Synchronous replication on this primary: every commit waits until a standby has
    /// applied it (`synchronous_standby_names = '*'`, `synchronous_commit = remote_apply`);
    /// `false` returns to asynchronous commits (`synchronous_commit = on`).
    fn set_synchronous(&self, on: bool) -> Result<(), LaunchError> {
        let sql = if on {
            "ALTER SYSTEM SET synchronous_standby_names = '*';\n\
             ALTER SYSTEM SET synchronous_commit = 'remote_apply';\n\
             SELECT pg_reload_conf();"
        } else {
            "ALTER SYSTEM RESET synchronous_standby_names;\n\
             ALTER SYSTEM SET synchronous_commit = 'on';\n\
             SELECT pg_reload_conf();"
        };
        self.admin_sql(sql).map(|_| ())
    }

    /// A standby that applies WAL `delay` late (`recovery_min_apply_delay`); zero applies at
    /// once.
    fn set_apply_delay(&self, delay: std::time::Duration) -> Result<(), LaunchError> {
        self.admin_sql(&format!(
            "ALTER SYSTEM SET recovery_min_apply_delay = '{}ms';\nSELECT pg_reload_conf();",
            delay.as_millis()
        ))
        .map(|_| ())
    }

    /// Whether the server is in recovery (a standby).
    fn in_recovery(&self) -> Result<bool, LaunchError> {
        Ok(self.admin_sql("SELECT pg_is_in_recovery()")? == "t")
    }

    /// A `tokio_postgres` configuration for the superuser: over the unix socket when there is
    /// one ([`Server::socket_dir`]), else over TCP with its password; `dbname` `postgres`, no
    /// TLS.
    fn superuser_config(&self) -> tokio_postgres::Config {
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

/// How [`Server::apply_with`] makes a profile take effect (the native launcher can do both; the
/// docker launcher only reloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// `pg_ctl reload`, proven in effect (see `conformance::native`, "How `apply` makes a
    /// profile take effect"), else a restart.
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

    pub(crate) fn io(what: impl fmt::Display, err: &io::Error) -> Self {
        Self::new(format!("{what}: {err}"))
    }

    pub(crate) fn with_command(mut self, command: impl Into<String>) -> Self {
        self.command = Some(command.into());
        self
    }

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

    /// The same error, its one-line description now `<prefix>: <what>`.
    pub(crate) fn prefixed(mut self, prefix: impl fmt::Display) -> Self {
        self.what = format!("{prefix}: {}", self.what);
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

/// `len` random bytes from `/dev/urandom`, as lowercase hex.
pub(crate) fn random_hex(len: usize) -> Result<String, LaunchError> {
    let mut bytes = vec![0u8; len];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| LaunchError::io("reading /dev/urandom", &e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A single-quoted postgresql.conf string.
pub(crate) fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// The last `lines` lines of a server log.
pub(crate) fn last_lines(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
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
    /// Starts a watchdog that runs the shell script `cleanup` (with `args` as `$1`...) once the
    /// launching process has let go of it without disarming it. Each launcher has its own
    /// cleanup.
    pub(crate) fn spawn(cleanup: &str, args: &[&OsStr]) -> Result<Self, LaunchError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
