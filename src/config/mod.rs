//! The catalog configuration: YAML text to a typed, validated [`CatalogConfig`].
//!
//! ```text
//! YAML text -> load (locate settings.ltm.catalog) -> expand (${VAR}) -> validate -> CatalogConfig
//! ```
//!
//! Every error names the dotted YAML path and, where the text came from a file, `FILE:LINE:COL`.
//! The key reference is in [`keys`] and in the README.
//!
//! ```
//! use tea_pgcloud::config::load_str;
//! use tea_pgcloud::env::MapEnv;
//! let yaml = "settings:\n  ltm:\n    catalog:\n      type: postgres\n      host: ${PGHOST_X:-db.internal}\n      sslmdoe: require\n";
//! let err = load_str(yaml, "agent.yaml", &MapEnv::new()).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "agent.yaml:6:7: settings.ltm.catalog.sslmdoe: unknown key `sslmdoe`; did you mean `sslmode`?"
//! );
//! ```

pub(crate) mod expand;
pub mod keys;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use crate::env::Environment;
use crate::error::{ConfigError, ConfigErrorKind, Location};
use crate::secret::Secret;
use crate::sslmode::SslMode;
use crate::yaml::{self, Mark, Node, Value};
pub use crate::yaml::{MAX_ALIAS_NODES, MAX_DEPTH};

/// Where the catalog sits in a whole TEA agent file.
pub const CATALOG_PATH: &str = "settings.ltm.catalog";

/// The `ssl_bundle` value that asks for AWS's RDS global CA bundle, downloaded and cached,
/// instead of a file path (write `./auto` for a file of that name).
pub const SSL_BUNDLE_AUTO: &str = "auto";

/// Which managed service (or none) the catalog database runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// GCP Cloud SQL.
    Gcp,
    /// AWS RDS or Aurora.
    Aws,
    /// Azure Database for PostgreSQL, Flexible Server.
    Azure,
    /// Any other PostgreSQL server; the default.
    SelfHosted,
}

impl Provider {
    /// Every provider, as written in YAML.
    pub const ALL: [Provider; 4] = [Self::Gcp, Self::Aws, Self::Azure, Self::SelfHosted];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gcp => "gcp",
            Self::Aws => "aws",
            Self::Azure => "azure",
            Self::SelfHosted => "self-hosted",
        }
    }

    /// Whether this is one of the managed cloud services.
    pub fn is_cloud(self) -> bool {
        self != Self::SelfHosted
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a Cloud SQL instance is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpType {
    /// The Cloud SQL Auth Proxy's unix socket (`/cloudsql/PROJECT:REGION:INSTANCE`); no TLS.
    Socket,
    /// The instance's public IP, over TLS.
    Public,
    /// The instance's private (VPC) IP, over TLS.
    Private,
}

impl IpType {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Socket => "socket",
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

/// Where `credentials` are fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretSource {
    /// Environment variables.
    Env,
    /// GCP Secret Manager.
    Gcp,
    /// AWS Secrets Manager.
    Aws,
    /// Azure Key Vault.
    Azure,
}

impl SecretSource {
    /// The YAML spelling, also used in plan sources (`secret:aws:...`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Env => "env",
            Self::Gcp => "gcp",
            Self::Aws => "aws",
            Self::Azure => "azure",
        }
    }
}

/// Pool and catalog behaviour, as TEA's Python `PostgresCatalog` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections kept open (default 1).
    pub min_size: u32,
    /// Connections at most (default 10).
    pub max_size: u32,
    /// Create or upgrade the schema on start (default true).
    pub auto_migrate: bool,
    /// Open the pool on first use instead of at start (default false).
    pub lazy: bool,
    /// Seconds a connection is kept before it is replaced; 0 keeps it while it works
    /// (default 1800).
    pub max_lifetime: u32,
    /// When IAM tokens are refreshed (default ahead of expiry, in the background).
    pub token_refresh: TokenRefresh,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            min_size: 1,
            max_size: 10,
            auto_migrate: true,
            lazy: false,
            max_lifetime: 1800,
            token_refresh: TokenRefresh::Ahead,
        }
    }
}

