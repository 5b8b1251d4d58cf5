//! libpq, through `psql`, as the oracle for TLS outcomes.
//!
//! Every case of the conformance matrix is a libpq connection string. [`run`] hands it to
//! `psql` once, in a clean environment, and reduces what happened to an [`Outcome`]: `plain` or
//! `tls` when psql connected (read from `pg_stat_ssl`), or an [`ErrorClass`] picked by
//! [`classify`] from libpq's error message.
//!
//! # Messages
//!
//! [`classify`] matches libpq 15's own wording (`fe-connect.c`, `fe-secure-openssl.c`,
//! `fe-secure-common.c`, `fe-auth.c`) and the server's `FATAL` texts that libpq passes on; the
//! unit tests hold the real messages, captured from psql 15.20 against a PostgreSQL 15 server.
//! psql runs with `LC_ALL=C`, so the messages are never translated.
//!
//! libpq 15 cannot tell an expired (or not yet valid) server certificate from an untrusted one:
//! on a failed handshake it reports only OpenSSL's reason string, `SSL error: certificate verify
//! failed`, never the verification result (`certificate has expired`). Both come out as
//! [`ErrorClass::UntrustedCert`]; [`ErrorClass::ExpiredCert`] is returned only if a message
//! carries OpenSSL's `certificate has expired` or `certificate is not yet valid` text, which
//! libpq 15 never prints.
//!
//! # Several attempts in one message
//!
//! libpq makes one attempt per host (and per address of a host name), and with
//! `sslmode=prefer` or `allow` a second attempt to the same server with the other encryption.
//! When every attempt fails it reports all of them, one after the other: each starts with
//! `connection to server at "H", port P failed: ` (or `on socket "S"`), or, for a host name that
//! did not resolve, `could not translate host name ...`. [`classify`] splits the message into
//! those attempts and classifies **the last one**, the one that made libpq give up: after
//! `sslmode=prefer` fell back to plain, the plain attempt's error counts
//! (`no pg_hba.conf entry ... SSL encryption` then `password authentication failed` is
//! `auth-failed`), and for several hosts the last host's error counts. [`OracleResult::message`]
//! keeps every attempt so a report shows the whole story.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::Outcome;
use crate::error::ErrorClass;

/// The query psql runs once connected: whether the session uses TLS, and which version.
pub const QUERY: &str = "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

/// How long psql may take before it is killed. libpq's own connect timeout is
/// [`CONNECT_TIMEOUT_SECS`] per attempt.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The `PGCONNECT_TIMEOUT` psql runs with, in seconds.
pub const CONNECT_TIMEOUT_SECS: u32 = 10;

/// The environment variable that names the psql to run; `psql` on `PATH` when unset.
pub const PSQL_ENV: &str = "TEA_PSQL";

/// `PATH` for psql when this process has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The longest message kept in an [`OracleResult`], in bytes.
const MAX_MESSAGE: usize = 4096;

/// One libpq attempt: the connection string (no password in it), the password, and the `HOME`
/// libpq sees (it reads `~/.postgresql/root.crt`, `postgresql.crt` and `postgresql.key` from
/// there).
#[derive(Clone, Copy)]
pub struct Attempt<'a> {
    /// The libpq connection string (`key=value` pairs or a URI), without the password.
    pub conninfo: &'a str,
    /// The password, handed to psql through `PGPASSWORD`, never on its command line.
    pub password: Option<&'a str>,
    /// The home directory libpq looks in for `~/.postgresql/*` (and `~/.pgpass`).
    pub home: &'a Path,
}

impl fmt::Debug for Attempt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("conninfo", &self.conninfo)
            .field("password", &self.password.map(|_| "<redacted>"))
            .field("home", &self.home)
            .finish()
    }
}

/// What libpq said about one [`Attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleResult {
    /// `plain`, `tls`, or the class of libpq's error.
    pub outcome: Outcome,
    /// For an error, libpq's message without psql's `psql: error: ` prefix, trimmed (every
    /// attempt, see the [module documentation](self)); `None` on success.
    pub message: Option<String>,
    /// The TLS version of a TLS session (`TLSv1.3`); `None` otherwise.
    pub ssl_version: Option<String>,
    /// How long psql ran.
    pub elapsed: Duration,
}

/// psql could not be run at all (an attempt that fails to connect is not an error).
#[derive(Debug)]
pub enum OracleError {
    /// The program could not be started.
    Spawn {
        /// The program that was tried.
        program: PathBuf,
        /// Why it could not start.
        source: io::Error,
    },
    /// Waiting for the program, or reading its output, failed.
    Wait {
        /// The program that was run.
        program: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The program ran but did not do what psql does.
    Unexpected {
        /// The program that was run.
        program: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

impl fmt::Display for OracleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn { program, source } => write!(
                f,
                "cannot run {} (set {PSQL_ENV} to the psql to use): {source}",
                program.display()
            ),
            Self::Wait { program, source } => {
                write!(f, "running {} failed: {source}", program.display())
            }
            Self::Unexpected { program, detail } => write!(f, "{}: {detail}", program.display()),
        }
    }
}

