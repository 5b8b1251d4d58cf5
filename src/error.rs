//! Errors, grouped by what the caller should do about them.
//!
//! Every error that comes from the configuration carries the dotted YAML path of the value at
//! fault (`settings.ltm.catalog.sslmode`) and, where the text came from a file, its line and
//! column. Messages name keys and variables, never a secret value.

use std::fmt;

/// The error classes shared by `ping --json`, the conformance matrix and the vector files.
///
/// They say what went wrong in terms a caller can act on; see DESIGN.md ("Ping JSON").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// TLS was required and the server refused it.
    ServerNoTls,
    /// The server certificate does not chain to a trusted root.
    UntrustedCert,
    /// The server certificate does not name the host.
    HostnameMismatch,
    /// The server certificate has expired (or is not yet valid).
    ExpiredCert,
    /// `pg_hba.conf` refused this encryption or user.
    Rejected,
    /// Wrong password, token or user.
    AuthFailed,
    /// No server answered.
    Unreachable,
    /// Servers answered, but none of the kind `target_session_attrs` asks for (libpq's
    /// `session is read-only`, `server is in hot standby mode`, ...): during a failover, until
    /// a server is promoted.
    TargetMismatch,
    /// The configuration is wrong: fix it, do not retry.
    Config,
    /// Credentials could not be obtained from their source.
    Credentials,
    /// Anything else.
    Other,
}

impl ErrorClass {
    /// Every class.
    pub const ALL: [ErrorClass; 11] = [
        Self::ServerNoTls,
        Self::UntrustedCert,
        Self::HostnameMismatch,
        Self::ExpiredCert,
        Self::Rejected,
        Self::AuthFailed,
        Self::Unreachable,
        Self::TargetMismatch,
        Self::Config,
        Self::Credentials,
        Self::Other,
    ];

    /// The class as written in JSON and vector files (`server-no-tls`, `config`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerNoTls => "server-no-tls",
            Self::UntrustedCert => "untrusted-cert",
            Self::HostnameMismatch => "hostname-mismatch",
            Self::ExpiredCert => "expired-cert",
            Self::Rejected => "rejected",
            Self::AuthFailed => "auth-failed",
            Self::Unreachable => "unreachable",
            Self::TargetMismatch => "target-mismatch",
            Self::Config => "config",
            Self::Credentials => "credentials",
            Self::Other => "other",
        }
    }
}

impl ErrorClass {
    /// What the caller should do about an error of this class. `credentials` says only that
    /// a credential source failed: an error that keeps the source's own error
    /// ([`crate::connect::ConnectError::action`]) knows more.
    pub fn action(self) -> Action {
        match self {
            Self::ServerNoTls
            | Self::UntrustedCert
            | Self::HostnameMismatch
            | Self::ExpiredCert => Action::FixServer,
            Self::Rejected | Self::AuthFailed => Action::FixPermissions,
            Self::Unreachable | Self::TargetMismatch => Action::Retry,
            Self::Config => Action::FixConfig,
            Self::Credentials | Self::Other => Action::Investigate,
        }
    }
}

/// What a caller should do about an error: the grouping that stays visible through every
/// layer (a token error under a connection error under a pool error under a catalog error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// It may pass: a server or an identity service that did not answer, throttled, or
    /// failed. Retry with backoff.
    Retry,
    /// The configuration is wrong (a key, a value, a missing secret): retrying cannot help.
    FixConfig,
    /// The identity was refused: a password, a role, a grant or an IAM permission.
    FixPermissions,
    /// The server does not meet the plan's TLS policy (no TLS, an untrusted, expired or
    /// misnamed certificate).
    FixServer,
    /// Nothing more specific is known.
    Investigate,
}

impl Action {
    /// A stable lower-case name (`retry`, `fix-config`, `fix-permissions`, `fix-server`,
    /// `investigate`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::FixConfig => "fix-config",
            Self::FixPermissions => "fix-permissions",
            Self::FixServer => "fix-server",
            Self::Investigate => "investigate",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in a source text something stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name as the user gave it (`<stdin>` for standard input).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// What kind of configuration problem a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The text is not valid YAML.
    Syntax,
    /// No catalog mapping was found (neither `settings.ltm.catalog` nor a bare catalog).
    NoCatalog,
    /// A key the catalog does not know.
    UnknownKey,
    /// A value of the wrong type or outside the allowed set.
    InvalidValue,
    /// A required value is missing.
    Missing,
    /// Two keys that cannot be used together.
    Conflict,
    /// A `${VAR}` reference that cannot be expanded.
    Expansion,
    /// A libpq connection string libpq would refuse.
    ConnInfo,
    /// A file could not be read.
    Io,
    /// A libpq option this crate does not honour (see `support`): refused when the plan is
    /// made rather than ignored.
    Unsupported,
}

impl ConfigErrorKind {
    /// A stable lower-case name, used in vector files and JSON (`unknown-key`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::NoCatalog => "no-catalog",
            Self::UnknownKey => "unknown-key",
            Self::InvalidValue => "invalid-value",
            Self::Missing => "missing",
            Self::Conflict => "conflict",
            Self::Expansion => "expansion",
            Self::ConnInfo => "conninfo",
            Self::Io => "io",
            Self::Unsupported => "unsupported",
        }
    }
}

/// A configuration error: what is wrong, at which YAML path, where in the file.
///
/// `Display` renders `FILE:LINE:COL: PATH: message`, leaving out the parts that are unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    path: Option<String>,
    location: Option<Location>,
    message: String,
}

impl ConfigError {
    /// A new error of `kind` with `message`; the message must not hold a secret value.
    pub fn new(kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            path: None,
            location: None,
            message: message.into(),
        }
    }

    /// Sets the dotted YAML path the error is about.
    pub fn at_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Sets the location in the source text.
    pub fn at_location(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The class shared with `ping` and the conformance matrix; always `config` for now.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Config
    }

    /// The dotted YAML path, when known.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The location in the source text, when known.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// The message without path or location.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with every value of `tainted` taken out of its message.
    pub fn scrubbed(mut self, tainted: &crate::text::Tainted) -> Self {
        if !tainted.is_empty() {
            self.message = tainted.scrub(&self.message);
        }
        self
    }
}

impl fmt::Display for ConfigError {
    /// One line: control characters in the file name, the path (YAML keys) and the message are
    /// escaped ([`crate::text::escape_controls`]), so a configuration cannot forge output lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::text::Escaped;
        if let Some(location) = &self.location {
            write!(
                f,
                "{}:{}:{}: ",
                Escaped(&location.file),
                location.line,
                location.col
            )?;
        }
        if let Some(path) = &self.path {
            write!(f, "{}: ", Escaped(path))?;
        }
        write!(f, "{}", Escaped(&self.message))
    }
}

impl std::error::Error for ConfigError {}

/// Shorthand for results whose error is [`ConfigError`].
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
