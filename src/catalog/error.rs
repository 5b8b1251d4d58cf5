//! [`CatalogError`]: what went wrong in a catalog operation, classed by what the caller can do.

use std::fmt;

use crate::error::ErrorClass;
use crate::pool::PoolError;

/// What kind of failure a [`CatalogError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CatalogErrorKind {
    /// The configuration is wrong (YAML, plan): fix it, do not retry.
    Config,
    /// No connection could be had (credentials, TLS, login, pool timeout).
    Connect,
    /// The schema could not be migrated, or is newer than this build knows.
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
}

impl CatalogError {
    /// An error of `kind` and `class`; `message` must not hold a secret.
    pub fn new(kind: CatalogErrorKind, class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            kind,
            class,
            sqlstate: None,
            message: message.into(),
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

impl std::error::Error for CatalogError {}

impl From<crate::error::Error> for CatalogError {
    fn from(e: crate::error::Error) -> Self {
        Self::new(CatalogErrorKind::Config, e.class(), e.to_string())
    }
}

impl From<PoolError> for CatalogError {
    fn from(e: PoolError) -> Self {
        let kind = match e {
            PoolError::Closed => CatalogErrorKind::Closed,
            _ => CatalogErrorKind::Connect,
        };
        Self::new(kind, e.class(), e.to_string())
    }
}

impl From<tokio_postgres::Error> for CatalogError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                let class = match &code[..2] {
                    "28" => ErrorClass::AuthFailed,
                    "08" | "57" => ErrorClass::Unreachable,
                    _ => ErrorClass::Other,
                };
                Self {
                    kind: CatalogErrorKind::Database,
                    class,
                    sqlstate: Some(code.to_string()),
                    message: format!("{} (SQLSTATE {code})", db.message()),
                }
            }
            None => {
                let class = if e.is_closed() {
                    ErrorClass::Unreachable
                } else {
                    ErrorClass::Other
                };
                Self::new(CatalogErrorKind::Database, class, e.to_string())
            }
        }
    }
}
