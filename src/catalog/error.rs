//! [`CatalogError`]: what went wrong in a catalog operation, classed by what the caller can do.

use std::fmt;

use crate::connect::ConnectError;
use crate::error::{Action, ErrorClass};
use crate::pool::PoolError;

/// The most characters of server text (an error message, a column or type name) a
/// [`CatalogError`] quotes: a server decides how long its text is, the caller's log does not
/// have to take it all.
pub(crate) const MAX_SERVER_TEXT: usize = 256;

/// `text` cut to [`MAX_SERVER_TEXT`] characters, with `...` where it was cut.
pub(crate) fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_SERVER_TEXT) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

/// What kind of failure a [`CatalogError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CatalogErrorKind {
    /// The configuration is wrong (YAML, plan): fix it, do not retry.
    Config,
    /// No connection could be had (credentials, TLS, login, pool timeout).
    Connect,
    /// The schema could not be migrated, is newer than this build knows, or holds what this
    /// build cannot read: a column of another type, a NULL where the schema has `NOT NULL`,
    /// a value that does not decode.
    Schema,
    /// The server refused a statement (a constraint, a value too long, a lost connection).
    Database,
    /// The caller passed a value the catalog cannot use (a negative limit, a metadata filter
    /// that is not an object).
    InvalidInput,
    /// The snapshot named does not exist.
    NotFound,
    /// [`super::PostgresCatalog::close`] was called.
    Closed,
    /// The statement was not run: an earlier entry of an atomic batch failed and the whole
    /// batch was rolled back, or never reached.
    RolledBack,
}

impl CatalogErrorKind {
    /// A stable lower-case name (`config`, `connect`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Connect => "connect",
            Self::Schema => "schema",
            Self::Database => "database",
            Self::InvalidInput => "invalid-input",
            Self::NotFound => "not-found",
            Self::Closed => "closed",
            Self::RolledBack => "rolled-back",
        }
    }
}

/// A catalog error. Its message names what failed and the server's reason (with its SQLSTATE),
/// never a password, a token or an entry's value: server `DETAIL` lines, which can quote a
/// whole row, are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    kind: CatalogErrorKind,
    class: ErrorClass,
    sqlstate: Option<String>,
    message: String,
    /// The connection error under a `connect` failure (with its credential source's error).
    cause: Option<Box<ConnectError>>,
}

impl CatalogError {
    /// An error of `kind` and `class`; `message` must not hold a secret.
    pub fn new(kind: CatalogErrorKind, class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            kind,
            class,
            sqlstate: None,
            message: message.into(),
            cause: None,
        }
    }

    pub(crate) fn schema(message: impl Into<String>) -> Self {
        Self::new(CatalogErrorKind::Schema, ErrorClass::Other, message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(CatalogErrorKind::InvalidInput, ErrorClass::Config, message)
    }

    /// Prefixes the message with what was being done.
    pub(crate) fn context(mut self, what: &str) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> CatalogErrorKind {
        self.kind
    }

    /// The class shared with `ping` and the pool (`config`, `auth-failed`, `unreachable`, ...).
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// The server's SQLSTATE, when the server refused a statement (`22001`: value too long).
    pub fn sqlstate(&self) -> Option<&str> {
        self.sqlstate.as_deref()
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What the caller should do. A `connect` failure keeps its connection error's answer (a
    /// token endpoint that is down is `retry`, a refused identity `fix-permissions`); invalid
    /// input and a closed catalog are the caller's to fix (`fix-config`, `investigate`).
    pub fn action(&self) -> Action {
        if let Some(cause) = &self.cause {
            return cause.action();
        }
        match self.kind {
            CatalogErrorKind::Closed => Action::Investigate,
            _ => self.class.action(),
        }
    }

    /// The connection error under a `connect` failure.
    pub fn connect_error(&self) -> Option<&ConnectError> {
        self.cause.as_deref()
    }
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "catalog {}: {}",
            self.kind.as_str(),
            crate::text::Escaped(&self.message)
        )
    }
}

impl std::error::Error for CatalogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<crate::error::ConfigError> for CatalogError {
    fn from(e: crate::error::ConfigError) -> Self {
        Self::new(CatalogErrorKind::Config, e.class(), e.to_string())
    }
}

impl From<PoolError> for CatalogError {
    fn from(e: PoolError) -> Self {
        let kind = match e {
            PoolError::Closed => CatalogErrorKind::Closed,
            _ => CatalogErrorKind::Connect,
        };
        let mut error = Self::new(kind, e.class(), e.to_string());
        if let PoolError::Connect(cause) = e {
            error.cause = Some(Box::new(cause));
        }
        error
    }
}

impl From<tokio_postgres::Error> for CatalogError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => {
                // The server chooses the code's text: a short or non-ASCII one is class other.
                let code = bounded(db.code().code());
                let class = match code.get(..2) {
                    Some("28") => ErrorClass::AuthFailed,
                    Some("08" | "57") => ErrorClass::Unreachable,
                    _ => ErrorClass::Other,
                };
                Self {
                    kind: CatalogErrorKind::Database,
                    class,
                    message: format!("{} (SQLSTATE {code})", bounded(db.message())),
                    sqlstate: Some(code),
                    cause: None,
                }
            }
            None => {
                let class = if e.is_closed() {
                    ErrorClass::Unreachable
                } else {
                    ErrorClass::Other
                };
                Self::new(CatalogErrorKind::Database, class, bounded(&e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_is_bounded_on_a_character_boundary() {
        assert_eq!(bounded("short"), "short");
        let exact = "é".repeat(MAX_SERVER_TEXT);
        assert_eq!(bounded(&exact), exact);
        let long = "é".repeat(MAX_SERVER_TEXT + 1);
        assert_eq!(bounded(&long), format!("{exact}..."));
    }
}