/// When IAM / Entra tokens are refreshed (`token_refresh`); the token cache's mode
/// ([`crate::iam::cache::CacheOptions::mode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenRefresh {
    /// Ahead of expiry, in the background: a timer (see
    /// [`crate::iam::cache::CachedProvider::start`]) and callers past the refresh time start a
    /// fetch and keep using the current token, so a connect never waits for the token
    /// endpoint.
    #[default]
    Ahead,
    /// Only when a connection is made: the caller past the refresh time fetches inline. No
    /// background task (for CPU-throttled serverless hosts, where background work may not
    /// run).
    Lazy,
}

impl TokenRefresh {
    /// As written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ahead => "ahead",
            Self::Lazy => "lazy",
        }
    }
}

/// The `credentials` block: where the user name and password come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsConfig {
    /// The secrets backend (default `env`).
    pub source: SecretSource,
    /// Key of the user name (default `username`).
    pub username_key: String,
    /// Key of the password (default `password`).
    pub password_key: String,
    /// env: prefix of every variable name (case-sensitive).
    pub prefix: Option<String>,
    /// gcp: the project that holds the secrets.
    pub project_id: Option<String>,
    /// gcp, aws, azure: one secret per key, named prefix + key.
    pub secret_prefix: Option<String>,
    /// gcp, aws: one JSON secret holding every key.
    pub secret_name: Option<String>,
    /// aws: the Secrets Manager region.
    pub region: Option<String>,
    /// azure: `https://NAME.vault.azure.net`.
    pub vault_url: Option<String>,
    /// gcp: the secret version (default `latest`).
    pub version: Option<String>,
    /// gcp: another Secret Manager endpoint.
    pub endpoint: Option<String>,
    /// aws: another Secrets Manager endpoint.
    pub endpoint_url: Option<String>,
}

/// Which of the two credentials a lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialField {
    /// The user name.
    Username,
    /// The password.
    Password,
}

impl CredentialsConfig {
    /// A block for `source` with the defaults: keys `username` / `password`, no backend
    /// options. Set the options a backend needs with struct update syntax.
    ///
    /// ```
    /// use tea_pgcloud::config::{CredentialsConfig, SecretSource};
    /// let creds = CredentialsConfig {
    ///     prefix: Some("POSTGRES_".into()),
    ///     ..CredentialsConfig::new(SecretSource::Env)
    /// };
    /// assert_eq!(creds.password_key, "password");
    /// ```
    pub fn new(source: SecretSource) -> Self {
        Self {
            source,
            username_key: "username".into(),
            password_key: "password".into(),
            prefix: None,
            project_id: None,
            secret_prefix: None,
            secret_name: None,
            region: None,
            vault_url: None,
            version: None,
            endpoint: None,
            endpoint_url: None,
        }
    }

    /// Marks every name looked up for either field that holds a marked value (a `prefix`
    /// from `${VAR}` makes `PREFIXpassword`), so that messages listing those names leave
    /// them out.
    pub fn taint_lookup_names(&self, tainted: &mut crate::text::Tainted) {
        if tainted.is_empty() {
            return;
        }
        for field in [CredentialField::Username, CredentialField::Password] {
            for key in self.lookup_keys(field) {
                if tainted.any_within(&key) {
                    tainted.add_name(&key);
                }
            }
        }
    }

