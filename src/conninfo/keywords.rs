//! The table of libpq connection keywords (`PQconninfoOptions` in `fe-connect.c`).

/// One libpq keyword and what we know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Keyword {
    /// The keyword as written in a connection string (`host`, `sslmode`, ...).
    pub name: &'static str,
    /// The environment variable libpq falls back to when the keyword is not given, if any.
    pub envvar: Option<&'static str>,
    /// The libpq major version that introduced the keyword (10, 14, 16, 17, ...).
    ///
    /// Keywords older than PostgreSQL 10 (when major versions still had two parts) carry `9`,
    /// which reads "9.6 or any earlier release".
    pub since: u32,
    /// Whether the value is a secret (`password`, `sslpassword`: libpq's display char `*`).
    pub secret: bool,
}

const fn kw(name: &'static str, envvar: Option<&'static str>, since: u32) -> Keyword {
    Keyword {
        name,
        envvar,
        since,
        secret: false,
    }
}

const fn secret(name: &'static str, envvar: Option<&'static str>, since: u32) -> Keyword {
    Keyword {
        name,
        envvar,
        since,
        secret: true,
    }
}

/// Every keyword libpq 17 knows, in libpq's own table order (the order of `PQconndefaults`).
pub const KEYWORDS: &[Keyword] = &[
    kw("service", Some("PGSERVICE"), 9),
    kw("user", Some("PGUSER"), 9),
    secret("password", Some("PGPASSWORD"), 9),
    kw("passfile", Some("PGPASSFILE"), 10),
    kw("channel_binding", Some("PGCHANNELBINDING"), 13),
    kw("connect_timeout", Some("PGCONNECT_TIMEOUT"), 9),
    kw("dbname", Some("PGDATABASE"), 9),
    kw("host", Some("PGHOST"), 9),
    kw("hostaddr", Some("PGHOSTADDR"), 9),
    kw("port", Some("PGPORT"), 9),
    kw("client_encoding", Some("PGCLIENTENCODING"), 9),
    kw("options", Some("PGOPTIONS"), 9),
    kw("application_name", Some("PGAPPNAME"), 9),
    kw("fallback_application_name", None, 9),
    kw("keepalives", None, 9),
    kw("keepalives_idle", None, 9),
    kw("keepalives_interval", None, 9),
    kw("keepalives_count", None, 9),
    kw("tcp_user_timeout", None, 12),
    kw("sslmode", Some("PGSSLMODE"), 9),
    kw("sslnegotiation", Some("PGSSLNEGOTIATION"), 17),
    kw("sslcompression", Some("PGSSLCOMPRESSION"), 9),
    kw("sslcert", Some("PGSSLCERT"), 9),
    kw("sslkey", Some("PGSSLKEY"), 9),
    kw("sslcertmode", Some("PGSSLCERTMODE"), 16),
    secret("sslpassword", None, 13),
    kw("sslrootcert", Some("PGSSLROOTCERT"), 9),
    kw("sslcrl", Some("PGSSLCRL"), 9),
    kw("sslcrldir", Some("PGSSLCRLDIR"), 14),
    kw("sslsni", Some("PGSSLSNI"), 14),
    kw("requirepeer", Some("PGREQUIREPEER"), 9),
    kw("require_auth", Some("PGREQUIREAUTH"), 16),
    kw(
        "ssl_min_protocol_version",
        Some("PGSSLMINPROTOCOLVERSION"),
        13,
    ),
    kw(
        "ssl_max_protocol_version",
        Some("PGSSLMAXPROTOCOLVERSION"),
        13,
    ),
    kw("gssencmode", Some("PGGSSENCMODE"), 12),
    kw("krbsrvname", Some("PGKRBSRVNAME"), 9),
    kw("gsslib", Some("PGGSSLIB"), 9),
    kw("gssdelegation", Some("PGGSSDELEGATION"), 16),
    kw("replication", None, 9),
    kw("target_session_attrs", Some("PGTARGETSESSIONATTRS"), 10),
    kw("load_balance_hosts", Some("PGLOADBALANCEHOSTS"), 16),
];

/// The keyword called `name`, if libpq 17 knows it.
pub fn keyword(name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|k| k.name == name)
}

/// The index in [`KEYWORDS`] of the keyword spelled by `name` (compared as bytes).
pub(crate) fn index_of(name: &[u8]) -> Option<usize> {
    KEYWORDS.iter().position(|k| k.name.as_bytes() == name)
}
