//! The client protocol's messages (`conformance/clients/PROTOCOL.md`): what a client claims,
//! the faults a reply can have, and what the server log confirms. [`super::client`] runs
//! clients with them, [`super::verdict`] judges them.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::Outcome;

/// After this many failures in a row (timeout, exit, bad reply, no start) without a good reply
/// in between, a client is given up and its remaining cases are `not-run`.
pub const MAX_FAILURES_IN_A_ROW: usize = 3;

/// The largest manifest or expectations file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a file of at most [`MAX_FILE_BYTES`] as UTF-8.
pub(crate) fn read_small(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{}: larger than {MAX_FILE_BYTES} bytes",
            path.display()
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))
}

/// What a client says it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Claim {
    /// Connected over TLS.
    Tls,
    /// Connected without TLS.
    Plain,
    /// Did not connect.
    Fail,
}

impl Claim {
    /// `tls`, `plain` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::Plain => "plain",
            Self::Fail => "fail",
        }
    }

    /// Parses what [`Claim::as_str`] prints.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tls" => Some(Self::Tls),
            "plain" => Some(Self::Plain),
            "fail" => Some(Self::Fail),
            _ => None,
        }
    }

    /// libpq's outcome in the client protocol's terms: any error is `fail`.
    pub fn of(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Tls => Self::Tls,
            Outcome::Plain => Self::Plain,
            Outcome::Error(_) => Self::Fail,
        }
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A well-formed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What the client says it did.
    pub claim: Claim,
    /// Its message, if any (bounded, control characters escaped).
    pub message: Option<String>,
}

/// Why a case got no usable reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// No reply within the time limit; the client was killed.
    Timeout(Duration),
    /// The client ended (or closed its output) before replying; its exit status.
    Exited(String),
    /// The reply was not one JSON object with the request's id and an outcome.
    BadReply(String),
    /// The client could not be started.
    NoStart(String),
    /// The client was given up after too many failures in a row.
    NotRun,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(limit) => write!(
                f,
                "no reply within {} s; the client was killed",
                limit.as_secs()
            ),
            Self::Exited(status) => write!(f, "the client ended before replying ({status})"),
            Self::BadReply(why) => write!(f, "bad reply: {why}"),
            Self::NoStart(why) => write!(f, "the client could not be started: {why}"),
            Self::NotRun => write!(
                f,
                "not run: the client was given up after {MAX_FAILURES_IN_A_ROW} failures in a row"
            ),
        }
    }
}

/// What the server log says of the connections made under one `application_name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seen {
    /// An authorized connection over TLS.
    pub tls: bool,
    /// An authorized connection without TLS.
    pub plain: bool,
}

/// Reads a server log's `connection authorized: ... application_name=NAME[ SSL enabled ...]`
/// lines (PostgreSQL 12 and later, `log_connections = on`): what was seen under each name.
pub fn connections_in_log(log: &str) -> HashMap<&str, Seen> {
    const NAME: &str = "application_name=";
    let mut seen: HashMap<&str, Seen> = HashMap::new();
    for line in log.lines() {
        let Some(at) = line.find("connection authorized: ") else {
            continue;
        };
        let rest = &line[at..];
        let Some(pos) = rest.find(NAME) else {
            continue;
        };
        let after = &rest[pos + NAME.len()..];
        let (name, tail) = after.split_at(after.find(' ').unwrap_or(after.len()));
        let entry = seen.entry(name).or_default();
        if tail.starts_with(" SSL enabled") {
            entry.tls = true;
        } else {
            entry.plain = true;
        }
    }
    seen
}

/// What a server log says of the connections made under one `application_name`.
pub fn seen_in_log(log: &str, application_name: &str) -> Seen {
    connections_in_log(log)
        .get(application_name)
        .copied()
        .unwrap_or_default()
}

/// Whether the server confirms `claim`: an authorized connection with that encryption.
pub fn confirms(seen: Seen, claim: Claim) -> bool {
    match claim {
        Claim::Tls => seen.tls,
        Claim::Plain => seen.plain,
        Claim::Fail => true,
    }
}