    /// The keys tried, in order, for one field: the configured key under the prefix, then the
    /// conventional `USER` / `PASSWORD` under a non-empty prefix, then `POSTGRES_USER` /
    /// `POSTGRES_PASSWORD`; duplicates removed. The bare `USER` is never tried: in an
    /// environment it is the operating-system login, not a database user.
    pub fn lookup_keys(&self, field: CredentialField) -> Vec<String> {
        let prefix = self.prefix.as_deref().unwrap_or("");
        let (key, conventional, postgres) = match field {
            CredentialField::Username => (&self.username_key, "USER", "POSTGRES_USER"),
            CredentialField::Password => (&self.password_key, "PASSWORD", "POSTGRES_PASSWORD"),
        };
        let mut keys = vec![format!("{prefix}{key}")];
        if !prefix.is_empty() {
            keys.push(format!("{prefix}{conventional}"));
        }
        keys.push(postgres.to_string());
        let mut seen = Vec::new();
        keys.retain(|k| {
            let new = !seen.contains(k);
            seen.push(k.clone());
            new
        });
        keys
    }
}

/// Where the configuration came from, so that later stages (the provider presets) can point
/// at the YAML key at fault.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    file: String,
    prefix: String,
    catalog: Mark,
    /// Key path (`host`, `credentials.source`) -> where the key and its value stand.
    marks: BTreeMap<String, (Mark, Mark)>,
}

impl Origin {
    /// The file name as given (`<stdin>` for standard input).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The dotted path of a key below the catalog (`credentials.source` ->
    /// `settings.ltm.catalog.credentials.source`).
    pub fn path(&self, key: &str) -> String {
        join_path(&self.prefix, key)
    }

    /// Whether the key was written in the YAML.
    pub fn has(&self, key: &str) -> bool {
        self.marks.contains_key(key)
    }

    /// The location of a key, or of the catalog mapping when the key was not written.
    pub fn location(&self, key: &str) -> Location {
        self.key_mark(key).location(&self.file)
    }

    /// The location of a key's value, or of the catalog mapping when the key was not written.
    pub fn value_location(&self, key: &str) -> Location {
        self.marks
            .get(key)
            .map(|(_, value)| *value)
            .unwrap_or(self.catalog)
            .location(&self.file)
    }

    pub(crate) fn key_mark(&self, key: &str) -> Mark {
        self.marks.get(key).map(|(k, _)| *k).unwrap_or(self.catalog)
    }

    /// An error about `key` (a missing key, two keys in conflict), at the key.
    pub fn error(
        &self,
        key: &str,
        kind: ConfigErrorKind,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::new(kind, message)
            .at_path(self.path(key))
            .at_location(Some(self.location(key)))
    }

    /// An error about the value of `key`, at the value.
    pub fn value_error(
        &self,
        key: &str,
        kind: ConfigErrorKind,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::new(kind, message)
            .at_path(self.path(key))
            .at_location(Some(self.value_location(key)))
    }

    /// A conflict between two keys, reported at whichever of the written ones comes later in
    /// the file (the one that introduced the conflict).
    pub fn conflict(&self, a: &str, b: &str, why: &str) -> ConfigError {
        let b_later = self.key_mark(a) <= self.key_mark(b);
        let (first, second) = if self.has(b) && (b_later || !self.has(a)) {
            (a, b)
        } else {
            (b, a)
        };
        self.error(
            second,
            ConfigErrorKind::Conflict,
            format!("`{first}` and `{second}` cannot be used together: {why}"),
        )
    }
}

