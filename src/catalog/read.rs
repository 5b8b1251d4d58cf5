//! Reading what a server sends without trusting it.
//!
//! Every column of every catalog query is read through [`QueryRow`]: a column of another type
//! than the schema's (changed by hand, a view in the table's place), a NULL where the schema
//! has `NOT NULL`, a value that does not decode or JSON text that does not parse becomes a
//! [`CatalogError`] of kind [`CatalogErrorKind::Schema`] naming the query, the column and the
//! type expected against the one the server sent, where [`Row::get`] would panic.

use std::any::type_name;
use std::error::Error as _;

use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSqlOwned, Type, WasNull};

use super::error::bounded;
use super::{CatalogError, CatalogErrorKind};
use crate::error::ErrorClass;

/// The built-in types that name what a read expects: for each Rust type read, the ones it
/// accepts (asked of the type itself, so the message cannot drift from the check).
const NAMED_TYPES: &[Type] = &[
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::NUMERIC,
    Type::TEXT,
    Type::VARCHAR,
    Type::BPCHAR,
    Type::NAME,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::JSON,
    Type::JSONB,
    Type::BYTEA,
];

/// A row of one catalog query, named for error messages (a short name, not the SQL).
pub(crate) struct QueryRow<'r> {
    query: &'static str,
    row: &'r Row,
}

impl<'r> QueryRow<'r> {
    /// The row `row` of the query called `query`.
    pub(crate) fn new(query: &'static str, row: &'r Row) -> Self {
        Self { query, row }
    }

    /// Column `idx` as a `T`; an error, never a panic, when the server sent something else.
    pub(crate) fn get<T: FromSqlOwned>(&self, idx: usize) -> Result<T, CatalogError> {
        let Some(column) = self.row.columns().get(idx) else {
            return Err(self.error(
                idx,
                &format!(
                    "expected {}, got no such column (the server sent {})",
                    expected::<T>(),
                    self.row.len()
                ),
            ));
        };
        let ty = column.type_();
        if !T::accepts(ty) {
            return Err(self.error(
                idx,
                &format!("expected {}, got {}", expected::<T>(), bounded(ty.name())),
            ));
        }
        self.row.try_get(idx).map_err(|e| {
            let why = match e.source() {
                Some(cause) if cause.is::<WasNull>() => "NULL".to_string(),
                Some(cause) => format!(
                    "a {} value that does not decode ({})",
                    bounded(ty.name()),
                    bounded(&cause.to_string())
                ),
                None => bounded(&e.to_string()),
            };
            self.error(idx, &format!("expected {}, got {why}", expected::<T>()))
        })
    }

    /// Column `idx`, JSON sent as text (`NULL`: `None`).
    pub(crate) fn json(&self, idx: usize) -> Result<Option<Value>, CatalogError> {
        let Some(text) = self.get::<Option<String>>(idx)? else {
            return Ok(None);
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            self.error(
                idx,
                &format!(
                    "expected JSON text, got text that does not parse ({})",
                    bounded(&e.to_string())
                ),
            )
        })
    }

    fn error(&self, idx: usize, what: &str) -> CatalogError {
        let column = match self.row.columns().get(idx) {
            Some(c) => format!("column {idx} ({:?})", bounded(c.name())),
            None => format!("column {idx}"),
        };
        CatalogError::new(
            CatalogErrorKind::Schema,
            ErrorClass::Other,
            format!("query {:?}, {column}: {what}", self.query),
        )
    }
}

/// What reading a `T` expects, in PostgreSQL's type names (`int4`; `text, varchar, bpchar or
/// name`).
fn expected<T: FromSqlOwned>() -> String {
    let names: Vec<&str> = NAMED_TYPES
        .iter()
        .filter(|t| T::accepts(t))
        .map(Type::name)
        .collect();
    match names.split_last() {
        None => type_name::<T>().to_string(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn expected_types_are_named_as_postgresql_names_them() {
        assert_eq!(expected::<i32>(), "int4");
        assert_eq!(expected::<i64>(), "int8");
        assert_eq!(expected::<bool>(), "bool");
        assert_eq!(expected::<Option<i32>>(), "int4");
        assert_eq!(expected::<String>(), "text, varchar, bpchar or name");
        assert_eq!(expected::<Option<SystemTime>>(), "timestamp or timestamptz");
    }
}
