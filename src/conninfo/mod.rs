//! libpq connection strings, parsed exactly as libpq parses them.
//!
//! Both forms are supported: `host=db.example.com port=5432 sslmode=verify-full` and
//! `postgresql://user:secret@db.example.com:5432/app?sslmode=verify-full`. The parsers follow
//! libpq's `conninfo_parse`, `conninfo_uri_parse_options`, `conninfo_uri_parse_params`,
//! `conninfo_uri_decode` and `conninfo_storeval` (`src/interfaces/libpq/fe-connect.c`) step by
//! step, and `tests/conninfo_libpq.rs` checks them against the system libpq.
//!
//! A [`ConnInfo`] holds at most one value per keyword and renders back to either form
//! ([`ConnInfo::to_keyword_value`], [`ConnInfo::to_uri`]) so that libpq, and [`ConnInfo::parse`],
//! read the same map again.
//!
//! Secrets: `Debug` of a [`ConnInfo`] redacts the values of secret keywords, and a
//! [`ConnInfoError`] never quotes one. The renderings do hold them (they are meant for libpq);
//! use [`ConnInfo::without_secrets`] before logging one.

mod error;
mod keywords;
mod parse;
mod render;
pub mod service;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

pub use error::{ConnInfoError, ConnInfoErrorKind};
pub use keywords::{KEYWORDS, Keyword, keyword};

/// A parsed connection string: keyword -> value, at most one value per keyword (a later
/// occurrence replaces an earlier one, as in libpq), iterated in [`KEYWORDS`] order.
///
/// `Debug` prints the values of secret keywords (`password`, `sslpassword`) as `"<redacted>"`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ConnInfo {
    /// Index in [`KEYWORDS`] -> value.
    values: BTreeMap<usize, String>,
}

impl ConnInfo {
    /// An empty connection string.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a connection string as libpq's `PQconninfoParse` does: as a URI when it starts
    /// with `postgresql://` or `postgres://`, in key=value form otherwise.
    pub fn parse(s: &str) -> Result<ConnInfo, ConnInfoError> {
        if parse::uri_prefix_length(s) != 0 {
            Self::parse_uri(s)
        } else {
            Self::parse_keyword_value(s)
        }
    }

    /// Parses the key=value form (libpq's `conninfo_parse`), whatever the string starts with.
    ///
    /// Whitespace (C-locale `isspace`) separates pairs and may surround `=`. An unquoted value
    /// ends at whitespace and takes `\x` as `x`; a single-quoted value may hold anything, with
    /// `\'` and `\\` (indeed `\x` for any `x`) as escapes. `key=` stores an empty value, and
    /// `requiressl=1` is read as `sslmode=require` (any other `requiressl` as
    /// `sslmode=prefer`), as libpq still does.
    pub fn parse_keyword_value(s: &str) -> Result<ConnInfo, ConnInfoError> {
        parse::parse_keyword_value(s).map(Self::from_slots)
    }

    /// Parses the URI form (libpq's `conninfo_uri_parse_options`):
    /// `postgresql://[user[:password]@][host][:port][,...][/dbname][?key=value&...]`.
    ///
    /// Every part is percent-decoded (`%00` is refused); empty user, password, host, port and
    /// dbname parts are not stored; hosts (`[v6]` in brackets) and their ports accumulate into
    /// comma-separated `host` and `port` values; `?ssl=true` means `sslmode=require`; an unknown
    /// query keyword is an error. A decoded value that is not UTF-8 is an error too (libpq would
    /// take the bytes), unless a later occurrence of its keyword replaces it.
    pub fn parse_uri(s: &str) -> Result<ConnInfo, ConnInfoError> {
        parse::parse_uri(s).map(Self::from_slots)
    }

    fn from_slots(slots: Vec<Option<String>>) -> Self {
        let values = slots
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)))
            .collect();
        Self { values }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        let index = keywords::index_of(key.as_bytes())?;
        self.values.get(&index).map(String::as_str)
    }

    /// Sets `key` to `value`, replacing any previous value.
    ///
    /// Errors: `key` is not a libpq 17 keyword ([`ConnInfoErrorKind::InvalidOption`]), or
    /// `value` holds a NUL character, which no libpq connection string can carry
    /// ([`ConnInfoErrorKind::NulCharacter`]).
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> Result<(), ConnInfoError> {
        let index = keywords::index_of(key.as_bytes()).ok_or_else(|| {
            ConnInfoError::new(
                ConnInfoErrorKind::InvalidOption,
                format!(
                    "invalid connection option {}",
                    error::quote_or_describe(key.as_bytes())
                ),
            )
        })?;
        let value = value.into();
        if value.contains('\0') {
            return Err(ConnInfoError::new(
                ConnInfoErrorKind::NulCharacter,
                format!("the value of \"{key}\" contains a NUL character"),
            ));
        }
        self.values.insert(index, value);
        Ok(())
    }

    /// Removes `key`, returning its value if it was set.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let index = keywords::index_of(key.as_bytes())?;
        self.values.remove(&index)
    }

    /// The keywords set and their values, in [`KEYWORDS`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.values
            .iter()
            .filter_map(|(&i, v)| KEYWORDS.get(i).map(|k| (k.name, v.as_str())))
    }

    /// How many keywords are set.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no keyword is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The libpq key=value form: `key=value` pairs separated by a space, in [`KEYWORDS`]
    /// order. A value is single-quoted, with `'` and `\` backslash-escaped, when it is empty or
    /// holds whitespace, `'` or `\`; it is written as it is otherwise.
    pub fn to_keyword_value(&self) -> String {
        render::to_keyword_value(self)
    }

    /// The `postgresql://` form. Everything but RFC 3986 unreserved characters is
    /// percent-encoded. `user[:password]@` and the hosts with their ports (`a:5432,b:5433`,
    /// `[::1]:5432`, `%2Fvar%2Frun%2Fpostgresql`) go in the netloc when libpq reads them back
    /// the same; otherwise (an empty value, a port list that does not match the host list, ...)
    /// they go in query parameters. A non-empty dbname is the path; every other keyword is a
    /// query parameter, in [`KEYWORDS`] order.
    pub fn to_uri(&self) -> String {
        render::to_uri(self)
    }

    /// A copy without the secret keywords (`password`, `sslpassword`).
    pub fn without_secrets(&self) -> ConnInfo {
        let values = self
            .values
            .iter()
            .filter(|(i, _)| KEYWORDS.get(**i).is_some_and(|k| !k.secret))
            .map(|(i, v)| (*i, v.clone()))
            .collect();
        ConnInfo { values }
    }
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnInfo ")?;
        let mut map = f.debug_map();
        for (i, v) in &self.values {
            match KEYWORDS.get(*i) {
                Some(k) if k.secret => map.entry(&k.name, &"<redacted>"),
                Some(k) => map.entry(&k.name, v),
                None => map.entry(i, &"<redacted>"),
            };
        }
        map.finish()
    }
}

impl FromStr for ConnInfo {
    type Err = ConnInfoError;

    /// Same as [`ConnInfo::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