/// A validated catalog configuration. `Debug` never shows a password: the connection string,
/// which may hold one, is a [`Secret`].
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogConfig {
    /// A libpq connection string (key=value or URI), used as is.
    pub connection_string: Option<Secret>,
    /// Whether `${VAR}` expansion produced the connection string (its errors then quote
    /// nothing of it).
    pub connection_string_expanded: bool,
    /// The provider; `self-hosted` when not written.
    pub provider: Provider,
    /// Host name, IP address, or unix-socket directory.
    pub host: Option<String>,
    /// TCP port.
    pub port: Option<u16>,
    /// Database name.
    pub database: Option<String>,
    /// Database user.
    pub user: Option<String>,
    /// libpq `sslmode`, when written.
    pub sslmode: Option<SslMode>,
    /// Root certificate file, or `system`.
    pub sslrootcert: Option<String>,
    /// Client certificate file.
    pub sslcert: Option<String>,
    /// Client key file.
    pub sslkey: Option<String>,
    /// Seconds to wait for a connection; 0 waits forever.
    pub connect_timeout: Option<u32>,
    /// Reported to the server as `application_name`.
    pub application_name: Option<String>,
    /// libpq `target_session_attrs`, when written (else the preset's default, see
    /// `provider`).
    pub target_session_attrs: Option<crate::plan::TargetSessionAttrs>,
    /// Pool and catalog behaviour.
    pub pool: PoolConfig,
    /// gcp: project id.
    pub project: Option<String>,
    /// gcp, aws: region.
    pub region: Option<String>,
    /// gcp: instance name.
    pub instance: Option<String>,
    /// gcp: `PROJECT:REGION:INSTANCE`.
    pub connection_name: Option<String>,
    /// gcp: how the instance is reached.
    pub ip_type: Option<IpType>,
    /// gcp: the Auth Proxy's socket directory (default `/cloudsql`).
    pub socket_dir: Option<String>,
    /// gcp, aws, azure: log in with an IAM / Entra token instead of a password.
    pub iam_auth: bool,
    /// aws: the RDS CA bundle: a root certificate file, or [`SSL_BUNDLE_AUTO`] for AWS's global
    /// bundle, downloaded and cached (see `rds_bundle`).
    pub ssl_bundle: Option<String>,
    /// aws, with `ssl_bundle: auto`: where the bundle is downloaded from (https, or http to a
    /// loopback address); `None` means AWS's documented URL.
    pub ssl_bundle_url: Option<String>,
    /// aws, with `ssl_bundle: auto`: the pinned SHA-256 of the bundle file, 64 lower-case hex
    /// digits.
    pub ssl_bundle_sha256: Option<String>,
    /// Where the user name and password come from.
    pub credentials: Option<CredentialsConfig>,
    /// Where each key was written.
    pub origin: Origin,
    /// Values that came from the environment (`${VAR}`): no message may quote them.
    pub tainted: crate::text::Tainted,
}

/// The most bytes a configuration file, or standard input, may hold: 4 MiB.
///
/// A catalog is a few hundred bytes and a whole agent file rarely more than a few hundred KB;
/// the bound keeps a wrong path (`/dev/zero`, a log, a FIFO that never ends) from reading until
/// memory runs out. At most this many bytes plus one are read, whatever the file claims its
/// length is. The limit is fixed; [`load_str`] takes text of any length.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Reads and validates a catalog from a file; `-` reads standard input.
pub fn load_file(path: &str, env: &dyn Environment) -> Result<CatalogConfig, ConfigError> {
    let (text, name) = read_source(path)?;
    load_str(&text, &name, env)
}

/// Reads a file (or standard input for `-`), returning its text and its display name
/// (`<stdin>` for standard input).
///
/// Refuses a source of more than [`MAX_CONFIG_BYTES`], and text that is not UTF-8 with the
/// `FILE:LINE:COL` of the first bad byte. That location counts as the YAML parser's marks do:
/// lines break at `\n`, `\r\n` or a lone `\r`, and the column is 1 plus the characters
/// (Unicode scalar values, not bytes) before the bad byte on its line.
pub fn read_source(path: &str) -> Result<(String, String), ConfigError> {
    let (name, what) = if path == "-" {
        ("<stdin>", "standard input")
    } else {
        (path, path)
    };
    let cannot_read = |e: std::io::Error| {
        ConfigError::new(ConfigErrorKind::Io, format!("cannot read {what}: {e}"))
    };
    let mut bytes = Vec::new();
    let read = if path == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
    };
    read.map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        // Located at the first byte past the limit, counted as for invalid UTF-8 below.
        let limit = bytes.len() - 1;
        return Err(ConfigError::new(
            ConfigErrorKind::Io,
            format!(
                "cannot read {what}: it holds more than {} MiB ({MAX_CONFIG_BYTES} bytes), the most a configuration may hold (a fixed limit); this is the first byte past it",
                MAX_CONFIG_BYTES / (1024 * 1024)
            ),
        )
        .at_location(Some(end_mark(&bytes[..limit]).location(name))));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        ConfigError::new(
            ConfigErrorKind::Syntax,
            "not valid UTF-8: a configuration is UTF-8 text",
        )
        .at_location(Some(end_mark(valid).location(name)))
    })?;
    Ok((text, name.to_string()))
}

