//! The robustness fragments: keys, values and connection strings that the proptest strategy of
//! `tests/robustness.rs` and the fuzz run of `tests/fuzz.rs` build catalog YAML from.

use std::sync::LazyLock;

use tea_pgcloud::config::keys::{CATALOG_KEYS, CREDENTIAL_KEYS};

/// Names beside the key table's: parents of the catalog, a key of another tool, and a
/// misspelling.
pub const NOT_KEYS: &[&str] = &["settings", "ltm", "catalog", "password", "sslmdoe"];

/// Every catalog and credentials key, read from the library's key table (each name once), then
/// [`NOT_KEYS`].
pub static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut keys: Vec<&'static str> = Vec::new();
    let table = CATALOG_KEYS
        .iter()
        .map(|k| k.name)
        .chain(CREDENTIAL_KEYS.iter().map(|k| k.name));
    for name in table.chain(NOT_KEYS.iter().copied()) {
        if !keys.contains(&name) {
            keys.push(name);
        }
    }
    keys
});

/// Odd values, `${VAR}` forms and broken syntax.
pub const VALUES: &[&str] = &[
    "gcp",
    "aws",
    "azure",
    "self-hosted",
    "require",
    "verify-full",
    "system",
    "auto",
    "lazy",
    "ahead",
    "http://127.0.0.1:1/b.pem",
    "5432",
    "-1",
    "99999",
    "true",
    "no",
    "~",
    "''",
    "\"${X}\"",
    "${UNSET}",
    "${X:-d}",
    "$$",
    "${",
    "[a, b]",
    "{a: 1}",
    "/cloudsql",
    "p:r:i",
    "a:b",
    "é✓ü",
    "db.x.us-east-1.rds.amazonaws.com",
    "host=h password=literal-pw bogus=1",
    "'unterminated",
    "${X}x",
    "pre-${X}",
    "https://v.vault.azure.net",
    "http://v",
    "ltm/postgres/",
    "&a",
    "*a",
    "!!str x",
    "|",
];

/// Connection strings holding the password canary `pAsSwOrD-4q?`.
pub const CONNECTION_STRINGS: &[&str] = &[
    "host=h password=pAsSwOrD-4q? bogus=1",
    "postgresql://u:pAsSwOrD-4q%3F@h/d?x=1",
    "postgresql://u:pAsSwOrD-4q%3F@h/d?sslmode=nope",
    "host=h password='pAsSwOrD-4q? sslmode=require",
    "host=h password=pAsSwOrD-4q?",
    "password=pAsSwOrD-4q? host=a,b port=1,2,3",
];