impl std::error::Error for OracleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn { source, .. } | Self::Wait { source, .. } => Some(source),
            Self::Unexpected { .. } => None,
        }
    }
}

/// Which psql to run: the environment variable [`PSQL_ENV`] (`TEA_PSQL`) when set and not
/// empty, else `psql`, looked up on `PATH`.
pub fn psql_program() -> PathBuf {
    match std::env::var_os(PSQL_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("psql"),
    }
}

/// psql's version line (`psql (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)`), for the report.
pub fn libpq_version() -> Result<String, OracleError> {
    let program = psql_program();
    let output = base_command(&program, None, Path::new("/"), None)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| OracleError::Spawn {
            program: program.clone(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().next().unwrap_or("").trim();
    if !output.status.success() || line.is_empty() {
        return Err(OracleError::Unexpected {
            program,
            detail: format!(
                "`--version` exited with {} and printed {:?}",
                output.status,
                first_line(&String::from_utf8_lossy(&output.stderr))
            ),
        });
    }
    Ok(line.to_owned())
}

/// Runs psql once on `attempt`:
/// `psql -X -A -t -w -d CONNINFO -c "SELECT ssl, version FROM pg_stat_ssl WHERE pid =
/// pg_backend_pid()"`, in a clean environment: only `PATH`, `HOME` (the attempt's),
/// `LC_ALL=C`, `PGCONNECT_TIMEOUT=10` and, when there is a password, `PGPASSWORD`. No other
/// `PG*` variable of this process reaches libpq.
///
/// psql is killed after [`TIMEOUT`]; that counts as [`ErrorClass::Unreachable`] (libpq was
/// still waiting for servers). Returns `Err` only when psql cannot be run.
pub fn run(attempt: &Attempt) -> Result<OracleResult, OracleError> {
    let program = psql_program();
    run_program(&program, attempt, TIMEOUT)
}

/// Runs psql once on `attempt` as [`run`] does, with `sql` in place of [`QUERY`]: `Ok` with
/// psql's standard output (trimmed) when it connected and the query ran, `Err` with libpq's
/// message (psql's `psql: error: ` prefix removed) otherwise. psql killed after [`TIMEOUT`] is
/// `Err` too. Returns the outer `Err` only when psql cannot be run.
pub fn run_sql(attempt: &Attempt, sql: &str) -> Result<Result<String, String>, OracleError> {
    let program = psql_program();
    let ran = run_psql(&program, attempt, sql, TIMEOUT)?;
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    Ok(match ran.status {
        Some(status) if status.success() => Ok(stdout.trim().to_string()),
        Some(_) => Err(stderr
            .trim()
            .strip_prefix("psql: error: ")
            .unwrap_or(stderr.trim())
            .to_string()),
        None => Err(killed(TIMEOUT)),
    })
}

/// [`run`] with the program and the time limit given.
fn run_program(
    program: &Path,
    attempt: &Attempt,
    timeout: Duration,
) -> Result<OracleResult, OracleError> {
    let ran = run_psql(program, attempt, QUERY, timeout)?;
    let Some(status) = ran.status else {
        return Ok(OracleResult {
            outcome: Outcome::Error(ErrorClass::Unreachable),
            message: Some(killed(timeout)),
            ssl_version: None,
            elapsed: ran.elapsed,
        });
    };
    Ok(interpret(status, &ran.stdout, &ran.stderr, ran.elapsed))
}

/// What one psql run left: its exit status (`None`: killed at the time limit), its output and
/// how long it ran.
struct Ran {
    status: Option<ExitStatus>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    elapsed: Duration,
}

/// Runs psql on `attempt` with `sql`, killed after `timeout`.
fn run_psql(
    program: &Path,
    attempt: &Attempt,
    sql: &str,
    timeout: Duration,
) -> Result<Ran, OracleError> {
    let started = Instant::now();
    let mut child = psql_command(program, attempt, sql)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| OracleError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
    let wait_error = |source| OracleError::Wait {
        program: program.to_path_buf(),
        source,
    };
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let status = wait_until(&mut child, started + timeout).map_err(wait_error)?;
    let elapsed = started.elapsed();
    Ok(Ran {
        status,
        stdout: collect(stdout).map_err(wait_error)?,
        stderr: collect(stderr).map_err(wait_error)?,
        elapsed,
    })
}

fn killed(timeout: Duration) -> String {
    format!(
        "psql did not finish within {} s and was killed",
        timeout.as_secs()
    )
}

/// The full psql command for `attempt` running `sql`, environment included.
fn psql_command(program: &Path, attempt: &Attempt, sql: &str) -> Command {
    let mut command = base_command(
        program,
        std::env::var_os("PATH"),
        attempt.home,
        attempt.password,
    );
    command
        .args(["-X", "-A", "-t", "-w", "-d"])
        .arg(attempt.conninfo)
        .args(["-c", sql]);
    command
}

/// `program` with a cleared environment plus psql's few variables; no arguments yet.
fn base_command(
    program: &Path,
    path: Option<OsString>,
    home: &Path,
    password: Option<&str>,
) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env(
            "PATH",
            path.filter(|p| !p.is_empty())
                .unwrap_or_else(|| OsString::from(DEFAULT_PATH)),
        )
        .env("HOME", home)
        .env("LC_ALL", "C")
        .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECS.to_string());
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    command
}