/// Where the byte after `text` (valid UTF-8) stands, counted as yaml-rust2 counts its marks
/// (see [`read_source`]); a byte-order mark is a character there too.
fn end_mark(text: &[u8]) -> Mark {
    let mut mark = Mark { line: 1, col: 1 };
    let mut after_cr = false;
    for &byte in text {
        match byte {
            b'\n' if after_cr => {}
            b'\n' | b'\r' => {
                mark.line += 1;
                mark.col = 1;
            }
            // A UTF-8 continuation byte: part of the character counted at its first byte.
            _ if byte & 0xC0 == 0x80 => {}
            _ => mark.col += 1,
        }
        after_cr = byte == b'\r';
    }
    mark
}

/// Parses, locates, expands and validates a catalog from YAML text. `file` names the source
/// in errors.
pub fn load_str(
    text: &str,
    file: &str,
    env: &dyn Environment,
) -> Result<CatalogConfig, ConfigError> {
    let root = yaml::parse(text, file)?;
    let (mut catalog, prefix, anchor) = locate(root, file)?;
    validate::check_keys(&catalog, file, &prefix)?;
    let recording = crate::env::Recording::new(env);
    expand::expand_tree(&mut catalog, &prefix, &recording).map_err(|(mark, path, e)| {
        ConfigError::new(ConfigErrorKind::Expansion, e.message)
            .at_path(path)
            .at_location(Some(mark.location(file)))
    })?;
    let mut tainted = recording.tainted();
    mark_expanded(&catalog, &mut tainted);
    refuse_nul(&catalog, &prefix, file)?;
    let mut config =
        validate::validate(&catalog, file, &prefix, anchor).map_err(|e| e.scrubbed(&tainted))?;
    config.tainted = tainted;
    Ok(config)
}

/// libpq's options are C strings: a value holding NUL (written in the YAML, or brought by
/// `${VAR}`) cannot reach the server as written, so it is refused where it stands.
fn refuse_nul(node: &Node, path: &str, file: &str) -> Result<(), ConfigError> {
    match &node.value {
        yaml::Value::Scalar { text, .. } if text.contains('\0') => Err(ConfigError::new(
            ConfigErrorKind::InvalidValue,
            "holds a NUL character (U+0000), which no libpq connection option can carry",
        )
        .at_path(path.to_string())
        .at_location(Some(node.mark.location(file)))),
        yaml::Value::Scalar { .. } => Ok(()),
        yaml::Value::Seq(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, n)| refuse_nul(n, &join_path(path, &i.to_string()), file)),
        yaml::Value::Map(entries) => entries.iter().try_for_each(|(k, v)| {
            refuse_nul(v, &join_path(path, k.as_scalar().unwrap_or_default()), file)
        }),
    }
}

/// Marks the text of every scalar that `${VAR}` expansion produced.
fn mark_expanded(node: &Node, tainted: &mut crate::text::Tainted) {
    match &node.value {
        yaml::Value::Scalar {
            text,
            expanded: true,
            ..
        } => tainted.add(text),
        yaml::Value::Scalar { .. } => {}
        yaml::Value::Seq(items) => items.iter().for_each(|n| mark_expanded(n, tainted)),
        yaml::Value::Map(entries) => entries.iter().for_each(|(_, v)| mark_expanded(v, tainted)),
    }
}

