//! [`ConnInfoError`]: a connection string libpq would refuse.

use std::fmt;

/// What kind of mistake a [`ConnInfoError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnInfoErrorKind {
    /// The string holds a NUL character (libpq would silently stop reading at it).
    NulCharacter,
    /// libpq: `missing "=" after "…" in connection info string`.
    MissingEquals,
    /// libpq: `invalid connection option "…"` (also [`ConnInfo::set`](super::ConnInfo::set)
    /// with an unknown keyword).
    InvalidOption,
    /// libpq: `unterminated quoted string in connection info string`.
    UnterminatedQuote,
    /// libpq: `invalid percent-encoded token: "…"`.
    InvalidPercentEncoding,
    /// libpq: `forbidden value %00 in percent-encoded value: "…"`.
    ForbiddenPercentNul,
    /// libpq: `end of string reached when looking for matching "]" in IPv6 host address in URI`.
    UnterminatedIpv6,
    /// libpq: `IPv6 host address may not be empty in URI`.
    EmptyIpv6,
    /// libpq: `unexpected character "…" at position N in URI (expected ":" or "/")`.
    UnexpectedCharacter,
    /// libpq: `extra key/value separator "=" in URI query parameter: "…"`.
    ExtraSeparator,
    /// libpq: `missing key/value separator "=" in URI query parameter: "…"`.
    MissingSeparator,
    /// libpq: `invalid URI query parameter: "…"`.
    InvalidQueryParameter,
    /// A percent-decoded value is not UTF-8. libpq would accept the bytes; a Rust `String`
    /// cannot hold them.
    InvalidUtf8,
    /// [`ConnInfo::parse_uri`](super::ConnInfo::parse_uri) was given a string that does not
    /// start with `postgresql://` or `postgres://`.
    NotUri,
}

/// A connection string libpq would refuse.
///
/// The message follows libpq's wording where libpq has one, but never holds the value of a
/// secret keyword nor the whole input: it quotes keywords and short non-secret fragments only,
/// and describes anything else (a fragment that may belong to a password, a long one, one with
/// an `@`) without showing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfoError {
    kind: ConnInfoErrorKind,
    message: String,
}

impl ConnInfoError {
    pub(crate) fn new(kind: ConnInfoErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ConnInfoErrorKind {
        self.kind
    }

    /// The mistake described without quoting any part of the string, for a string that may be
    /// a secret as a whole (one that came from `${VAR}` expansion: the variable might hold a
    /// bare password).
    pub fn unquoted_message(&self) -> &'static str {
        match self.kind {
            ConnInfoErrorKind::NulCharacter => "the connection string holds a NUL character",
            ConnInfoErrorKind::MissingEquals => {
                "a word without \"=\" in the connection info string (keywords are written key=value)"
            }
            ConnInfoErrorKind::InvalidOption => "invalid connection option",
            ConnInfoErrorKind::UnterminatedQuote => {
                "unterminated quoted string in connection info string"
            }
            ConnInfoErrorKind::InvalidPercentEncoding => "invalid percent-encoded token in URI",
            ConnInfoErrorKind::ForbiddenPercentNul => {
                "forbidden value %00 in percent-encoded value"
            }
            ConnInfoErrorKind::UnterminatedIpv6 => {
                "end of string reached when looking for matching \"]\" in IPv6 host address in URI"
            }
            ConnInfoErrorKind::EmptyIpv6 => "IPv6 host address may not be empty in URI",
            ConnInfoErrorKind::UnexpectedCharacter => "unexpected character in URI",
            ConnInfoErrorKind::ExtraSeparator => {
                "extra key/value separator \"=\" in URI query parameter"
            }
            ConnInfoErrorKind::MissingSeparator => {
                "missing key/value separator \"=\" in URI query parameter"
            }
            ConnInfoErrorKind::InvalidQueryParameter => "invalid URI query parameter",
            ConnInfoErrorKind::InvalidUtf8 => "a percent-decoded value is not UTF-8",
            ConnInfoErrorKind::NotUri => "not a postgresql:// URI",
        }
    }

    /// The message (the same text as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConnInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::text::escape_controls(&self.message))
    }
}

impl std::error::Error for ConnInfoError {}

/// The longest fragment of the input an error message may quote.
const MAX_QUOTED: usize = 40;

/// `"fragment"` when `bytes` may be shown in a message: short, and free of `@` (a fragment
/// with `@` may be a misplaced `user:password@host`). `None` otherwise.
pub(crate) fn quote(bytes: &[u8]) -> Option<String> {
    if bytes.len() > MAX_QUOTED || bytes.contains(&b'@') {
        return None;
    }
    Some(format!("\"{}\"", String::from_utf8_lossy(bytes)))
}

/// `"fragment"` or, where [`quote`] refuses, a description naming its length only.
pub(crate) fn quote_or_describe(bytes: &[u8]) -> String {
    quote(bytes).unwrap_or_else(|| format!("a {}-byte fragment (not shown)", bytes.len()))
}