/// A thread that reads `pipe` to its end.
fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<io::Result<Vec<u8>>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            pipe.read_to_end(&mut buf)?;
        }
        Ok(buf)
    })
}

/// What a [`reader`] thread read.
fn collect(handle: thread::JoinHandle<io::Result<Vec<u8>>>) -> io::Result<Vec<u8>> {
    handle
        .join()
        .map_err(|_| io::Error::other("the thread reading psql's output panicked"))?
}

/// Waits for `child` until `deadline`; kills it then and returns `None`.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            // The child may have exited since try_wait; kill then fails harmlessly.
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Reduces psql's exit status and output to an [`OracleResult`].
fn interpret(status: ExitStatus, stdout: &[u8], stderr: &[u8], elapsed: Duration) -> OracleResult {
    interpret_exit(
        status.success(),
        &status.to_string(),
        &String::from_utf8_lossy(stdout),
        &String::from_utf8_lossy(stderr),
        elapsed,
    )
}

/// What a psql run (`-X -A -t -w -d CONNINFO -c` [`QUERY`]) came to, from its exit, standard
/// output and standard error: for a psql run elsewhere, such as libpq 17 in a container.
pub fn interpret_exit(
    success: bool,
    status: &str,
    stdout: &str,
    stderr: &str,
    elapsed: Duration,
) -> OracleResult {
    let error = |class: ErrorClass, message: String| OracleResult {
        outcome: Outcome::Error(class),
        message: Some(message),
        ssl_version: None,
        elapsed,
    };
    if success {
        return match parse_row(stdout) {
            Some((true, version)) => OracleResult {
                outcome: Outcome::Tls,
                message: None,
                ssl_version: version,
                elapsed,
            },
            Some((false, _)) => OracleResult {
                outcome: Outcome::Plain,
                message: None,
                ssl_version: None,
                elapsed,
            },
            None => error(
                ErrorClass::Other,
                format!(
                    "psql connected but printed no pg_stat_ssl row: {:?}",
                    truncate(stdout.trim())
                ),
            ),
        };
    }
    let message = libpq_message(stderr);
    if message.is_empty() {
        return error(
            ErrorClass::Other,
            format!("psql exited with {status} and printed no message"),
        );
    }
    error(classify(&message), truncate(&message))
}

/// The `t|TLSv1.3` or `f|` row: whether TLS is on, and its version.
fn parse_row(stdout: &str) -> Option<(bool, Option<String>)> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let (ssl, version) = line.split_once('|')?;
    let version = Some(version.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    match ssl.trim() {
        "t" => Some((true, version)),
        "f" => Some((false, None)),
        _ => None,
    }
}

/// psql's stderr from its `psql: error: ` prefix on, without the prefix, trimmed. Anything
/// before it (libpq's warnings about `~/.pgpass`, say) is not the error and is dropped.
fn libpq_message(stderr: &str) -> String {
    const PREFIX: &str = "psql: error: ";
    let text = match stderr.find(PREFIX) {
        Some(at) => &stderr[at + PREFIX.len()..],
        None => stderr,
    };
    text.trim().to_owned()
}