/// Takes the value under `key` out of a mapping node, with where the key stands.
fn take_entry(map: Node, key: &str) -> Option<(Mark, Node)> {
    match map.value {
        Value::Map(entries) => entries
            .into_iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(k, v)| (k.mark, v)),
        _ => None,
    }
}

/// Finds the catalog mapping: `settings.ltm.catalog` in a whole agent file, else the root
/// itself when the file is a bare catalog mapping. Also returns its path and where messages
/// about the catalog as a whole point: the `catalog:` key, or the first line of a bare file.
/// The catalog is moved out of the tree, not copied.
fn locate(root: Node, file: &str) -> Result<(Node, String, Mark), ConfigError> {
    if root.as_map().is_none() {
        return Err(ConfigError::new(
            ConfigErrorKind::NoCatalog,
            format!(
                "expected a mapping (a TEA agent file with {CATALOG_PATH}, or a bare catalog), found {}",
                root.type_name()
            ),
        )
        .at_location(Some(root.mark.location(file))));
    }
    if root.get("settings").is_none() {
        return Ok((root, String::new(), Mark { line: 1, col: 1 }));
    }
    let mut node = root;
    let mut path = String::new();
    let mut anchor = Mark { line: 1, col: 1 };
    for part in ["settings", "ltm", "catalog"] {
        let (key_mark, next) = match take_entry(node, part) {
            Some((key_mark, next)) if !next.is_null() => (key_mark, next),
            entry => {
                let found = if path.is_empty() {
                    "this file".to_string()
                } else {
                    format!("`{path}`")
                };
                let has = if entry.is_some() {
                    format!("has an empty `{part}`")
                } else {
                    format!("has no `{part}`")
                };
                return Err(ConfigError::new(
                    ConfigErrorKind::NoCatalog,
                    format!(
                        "no catalog: a TEA agent file keeps it at {CATALOG_PATH}, and {found} {has}"
                    ),
                )
                .at_path(join_path(&path, part))
                .at_location(Some(anchor.location(file))));
            }
        };
        anchor = key_mark;
        path = join_path(&path, part);
        if next.as_map().is_none() {
            return Err(ConfigError::new(
                ConfigErrorKind::InvalidValue,
                format!("expected a mapping, found {}", next.type_name()),
            )
            .at_path(path)
            .at_location(Some(next.mark.location(file))));
        }
        node = next;
    }
    Ok((node, path, anchor))
}