/// `text` cut to at most [`MAX_MESSAGE`] bytes, on a character boundary.
fn truncate(text: &str) -> String {
    if text.len() <= MAX_MESSAGE {
        return text.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The first line of `text`, trimmed.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

/// Lines that open a new connection attempt in a libpq message: the per-host prefix that
/// libpq 15's `emitHostIdentityInfo` writes, and the per-host errors raised before it (name
/// resolution, `hostaddr` parsing, socket paths).
const ATTEMPT_STARTS: [&str; 6] = [
    "connection to server at ",
    "connection to server on socket ",
    "could not translate host name ",
    "could not parse network address ",
    "could not translate Unix-domain socket path ",
    "Unix-domain socket path ",
];

/// Splits a libpq message into its connection attempts, in order (see the
/// [module documentation](self)). A message that is not about an attempt (a bad connection
/// string) is one part. psql's `psql: error: ` prefix, if still there, is ignored.
pub fn attempts(message: &str) -> Vec<&str> {
    let message = message.trim();
    let message = message.strip_prefix("psql: error: ").unwrap_or(message);
    let mut parts = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in message.split_inclusive('\n') {
        if offset > 0 && ATTEMPT_STARTS.iter().any(|p| line.starts_with(p)) {
            parts.push(message[start..offset].trim());
            start = offset;
        }
        offset += line.len();
    }
    parts.push(message[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

/// Maps a libpq error message to an [`ErrorClass`]. Pure.
///
/// When the message reports several attempts (several hosts, or `sslmode=prefer`/`allow`
/// trying both encryptions), the last attempt decides; see the [module documentation](self).
///
/// | class | libpq 15 text |
/// | --- | --- |
/// | `server-no-tls` | `server does not support SSL, but SSL was required` |
/// | `hostname-mismatch` | `server certificate for "X" [(and N other names)] does not match host name "Y"`, `could not get server's host name from server certificate` |
/// | `expired-cert` | `certificate has expired`, `certificate is not yet valid` (never printed by libpq 15) |
/// | `untrusted-cert` | `SSL error: certificate verify failed` (any verification error, expiry included) |
/// | `config` | missing or unreadable root, client certificate or key files, bad option values, unparsable connection strings, service file errors (`definition of service "X" not found`, `syntax error in service file`) |
/// | `rejected` | `no pg_hba.conf entry for host`, `pg_hba.conf rejects connection` |
/// | `auth-failed` | `... authentication failed for user`, `fe_sendauth: no password supplied`, `role "X" does not exist`, `connection requires a valid client certificate`, a TLS alert from the server about our client certificate (`tlsv1 alert unknown ca`) |
/// | `target-mismatch` | `session is read-only`, `session is not read-only`, `server is in hot standby mode`, `server is not in hot standby mode` |
/// | `unreachable` | `Connection refused`, `could not connect to server`, `timeout expired`, `could not translate host name`, `No route to host`, a missing socket file |
/// | `other` | anything else (`database "X" does not exist`, `server closed the connection unexpectedly`, ...) |
pub fn classify(message: &str) -> ErrorClass {
    let parts = attempts(message);
    parts
        .last()
        .map_or(ErrorClass::Other, |last| classify_one(last))
}

/// [`classify`] for the text of one attempt.
fn classify_one(text: &str) -> ErrorClass {
    let t = text.to_ascii_lowercase();
    let has = |needle: &str| t.contains(needle);
    let has_any = |needles: &[&str]| needles.iter().any(|n| t.contains(n));

    // TLS refused by the server (fe-connect.c, sslmode require and above).
    if has("server does not support ssl, but ssl was required") {
        return ErrorClass::ServerNoTls;
    }
    // fe-secure-common.c, pq_verify_peer_name_matches_certificate.
    if (has("server certificate for \"") && has("does not match host name"))
        || has("could not get server's host name from server certificate")
    {
        return ErrorClass::HostnameMismatch;
    }
    // OpenSSL's X509_verify_cert_error_string texts; libpq 15 never prints them.
    if has_any(&["certificate has expired", "certificate is not yet valid"]) {
        return ErrorClass::ExpiredCert;
    }
    // fe-secure-openssl.c, open_client_SSL: "SSL error: " + ERR_reason_error_string.
    if has("certificate verify failed") {
        return ErrorClass::UntrustedCert;
    }
    if is_config(&t) {
        return ErrorClass::Config;
    }
    // fe-connect.c, CONNECTION_CHECK_TARGET: a server of the wrong kind for
    // target_session_attrs.
    if has_any(&[
        "session is read-only",
        "session is not read-only",
        "server is in hot standby mode",
        "server is not in hot standby mode",
    ]) {
        return ErrorClass::TargetMismatch;
    }
    // The server's pg_hba.conf (ClientAuthentication, auth.c).
    if has_any(&[
        "no pg_hba.conf entry for host",
        "pg_hba.conf rejects connection",
    ]) {
        return ErrorClass::Rejected;
    }
    if has_any(&[
        "authentication failed",
        "no password supplied",
        "connection requires a valid client certificate",
        // libpq 16+: require_auth (fe-auth.c, check_expected_areq) and sslcertmode=require
        // (fe-secure-openssl.c, open_client_SSL).
        "authentication method requirement \"",
        "server did not request an ssl certificate",
        "server accepted connection without a valid ssl certificate",
    ]) || (has("role \"") && has("\" does not exist"))
        || is_client_cert_alert(&t)
    {
        return ErrorClass::AuthFailed;
    }
    if has_any(&[
        "connection refused",
        "could not connect to server",
        "timeout expired",
        "could not translate host name",
        "no route to host",
        "network is unreachable",
        "connection timed out",
        "is the server running",
    ]) {
        return ErrorClass::Unreachable;
    }
    ErrorClass::Other
}

/// Local configuration errors: files libpq must read, option values, connection string syntax
/// (`t` is lower-cased).
fn is_config(t: &str) -> bool {
    const NEEDLES: [&str; 32] = [
        // fe-secure-openssl.c, initialize_SSL
        "could not read root certificate file",
        "could not get home directory to locate root certificate file",
        "could not open certificate file",
        "could not read certificate file",
        "certificate present, but not private key file",
        "could not stat private key file",
        "could not load private key file",
        "certificate does not match private key file",
        "has group or world access",
        "invalid value \"",
        "could not load ssl engine",
        "could not read private ssl key",
        "could not load private ssl key",
        // fe-connect.c, option checks and connection string parsing
        "invalid connection option",
        "invalid integer value",
        "keepalives parameter must be an integer",
        "invalid port number",
        "invalid ssl protocol version range",
        "unterminated quoted string in connection info string",
        "in connection info string",
        "could not match ",
        "in uri",
        "invalid uri",
        "invalid percent-encoded token",
        "host name must be specified",
        "could not parse network address",
        // fe-connect.c, parseServiceInfo and parseServiceFile
        "definition of service \"",
        "syntax error in service file",
        "nested service specifications not supported in service file",
        "too long in service file",
        // libpq 16+: require_auth lists (fe-connect.c, connectOptions2)
        "cannot be mixed with",
        "is specified more than once",
    ];
    (t.contains("root certificate file") && t.contains("does not exist"))
        // libpq 16+: "weak sslmode \"require\" may not be used with sslrootcert=system ...",
        // libpq 17: "... with sslnegotiation=direct ..." (fe-connect.c)
        || t.contains("weak sslmode \"")
        || (t.contains("private key file") && t.contains("is not a regular file"))
        // parseServiceFile: "service file \"%s\" not found" (it cannot be opened)
        || (t.contains("service file \"") && t.contains("not found"))
        // "invalid sslmode value: ...", "invalid target_session_attrs value: ..." (fe-connect.c)
        || (t.starts_with("invalid ") && t.contains(" value: \""))
        || NEEDLES.iter().any(|n| t.contains(n))
}

/// A TLS alert the server sent about our client certificate: OpenSSL's reason strings for
/// received alerts, `tlsv1 alert unknown ca`, `sslv3 alert bad certificate`, ... (`t` is
/// lower-cased).
fn is_client_cert_alert(t: &str) -> bool {
    (t.contains("sslv3 alert ") || t.contains("tlsv1 alert ") || t.contains("tlsv13 alert "))
        && (t.contains("certificate") || t.contains("unknown ca") || t.contains("access denied"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::ffi::OsStr;
    use std::net::TcpListener;

    /// Whether `name` is one of the variables psql may see.
    fn allowed_env(name: &OsStr) -> bool {
        ["PATH", "HOME", "LC_ALL", "PGCONNECT_TIMEOUT", "PGPASSWORD"]
            .iter()
            .any(|v| OsStr::new(v) == name)
    }

    // Real messages from psql 15.20 (libpq 15.20, OpenSSL 3.0) against PostgreSQL 15, as
    // printed after `psql: error: `.

    #[test]
    fn server_no_tls() {
        let m = r#"connection to server at "127.0.0.1", port 54329 failed: server does not support SSL, but SSL was required"#;
        assert_eq!(classify(m), ErrorClass::ServerNoTls);
    }

    #[test]
    fn require_auth_and_sslcertmode() {
        // libpq 16+ texts: the list's errors are configuration, the refusals authentication.
        for m in [
            r#"invalid require_auth value: "scram""#,
            r#"negative require_auth method "!md5" cannot be mixed with non-negative methods"#,
            r#"require_auth method "md5" cannot be mixed with negative methods"#,
            r#"require_auth method "md5" is specified more than once"#,
            r#"invalid sslcertmode value: "maybe""#,
        ] {
            assert_eq!(classify(m), ErrorClass::Config, "{m}");
        }
        for m in [
            r#"connection to server at "127.0.0.1", port 5432 failed: authentication method requirement "md5" failed: server requested SASL authentication"#,
            r#"connection to server at "127.0.0.1", port 5432 failed: authentication method requirement "scram-sha-256" failed: server did not complete authentication"#,
            r#"connection to server at "127.0.0.1", port 5432 failed: server did not request an SSL certificate"#,
            r#"connection to server at "172.17.0.3", port 5432 failed: server accepted connection without a valid SSL certificate"#,
        ] {
            assert_eq!(classify(m), ErrorClass::AuthFailed, "{m}");
        }
    }

    #[test]
    fn service_file_errors_are_config() {
        // fe-connect.c, parseServiceInfo and parseServiceFile (libpq 15 texts).
        for m in [
            r#"definition of service "nope" not found"#,
            r#"syntax error in service file "/h/.pg_service.conf", line 7"#,
            r#"nested service specifications not supported in service file "/h/.pg_service.conf", line 2"#,
            r#"line 3 too long in service file "/h/.pg_service.conf""#,
            r#"service file "/h/.pg_service.conf" not found"#,
        ] {
            assert_eq!(classify(m), ErrorClass::Config, "{m}");
        }
    }

    #[test]
    fn untrusted_cert() {
        // Unknown CA (sslrootcert of another CA), a self-signed server certificate, and, the
        // same text, an expired and a not-yet-valid certificate signed by the trusted CA.
        let m = r#"connection to server at "127.0.0.1", port 54329 failed: SSL error: certificate verify failed"#;
        assert_eq!(classify(m), ErrorClass::UntrustedCert);
        let m = r#"connection to server at "localhost" (127.0.0.1), port 54329 failed: SSL error: certificate verify failed"#;
        assert_eq!(classify(m), ErrorClass::UntrustedCert);
    }

    #[test]
    fn expired_only_with_openssl_text() {
        // libpq 15 never prints this; a later libpq might append the verify result.
        let m = "SSL error: certificate verify failed: certificate has expired";
        assert_eq!(classify(m), ErrorClass::ExpiredCert);
        let m = "SSL error: certificate verify failed: certificate is not yet valid";
        assert_eq!(classify(m), ErrorClass::ExpiredCert);
        // A client certificate the server found expired is not the server's certificate.
        let m = "SSL error: sslv3 alert certificate expired";
        assert_eq!(classify(m), ErrorClass::AuthFailed);
    }

    #[test]
    fn hostname_mismatch() {
        for m in [
            r#"connection to server at "127.0.0.1", port 54329 failed: server certificate for "localhost" (and 1 other name) does not match host name "127.0.0.1""#,
            r#"connection to server at "127.0.0.1", port 54329 failed: server certificate for "localhost" does not match host name "127.0.0.1""#,
            r#"connection to server at "localhost" (127.0.0.1), port 54329 failed: server certificate for "a.example" (and 2 other names) does not match host name "localhost""#,
            r#"connection to server at "localhost" (127.0.0.1), port 54329 failed: could not get server's host name from server certificate"#,
            // hostaddr without host: libpq checks the default socket directory as the name.
            r#"connection to server at "127.0.0.1", port 54329 failed: server certificate for "localhost" does not match host name "/var/run/postgresql""#,
        ] {
            assert_eq!(classify(m), ErrorClass::HostnameMismatch, "{m}");
        }
    }

    #[test]
    fn rejected() {
        for m in [
            r#"connection to server at "127.0.0.1", port 54329 failed: FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "alice", database "postgres", no encryption"#,
            r#"connection to server at "127.0.0.1", port 54329 failed: FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "bob", database "postgres", SSL encryption"#,
            r#"connection to server at "127.0.0.1", port 54329 failed: FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "rejected", database "postgres", no encryption"#,
        ] {
            assert_eq!(classify(m), ErrorClass::Rejected, "{m}");
        }
    }

    #[test]
    fn auth_failed() {
        for m in [
            r#"connection to server at "127.0.0.1", port 54329 failed: FATAL:  password authentication failed for user "alice""#,
            r#"connection to server at "127.0.0.1", port 54329 failed: fe_sendauth: no password supplied"#,
            r#"connection to server at "127.0.0.1", port 54329 failed: FATAL:  certificate authentication failed for user "certuser""#,
            r#"connection to server at "127.0.0.1", port 54329 failed: FATAL:  connection requires a valid client certificate"#,
            r#"connection to server at "127.0.0.1", port 54329 failed: FATAL:  role "zed" does not exist"#,
            // A client certificate from a CA the server does not trust.
            r#"connection to server at "127.0.0.1", port 54329 failed: SSL error: tlsv1 alert unknown ca"#,
        ] {
            assert_eq!(classify(m), ErrorClass::AuthFailed, "{m}");
        }
    }

    #[test]
    fn unreachable() {
        for m in [
            "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
            "connection to server at \"localhost\" (127.0.0.1), port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
            r#"connection to server at "127.0.0.1", port 54400 failed: timeout expired"#,
            r#"could not translate host name "no-such-host.invalid" to address: Name or service not known"#,
            "connection to server on socket \"/tmp/oraclepg.rJFC/.s.PGSQL.1\" failed: No such file or directory\n\tIs the server running locally and accepting connections on that socket?",
            // libpq 13 and older.
            "could not connect to server: Connection refused",
        ] {
            assert_eq!(classify(m), ErrorClass::Unreachable, "{m}");
        }
    }

    #[test]
    fn config() {
        for m in [
            "connection to server at \"127.0.0.1\", port 54329 failed: root certificate file \"/tmp/oraclepg.rJFC/home/.postgresql/root.crt\" does not exist\nEither provide the file or change sslmode to disable server certificate verification.",
            "connection to server at \"127.0.0.1\", port 54329 failed: root certificate file \"/tmp/oraclepg.rJFC/nope.crt\" does not exist\nEither provide the file or change sslmode to disable server certificate verification.",
            r#"connection to server at "127.0.0.1", port 54329 failed: could not read root certificate file "/tmp/oraclepg.rJFC/garbage.crt": no certificate or crl found"#,
            r#"invalid sslmode value: "bogus""#,
            r#"invalid connection option "bogus""#,
            r#"connection to server at "127.0.0.1", port 54329 failed: certificate present, but not private key file "/tmp/oraclepg.rJFC/nokey.key""#,
            r#"connection to server at "127.0.0.1", port 54329 failed: could not load private key file "/tmp/oraclepg.rJFC/o.key": key values mismatch"#,
            r#"connection to server at "127.0.0.1", port 54329 failed: private key file "/tmp/oraclepg.rJFC/ca2.key" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root"#,
            r#"end of string reached when looking for matching "]" in IPv6 host address in URI: "postgresql://[::1""#,
            r#"invalid integer value "abc" for connection option "port""#,
            r#"invalid ssl_min_protocol_version value: "TLSv9""#,
            "invalid SSL protocol version range",
            "unterminated quoted string in connection info string",
            r#"could not parse network address "1.2.3.999": Name or service not known"#,
        ] {
            assert_eq!(classify(m), ErrorClass::Config, "{m}");
        }
    }

    #[test]
    fn other() {
        for m in [
            r#"connection to server at "127.0.0.1", port 54329 failed: FATAL:  database "nodb" does not exist"#,
            r#"connection to server at "10.255.255.1", port 5432 failed: received invalid response to SSL negotiation: H"#,
            "connection to server at \"127.0.0.1\", port 54329 failed: server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.",
            "",
        ] {
            assert_eq!(classify(m), ErrorClass::Other, "{m}");
        }
    }

    #[test]
    fn last_attempt_counts() {
        // sslmode=prefer: SSL attempt refused by pg_hba, plain attempt with a wrong password.
        let m = "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  no pg_hba.conf entry for host \"127.0.0.1\", user \"bob\", database \"postgres\", SSL encryption\nconnection to server at \"127.0.0.1\", port 54329 failed: FATAL:  password authentication failed for user \"bob\"";
        assert_eq!(attempts(m).len(), 2);
        assert_eq!(classify(m), ErrorClass::AuthFailed);
        // sslmode=allow: plain attempt with a wrong password, then SSL refused by pg_hba.
        let m = "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  password authentication failed for user \"bob\"\nconnection to server at \"127.0.0.1\", port 54329 failed: FATAL:  no pg_hba.conf entry for host \"127.0.0.1\", user \"bob\", database \"postgres\", SSL encryption";
        assert_eq!(classify(m), ErrorClass::Rejected);
        // Two hosts: a name that does not resolve, then a refused port.
        let m = "could not translate host name \"no-such-host.invalid\" to address: Name or service not known\nconnection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?";
        let parts = attempts(m);
        assert_eq!(parts.len(), 2);
        assert!(parts[1].ends_with("TCP/IP connections?"), "{parts:?}");
        assert_eq!(classify(m), ErrorClass::Unreachable);
        // The other order.
        let m = "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\ncould not translate host name \"no-such-host.invalid\" to address: Name or service not known";
        assert_eq!(attempts(m).len(), 2);
        assert_eq!(classify(m), ErrorClass::Unreachable);
        // A TLS failure on the first host does not count when the second is unreachable.
        let m = "connection to server at \"a\" (10.0.0.1), port 5432 failed: SSL error: certificate verify failed\nconnection to server at \"b\" (10.0.0.2), port 5432 failed: timeout expired";
        assert_eq!(classify(m), ErrorClass::Unreachable);
        // Continuation lines stay with their attempt.
        let m = "psql: error: connection to server at \"127.0.0.1\", port 54329 failed: root certificate file \"/x/root.crt\" does not exist\nEither provide the file or change sslmode to disable server certificate verification.";
        assert_eq!(attempts(m).len(), 1);
        assert_eq!(classify(m), ErrorClass::Config);
    }

    #[test]
    fn rows_and_messages() {
        assert_eq!(
            parse_row("t|TLSv1.3\n"),
            Some((true, Some("TLSv1.3".into())))
        );
        assert_eq!(parse_row("f|\n"), Some((false, None)));
        assert_eq!(parse_row(""), None);
        assert_eq!(parse_row("x|y"), None);
        assert_eq!(
            libpq_message("psql: error: invalid connection option \"bogus\"\n"),
            "invalid connection option \"bogus\""
        );
        let warned = "WARNING: password file \"/h/.pgpass\" has group or world access; permissions should be u=rw (0600) or less\npsql: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n";
        let message = libpq_message(warned);
        assert!(message.starts_with("connection to server"), "{message}");
        assert_eq!(classify(&message), ErrorClass::Unreachable);
        let long = "é".repeat(MAX_MESSAGE);
        assert!(truncate(&long).len() <= MAX_MESSAGE + 3);
    }

    #[test]
    fn attempt_debug_redacts_password() {
        let a = Attempt {
            conninfo: "host=h",
            password: Some("hunter2"),
            home: Path::new("/nonexistent"),
        };
        let shown = format!("{a:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn command_carries_only_its_environment() {
        let home = Path::new("/nonexistent-home");
        let attempt = Attempt {
            conninfo: "host=127.0.0.1 port=1",
            password: Some("pw"),
            home,
        };
        let command = psql_command(Path::new("psql"), &attempt, QUERY);
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(
            args,
            [
                "-X",
                "-A",
                "-t",
                "-w",
                "-d",
                "host=127.0.0.1 port=1",
                "-c",
                QUERY
            ]
        );
        assert!(!args.iter().any(|a| a.to_string_lossy().contains("pw")));
        let envs: BTreeMap<_, _> = command.get_envs().collect();
        let names: Vec<_> = envs
            .keys()
            .map(|k| k.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["HOME", "LC_ALL", "PATH", "PGCONNECT_TIMEOUT", "PGPASSWORD"]
        );
        assert_eq!(envs[OsStr::new("HOME")], Some(home.as_os_str()));
        assert_eq!(envs[OsStr::new("LC_ALL")], Some(OsStr::new("C")));
        assert_eq!(
            envs[OsStr::new("PGCONNECT_TIMEOUT")],
            Some(OsStr::new("10"))
        );
        assert_eq!(envs[OsStr::new("PGPASSWORD")], Some(OsStr::new("pw")));
        assert!(envs.keys().all(|k| allowed_env(k)));

        let without = Attempt {
            password: None,
            ..attempt
        };
        let command = psql_command(Path::new("psql"), &without, QUERY);
        assert!(command.get_envs().all(|(k, _)| k != "PGPASSWORD"));
    }

    #[test]
    fn child_sees_nothing_of_this_process_environment() {
        // The environment of this test process (cargo sets CARGO_*, and PG* variables may be
        // around) must not reach the child: run `env` through the same builder.
        let env_program = Path::new("/usr/bin/env");
        if !env_program.exists() {
            eprintln!("skipped: no /usr/bin/env");
            return;
        }
        let leaky: Vec<String> = std::env::vars_os()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .filter(|k| !allowed_env(OsStr::new(k)))
            .collect();
        let output = base_command(
            env_program,
            std::env::var_os("PATH"),
            Path::new("/nonexistent-home"),
            None,
        )
        .output()
        .expect("run env");
        assert!(output.status.success());
        let printed = String::from_utf8_lossy(&output.stdout);
        let names: Vec<&str> = printed
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, ["HOME", "LC_ALL", "PATH", "PGCONNECT_TIMEOUT"]);
        for name in &leaky {
            assert!(!names.contains(&name.as_str()), "{name} leaked");
        }
        assert!(printed.contains("HOME=/nonexistent-home\n"));
    }

    /// A loopback port nobody listens on (bound, then released).
    fn free_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.local_addr().expect("local addr").port()
    }

    fn have_psql() -> bool {
        libpq_version().is_ok()
    }

    #[test]
    fn unreachable_port_is_unreachable() {
        if !have_psql() {
            eprintln!("skipped: no psql ({PSQL_ENV} or PATH)");
            return;
        }
        let home = std::env::temp_dir();
        let conninfo = format!(
            "host=127.0.0.1 port={} user=nobody dbname=nobody sslmode=prefer",
            free_port()
        );
        let result = run(&Attempt {
            conninfo: &conninfo,
            password: Some("not-used"),
            home: &home,
        })
        .expect("psql runs");
        assert_eq!(
            result.outcome,
            Outcome::Error(ErrorClass::Unreachable),
            "{result:?}"
        );
        let message = result.message.expect("a message");
        assert!(message.contains("Connection refused"), "{message}");
        assert!(!message.starts_with("psql:"), "{message}");
        assert_eq!(result.ssl_version, None);
        assert!(result.elapsed < TIMEOUT);
    }

    #[test]
    fn bad_conninfo_is_config() {
        if !have_psql() {
            eprintln!("skipped: no psql ({PSQL_ENV} or PATH)");
            return;
        }
        let home = std::env::temp_dir();
        let result = run(&Attempt {
            conninfo: "host=127.0.0.1 sslmode=bogus",
            password: None,
            home: &home,
        })
        .expect("psql runs");
        assert_eq!(result.outcome, Outcome::Error(ErrorClass::Config));
        assert_eq!(
            result.message.as_deref(),
            Some(r#"invalid sslmode value: "bogus""#)
        );
    }

    #[test]
    fn version_line() {
        if !have_psql() {
            eprintln!("skipped: no psql ({PSQL_ENV} or PATH)");
            return;
        }
        let version = libpq_version().expect("psql --version");
        assert!(version.starts_with("psql (PostgreSQL) "), "{version}");
    }

    #[test]
    fn missing_program_is_an_error() {
        let attempt = Attempt {
            conninfo: "host=127.0.0.1",
            password: None,
            home: Path::new("/"),
        };
        let err = run_program(
            Path::new("/nonexistent/psql"),
            &attempt,
            Duration::from_secs(1),
        )
        .expect_err("no such program");
        assert!(matches!(err, OracleError::Spawn { .. }), "{err}");
    }

    #[test]
    fn a_hanging_program_is_killed() {
        let sh = Path::new("/bin/sh");
        if !sh.exists() {
            return;
        }
        // The waiter psql runs under, on a child that outlives the deadline.
        let mut child = Command::new(sh)
            .args(["-c", "exec sleep 5"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let out = reader(child.stdout.take());
        let started = Instant::now();
        let status = wait_until(&mut child, started + Duration::from_millis(200)).expect("wait");
        assert!(status.is_none());
        assert!(started.elapsed() < Duration::from_secs(4));
        collect(out).expect("output");
    }
}