/// Joins a dotted path and a key (`a.b` + `c` = `a.b.c`; `` + `c` = `c`).
pub(crate) fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn creds(prefix: Option<&str>) -> CredentialsConfig {
        CredentialsConfig {
            prefix: prefix.map(str::to_string),
            ..CredentialsConfig::new(SecretSource::Env)
        }
    }

    #[test]
    fn lookup_order_resolves_the_story_prefix() {
        assert_eq!(
            creds(Some("POSTGRES_")).lookup_keys(CredentialField::Username),
            ["POSTGRES_username", "POSTGRES_USER"]
        );
        assert_eq!(
            creds(Some("APP_")).lookup_keys(CredentialField::Password),
            ["APP_password", "APP_PASSWORD", "POSTGRES_PASSWORD"]
        );
        assert_eq!(
            creds(None).lookup_keys(CredentialField::Username),
            ["username", "POSTGRES_USER"]
        );
    }

    #[test]
    fn bare_catalog_and_agent_file_give_the_same_config() {
        let env = MapEnv::new();
        let bare = load_str("host: db\nport: 6432\n", "bare.yaml", &env).expect("valid");
        let agent = load_str(
            "name: agent\nsettings:\n  ltm:\n    backend: duckdb\n    catalog:\n      host: db\n      port: 6432\n",
            "agent.yaml",
            &env,
        )
        .expect("valid");
        assert_eq!(bare.host, agent.host);
        assert_eq!(bare.port, Some(6432));
        assert_eq!(agent.origin.path("port"), "settings.ltm.catalog.port");
        assert_eq!(bare.origin.path("port"), "port");
    }

    #[test]
    fn missing_catalog_names_the_missing_part() {
        let err = load_str(
            "settings:\n  ltm:\n    backend: duckdb\n",
            "a.yaml",
            &MapEnv::new(),
        )
        .expect_err("no catalog");
        assert_eq!(err.kind(), ConfigErrorKind::NoCatalog);
        assert_eq!(err.path(), Some("settings.ltm.catalog"));
        assert!(err.message().contains("has no `catalog`"), "{err}");
    }

    #[test]
    fn expansion_errors_name_variable_and_path() {
        let err = load_str("host: ${DB_HOST}\n", "c.yaml", &MapEnv::new()).expect_err("unset");
        assert_eq!(
            err.to_string(),
            "c.yaml:1:7: host: environment variable DB_HOST is not set (write ${DB_HOST:-default} to give a default)"
        );
    }

    /// `read_source` on a temp file holding `content`; an error is rendered whole, its file
    /// named `c.yaml`.
    fn read_bytes(content: &[u8]) -> Result<String, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, content).expect("temp file");
        let path = path.to_str().expect("a UTF-8 temp path").to_string();
        read_source(&path).map(|(text, _)| text).map_err(|e| {
            let message = e.to_string().replace(&path, "c.yaml");
            ConfigError::new(e.kind(), message)
        })
    }

    #[test]
    fn invalid_utf8_names_the_line_and_character_column_of_the_first_bad_byte() {
        let check = |content: &[u8], line: usize, col: usize| {
            let err = read_bytes(content).expect_err("invalid UTF-8");
            assert_eq!(err.kind(), ConfigErrorKind::Syntax, "{err}");
            assert!(
                err.message().starts_with(&format!("c.yaml:{line}:{col}: ")),
                "{content:?}: {err}"
            );
            assert!(err.message().contains("not valid UTF-8"), "{err}");
        };
        check(b"\xff", 1, 1);
        check(b"host: db\n# \xff\n", 2, 3);
        // Columns count characters: `\xc3\xa9` is one.
        check(b"a: \xc3\xa9\xc3\xa9\xfe", 1, 6);
        // Line breaks as YAML counts them: `\r\n` is one, a lone `\r` is one.
        check(b"a\r\nb\rc\n\nd\xc0\x80", 5, 2);
        // A sequence cut short by the end of the file.
        check(b"a: 1\nb: \xe2\x82", 2, 4);
        // A surrogate's encoding is not UTF-8.
        check(b"x\xed\xa0\x80", 1, 2);
    }

    #[test]
    fn a_source_over_the_size_limit_is_refused_and_one_at_it_is_read() {
        let limit = usize::try_from(MAX_CONFIG_BYTES).expect("the limit fits in memory");
        let err = read_bytes(&vec![b'#'; limit + 1]).expect_err("too large");
        assert_eq!(err.kind(), ConfigErrorKind::Io);
        assert!(err.message().contains("c.yaml"), "{err}");
        assert!(
            err.message().contains(&format!("{MAX_CONFIG_BYTES} bytes")),
            "{err}"
        );
        let text = read_bytes(&vec![b'#'; limit]).expect("at the limit");
        assert_eq!(text.len(), limit);
    }

    #[test]
    fn an_endless_device_is_refused_at_the_size_limit() {
        let err = read_source("/dev/zero").expect_err("endless");
        assert_eq!(err.kind(), ConfigErrorKind::Io);
        assert!(err.message().contains("/dev/zero"), "{err}");
        assert!(
            err.message().contains(&format!("{MAX_CONFIG_BYTES} bytes")),
            "{err}"
        );
    }

    #[test]
    fn debug_never_shows_the_connection_string() {
        let env = MapEnv::new().with_var("DSN", "postgresql://u:canary-pw@h/db");
        let config = load_str("connection_string: ${DSN}\n", "c.yaml", &env).expect("valid");
        assert!(!format!("{config:?}").contains("canary-pw"));
    }
}
