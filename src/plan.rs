//! [`ConnectPlan`]: where and how to connect, as plain data. No network, no secret values.
//!
//! `tea-pgcloud plan --json` prints [`ConnectPlan::to_json`]; its fields are a contract
//! (DESIGN.md, "Plan JSON").

use std::fmt;

use serde_json::{Value, json};

use crate::config::{CredentialsConfig, PoolConfig, Provider};
use crate::conninfo::ConnInfo;
use crate::error::Location;
use crate::secret::Secret;
use crate::sslmode::{SslMode, TlsPolicy};

/// libpq's default port.
pub const DEFAULT_PORT: u16 = 5432;

/// The socket directory libpq uses when a connection string names no host. It is compiled into
/// libpq: `/var/run/postgresql` in the Debian, Ubuntu and Red Hat packages, `/tmp` in upstream
/// builds. The plan takes the packaged one and warns.
pub const LIBPQ_DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// What produced the plan: a provider preset, or a connection string used as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanKind {
    /// A provider preset.
    Provider(Provider),
    /// `connection_string`.
    ConnectionString,
}

impl PlanKind {
    /// As the plan JSON writes it (`gcp`, ..., `connection-string`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provider(p) => p.as_str(),
            Self::ConnectionString => "connection-string",
        }
    }
}

/// Which IAM / Entra token a password comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IamKind {
    /// An RDS / Aurora IAM auth token (SigV4, `rds-db`).
    AwsRds,
    /// A Cloud SQL IAM login (OAuth2 access token).
    Gcp,
    /// A Microsoft Entra ID token for Azure Database for PostgreSQL.
    Azure,
}

impl IamKind {
    /// As written after `iam:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwsRds => "aws-rds",
            Self::Gcp => "gcp",
            Self::Azure => "azure",
        }
    }
}

/// Where the user name or the password comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// Nowhere: libpq's default applies (the OS user; no password).
    #[default]
    None,
    /// Written in the configuration (the YAML `user`, or the connection string).
    Literal,
    /// An environment variable, by name.
    Env(String),
    /// A cloud secrets backend (`gcp`, `aws`, `azure`) and the secret within it. (The `env`
    /// backend is shown as [`Source::Env`].)
    Secret {
        /// The backend.
        backend: &'static str,
        /// What is looked up: a variable, a secret resource name, `NAME#json-key`.
        key: String,
    },
    /// A short-lived IAM / Entra token.
    Iam(IamKind),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Literal => f.write_str("literal"),
            Self::Env(name) => write!(f, "env:{name}"),
            Self::Secret { backend, key } => write!(f, "secret:{backend}:{key}"),
            Self::Iam(kind) => write!(f, "iam:{}", kind.as_str()),
        }
    }
}

/// One host to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name, IP address, or unix-socket directory (starts with `/`).
    pub host: String,
    /// TCP port, or the socket file's number (`.s.PGSQL.PORT`).
    pub port: u16,
    /// The address to dial instead of resolving `host` (libpq `hostaddr`).
    pub hostaddr: Option<String>,
}

impl HostPort {
    /// Whether this is a unix-socket directory (never TLS).
    pub fn is_socket(&self) -> bool {
        self.hostaddr.is_none() && (self.host.starts_with('/') || self.host.starts_with('@'))
    }
}

/// Something valid but probably not what the user wants (TLS weaker than verify-full, a root
/// certificate file that does not exist here, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What kind of warning: stable, matched by the vectors.
    pub code: WarningCode,
    /// The dotted YAML path it is about.
    pub path: String,
    /// Where that key (or the catalog) stands.
    pub location: Location,
    /// What to know.
    pub message: String,
}

/// The kinds of [`Warning`], with the stable codes of `fixtures/vectors/SPEC.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningCode {
    /// TCP hosts and TLS weaker than verify-full.
    WeakTls,
    /// A written root certificate file does not exist here.
    RootCertMissing,
    /// No host: libpq's compiled-in socket directory is used.
    DefaultSocketDir,
    /// An `sslmode` over the Cloud SQL Auth Proxy's socket, where it cannot apply.
    SocketSslmode,
    /// An Azure user in Single Server's `user@server` form.
    AzureSingleServerUser,
    /// Environment credentials, none of whose lookup keys is set.
    CredentialsEnvUnset,
}

impl WarningCode {
    /// The stable code (`weak-tls`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WeakTls => "weak-tls",
            Self::RootCertMissing => "root-cert-missing",
            Self::DefaultSocketDir => "default-socket-dir",
            Self::SocketSslmode => "socket-sslmode",
            Self::AzureSingleServerUser => "azure-single-server-user",
            Self::CredentialsEnvUnset => "credentials-env-unset",
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::text::Escaped;
        write!(
            f,
            "{}:{}:{}: warning: {}: {}",
            Escaped(&self.location.file),
            self.location.line,
            self.location.col,
            Escaped(&self.path),
            Escaped(&self.message)
        )
    }
}

/// `ssl_bundle: auto`: AWS's RDS CA bundle, to be downloaded (or taken from the cache) before
/// connecting. Making the plan never touches the network: `rds_bundle::ensure` (cargo feature
/// `aws`) puts a verified bundle at [`RdsBundle::path`], which is also the plan's
/// `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdsBundle {
    /// Where the bundle is downloaded from (`ssl_bundle_url`, by default AWS's global bundle).
    pub url: String,
    /// The pinned SHA-256 of the file (`ssl_bundle_sha256`), 64 lower-case hex digits.
    pub sha256: Option<String>,
    /// The cache file: `$XDG_CACHE_HOME/tea-pgcloud/rds-global-bundle.pem`, else
    /// `$HOME/.cache/tea-pgcloud/rds-global-bundle.pem`.
    pub path: String,
}

/// Where and how to connect. Plain data; `Debug` never shows the password.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectPlan {
    /// What produced it.
    pub kind: PlanKind,
    /// The hosts, in the order libpq tries them.
    pub hosts: Vec<HostPort>,
    /// Database name; `None` leaves libpq's default (the user name).
    pub dbname: Option<String>,
    /// The user name when known before credentials are resolved.
    pub user: Option<String>,
    /// Where the user name comes from.
    pub user_source: Source,
    /// Where the password comes from.
    pub password_source: Source,
    /// The `sslmode` handed to libpq (written, or the preset's default).
    pub sslmode: SslMode,
    /// The root certificate file in effect (written, or libpq's default file when it exists;
    /// with `ssl_bundle: auto` the bundle's cache file, [`RdsBundle::path`]).
    pub sslrootcert: Option<String>,
    /// aws `ssl_bundle: auto`: the bundle to download or take from the cache before
    /// connecting. Shown in the plan JSON as `ssl_bundle` (`{url, sha256, path}` or null).
    pub rds_bundle: Option<RdsBundle>,
    /// The TLS policy after libpq's rules: the mode (`disable` when every host is a unix
    /// socket), what is verified, negotiation, versions, SNI, the client certificate and the
    /// revocation lists.
    pub tls: TlsPolicy,
    /// TCP keepalives and the user timeout (`keepalives`, `keepalives_idle`,
    /// `keepalives_interval`, `keepalives_count`, `tcp_user_timeout`).
    pub keepalives: Keepalives,
    /// How long each address's attempt may take (`connect_timeout`, libpq's rules: `None` when
    /// unset or 0 or less, else at least 2 s).
    pub connect_timeout: Option<std::time::Duration>,
    /// SCRAM channel binding (`channel_binding`).
    pub channel_binding: ChannelBinding,
    /// The authentication the server may ask for (`require_auth`, libpq 16).
    pub require_auth: Option<RequireAuth>,
    /// Which server of the host list is acceptable (`target_session_attrs`).
    pub target_session_attrs: TargetSessionAttrs,
    /// Whether the host list is shuffled (`load_balance_hosts`, libpq 16).
    pub load_balance_hosts: LoadBalanceHosts,
    /// The password file libpq would read when no password is given: `passfile`, else
    /// `$HOME/.pgpass` (read at connect time, per host, by libpq's rules).
    pub passfile: Option<String>,
    /// The `application_name` sent: `application_name`, else `fallback_application_name`.
    pub application_name: Option<String>,
    /// The operating-system user a unix socket's server must run as (`requirepeer`).
    pub requirepeer: Option<String>,
    /// Cloud region, when known (aws: signs IAM tokens).
    pub region: Option<String>,
    /// gcp: `PROJECT:REGION:INSTANCE`, when known.
    pub instance_connection_name: Option<String>,
    /// aws: what kind of RDS endpoint the host is (`instance`, `cluster`, `proxy`, ...).
    pub aws_endpoint: Option<&'static str>,
    /// Every libpq keyword to connect with, never the password.
    pub params: ConnInfo,
    /// A password written in the connection string.
    pub password: Option<Secret>,
    /// A client-key passphrase written in the connection string (`sslpassword`).
    pub sslpassword: Option<Secret>,
    /// The credentials block, for the secrets backends.
    pub credentials: Option<CredentialsConfig>,
    /// Pool and catalog behaviour.
    pub pool: PoolConfig,
    /// Things the user should know.
    pub warnings: Vec<Warning>,
    /// Values that came from the environment: no error or warning about this plan quotes them
    /// ([`crate::text::Tainted`]).
    pub tainted: crate::text::Tainted,
}

impl ConnectPlan {
    /// The libpq key=value string, without the password.
    pub fn conninfo(&self) -> String {
        self.params.to_keyword_value()
    }

    /// The `postgresql://` URI, without the password.
    pub fn uri(&self) -> String {
        self.params.to_uri()
    }

    /// The plan JSON of DESIGN.md: every contract field always present (null where not
    /// applicable), then this crate's extensions.
    pub fn to_json(&self) -> Value {
        let hosts: Vec<Value> = self
            .hosts
            .iter()
            .map(|h| {
                let mut v = json!({"host": h.host, "port": h.port});
                if let Some(addr) = &h.hostaddr {
                    v["hostaddr"] = json!(addr);
                }
                v
            })
            .collect();
        json!({
            "provider": self.kind.as_str(),
            "hosts": hosts,
            "dbname": self.dbname,
            "user": self.user,
            "user_source": self.user_source.to_string(),
            "password_source": self.password_source.to_string(),
            "sslmode": self.sslmode.as_str(),
            "sslrootcert": self.sslrootcert,
            "tls": self.tls.as_str(),
            "tls_verify": self.tls.verify.as_str(),
            "conninfo": self.conninfo(),
            "uri": self.uri(),
            "region": self.region,
            "instance_connection_name": self.instance_connection_name,
            "aws_endpoint": self.aws_endpoint,
            "target_session_attrs": self.target_session_attrs.as_str(),
            "load_balance_hosts": self.load_balance_hosts.as_str(),
            "pool": {
                "min_size": self.pool.min_size,
                "max_size": self.pool.max_size,
                "auto_migrate": self.pool.auto_migrate,
                "lazy": self.pool.lazy,
                "max_lifetime": self.pool.max_lifetime,
                "token_refresh": self.pool.token_refresh.as_str(),
            },
            "warnings": self.warnings.iter().map(|w| json!({"code": w.code.as_str(), "path": w.path, "message": w.message})).collect::<Vec<_>>(),
            "ssl_bundle": self.rds_bundle.as_ref().map(|b| json!({"url": b.url, "sha256": b.sha256, "path": b.path})),
        })
    }
}

/// The hosts libpq would try for these keywords: `host`, `hostaddr` and `port` are
/// comma-separated lists; one port applies to every host, otherwise the counts must match.
/// There is always at least one host: an empty one (with no `hostaddr`) is libpq's default
/// socket directory, [`LIBPQ_DEFAULT_SOCKET_DIR`]; the `bool` says whether that was used.
pub fn hosts_of(params: &ConnInfo) -> Result<(Vec<HostPort>, bool), String> {
    let split = |key: &str| -> Vec<String> {
        params
            .get(key)
            .filter(|v| !v.is_empty())
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let hosts = split("host");
    let addrs = split("hostaddr");
    let ports = split("port");
    let count = hosts.len().max(addrs.len()).max(1);
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(format!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            addrs.len()
        ));
    }
    if ports.len() > 1 && ports.len() != count {
        return Err(format!(
            "could not match {} port numbers to {} hosts",
            ports.len(),
            count
        ));
    }
    let mut out = Vec::with_capacity(count);
    let mut used_default = false;
    for i in 0..count {
        let port_text = ports
            .get(if ports.len() == 1 { 0 } else { i })
            .map(|p| p.trim())
            .unwrap_or("");
        let port = if port_text.is_empty() {
            DEFAULT_PORT
        } else {
            match port_text.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("invalid port number: \"{port_text}\"")),
            }
        };
        let hostaddr = addrs.get(i).filter(|a| !a.is_empty()).cloned();
        let host = match (hosts.get(i).filter(|h| !h.is_empty()), &hostaddr) {
            (Some(h), _) => h.clone(),
            (None, Some(addr)) => addr.clone(),
            (None, None) => {
                used_default = true;
                LIBPQ_DEFAULT_SOCKET_DIR.to_string()
            }
        };
        out.push(HostPort {
            host,
            port,
            hostaddr,
        });
    }
    Ok((out, used_default))
}

/// libpq's `channel_binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelBinding {
    /// Never bind.
    Disable,
    /// Bind when the server offers SCRAM-SHA-256-PLUS over TLS (libpq's default).
    #[default]
    Prefer,
    /// Refuse a login without channel binding.
    Require,
}

impl ChannelBinding {
    /// Reads the keyword as libpq does (unset is `prefer`); the error is libpq's text.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("prefer") => Ok(Self::Prefer),
            Some("disable") => Ok(Self::Disable),
            Some("require") => Ok(Self::Require),
            Some(other) => Err(format!("invalid channel_binding value: \"{other}\"")),
        }
    }
}

pub use crate::sslmode::CertMode;

/// The authentication requests of the protocol (`AUTH_REQ_*` in libpq's `pqcomm.h`), as they
/// come in an `R` message.
pub mod auth_request {
    /// Authentication is done.
    pub const OK: u32 = 0;
    /// A cleartext password.
    pub const PASSWORD: u32 = 3;
    /// An MD5-hashed password.
    pub const MD5: u32 = 5;
    /// GSSAPI.
    pub const GSS: u32 = 7;
    /// GSSAPI, continued.
    pub const GSS_CONT: u32 = 8;
    /// SSPI.
    pub const SSPI: u32 = 9;
    /// SASL (SCRAM-SHA-256), begun.
    pub const SASL: u32 = 10;
    /// SASL, continued.
    pub const SASL_CONT: u32 = 11;
    /// SASL, final.
    pub const SASL_FIN: u32 = 12;
}

/// libpq 16's `require_auth`: the authentication requests a server may make, and whether it
/// must authenticate the client at all (`none`). Read as `connectOptions2` reads it: a comma
/// list, nothing trimmed, of `password`, `md5`, `gss`, `sspi`, `scram-sha-256` and `none`,
/// all negated with `!` or none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireAuth {
    /// The value as written, for libpq's error message.
    pub written: String,
    /// One bit per allowed request code ([`auth_request`]).
    pub allowed: u32,
    /// Whether the server must complete an authentication exchange (libpq's `auth_required`).
    pub required: bool,
}

impl RequireAuth {
    /// Reads the keyword (unset: no requirement); the errors are libpq's texts.
    pub fn parse(value: Option<&str>) -> Result<Option<Self>, String> {
        use auth_request::*;
        let Some(written) = value else {
            return Ok(None);
        };
        // Written but empty: libpq 16+ reads no list, yet checks every request against the
        // empty set with no authentication required (measured against libpq 17: a SCRAM
        // request fails, trust passes).
        if written.is_empty() {
            return Ok(Some(Self {
                written: String::new(),
                allowed: 0,
                required: false,
            }));
        }
        let (mut allowed, mut required, mut negated) = (0u32, true, false);
        for (index, part) in written.split(',').enumerate() {
            let method = match part.strip_prefix('!') {
                Some(method) => {
                    if index == 0 {
                        // A permissive set, subtracted from.
                        required = false;
                        allowed = u32::MAX;
                    } else if !negated {
                        return Err(format!(
                            "negative require_auth method \"{part}\" cannot be mixed with non-negative methods"
                        ));
                    }
                    negated = true;
                    method
                }
                None if negated => {
                    return Err(format!(
                        "require_auth method \"{part}\" cannot be mixed with negative methods"
                    ));
                }
                None => part,
            };
            let bits = match method {
                "password" => 1 << PASSWORD,
                "md5" => 1 << MD5,
                "gss" => (1 << GSS) | (1 << GSS_CONT),
                "sspi" => (1 << SSPI) | (1 << GSS_CONT),
                "scram-sha-256" => (1 << SASL) | (1 << SASL_CONT) | (1 << SASL_FIN),
                "none" => {
                    required = negated;
                    continue;
                }
                other => return Err(format!("invalid require_auth value: \"{other}\"")),
            };
            let duplicate = if negated {
                allowed & bits == 0
            } else {
                allowed & bits == bits
            };
            if duplicate {
                return Err(format!(
                    "require_auth method \"{part}\" is specified more than once"
                ));
            }
            if negated {
                allowed &= !bits;
            } else {
                allowed |= bits;
            }
        }
        Ok(Some(Self {
            written: written.to_string(),
            allowed,
            required,
        }))
    }

    /// libpq's `check_expected_areq`: whether the server may send request `code` now, given
    /// whether the client has finished its side of the exchange (sent its password, or
    /// checked the server's SCRAM proof); the error is libpq's text.
    pub fn check(&self, code: u32, client_finished: bool) -> Result<(), String> {
        use auth_request::*;
        let reason = match code {
            OK if !self.required || client_finished => return Ok(()),
            OK => "server did not complete authentication",
            PASSWORD | MD5 | GSS | GSS_CONT | SSPI | SASL | SASL_CONT | SASL_FIN
                if self.allowed & (1 << code) != 0 =>
            {
                return Ok(());
            }
            PASSWORD => "server requested a cleartext password",
            MD5 => "server requested a hashed password",
            GSS | GSS_CONT => "server requested GSSAPI authentication",
            SSPI => "server requested SSPI authentication",
            SASL | SASL_CONT | SASL_FIN => "server requested SASL authentication",
            _ => "server requested an unknown authentication type",
        };
        Err(format!(
            "authentication method requirement \"{}\" failed: {reason}",
            self.written
        ))
    }
}

/// libpq's `target_session_attrs` (`PGTARGETSESSIONATTRS`): which server of the host list
/// is acceptable. libpq reads the server's reported `in_hot_standby` and
/// `default_transaction_read_only` (PostgreSQL 14 and later report both at start-up), else
/// asks (`SHOW transaction_read_only`, `SELECT pg_catalog.pg_is_in_recovery()`); a server of
/// the wrong kind is left (libpq's `session is read-only`, ...) for the next host, never the
/// next address of the same host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetSessionAttrs {
    /// The first server that answers (libpq's default).
    #[default]
    Any,
    /// A session that accepts writes: neither in hot standby nor `default_transaction_read_only`.
    ReadWrite,
    /// A session that does not accept writes (a standby, or `default_transaction_read_only`).
    ReadOnly,
    /// A server not in hot standby (it may still be `default_transaction_read_only`).
    Primary,
    /// A server in hot standby.
    Standby,
    /// A standby if any answers; else, on a second pass over the whole list, any server.
    PreferStandby,
}

impl TargetSessionAttrs {
    /// Every value, in libpq's order.
    pub const ALL: [TargetSessionAttrs; 6] = [
        Self::Any,
        Self::ReadWrite,
        Self::ReadOnly,
        Self::Primary,
        Self::Standby,
        Self::PreferStandby,
    ];

    /// The keyword value (`read-write`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::ReadWrite => "read-write",
            Self::ReadOnly => "read-only",
            Self::Primary => "primary",
            Self::Standby => "standby",
            Self::PreferStandby => "prefer-standby",
        }
    }

    /// libpq's parse: unset is `any`; the value is compared exactly (case matters), and
    /// anything else is libpq's `invalid target_session_attrs value: "VALUE"`.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let Some(value) = value else {
            return Ok(Self::Any);
        };
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == value)
            .ok_or_else(|| format!("invalid target_session_attrs value: \"{value}\""))
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// libpq 16's `load_balance_hosts` (`PGLOADBALANCEHOSTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadBalanceHosts {
    /// The hosts in the order given, each host's addresses in the resolver's order (libpq's
    /// default).
    #[default]
    Disable,
    /// The hosts shuffled once per connection attempt, then each host's addresses shuffled
    /// when it is resolved (libpq's Fisher-Yates shuffles); `prefer-standby`'s second pass
    /// keeps the shuffled order.
    Random,
}

impl LoadBalanceHosts {
    /// The keyword value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Random => "random",
        }
    }

    /// libpq's parse: unset is `disable`; exact values; else libpq's
    /// `invalid load_balance_hosts value: "VALUE"`.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("disable") => Ok(Self::Disable),
            Some("random") => Ok(Self::Random),
            Some(other) => Err(format!("invalid load_balance_hosts value: \"{other}\"")),
        }
    }
}

/// libpq's smallest connect timeout: a `connect_timeout` of 1 is taken as 2 seconds.
pub const MIN_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// libpq's `connect_timeout` (`connectDBComplete`): an integer by libpq's rules; 0 or less (or
/// unset) waits forever; 1 is taken as 2 seconds.
pub fn connect_timeout(value: Option<&str>) -> Result<Option<std::time::Duration>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let secs = libpq_int(value, "connect_timeout")?;
    Ok((secs > 0).then(|| {
        std::time::Duration::from_secs(u64::from(secs.unsigned_abs())).max(MIN_CONNECT_TIMEOUT)
    }))
}

impl ConnectPlan {
    /// Sets `connect_timeout` (both the keyword and the typed value), as `ping` does when the
    /// configuration sets none.
    pub fn set_connect_timeout(&mut self, secs: u32) {
        let _ = self.params.set("connect_timeout", secs.to_string());
        self.connect_timeout = connect_timeout(Some(&secs.to_string())).unwrap_or_default();
    }
}

/// libpq's TCP socket options, as the plan reads them from `keepalives`, `keepalives_idle`,
/// `keepalives_interval`, `keepalives_count` and `tcp_user_timeout`; set on every TCP
/// connection (never on a unix socket) as libpq sets them.
///
/// libpq's rules, kept here: keepalives are on unless `keepalives` is the integer 0 (libpq's
/// integer rules: an empty value is an error); the timings are set only when keepalives are on, each only when given, a
/// negative value as 0; `tcp_user_timeout` too is set only when keepalives are on (libpq's
/// `else if` chain). A value the kernel refuses (`keepalives_idle=0`: `TCP_KEEPIDLE` must be at
/// least 1) fails the attempt with libpq's `setsockopt(TCP_KEEPIDLE) failed: ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalives {
    /// `SO_KEEPALIVE`.
    pub on: bool,
    /// `TCP_KEEPIDLE`, seconds.
    pub idle: Option<i32>,
    /// `TCP_KEEPINTVL`, seconds.
    pub interval: Option<i32>,
    /// `TCP_KEEPCNT`.
    pub count: Option<i32>,
    /// `TCP_USER_TIMEOUT`, milliseconds.
    pub user_timeout: Option<i32>,
}

impl Default for Keepalives {
    fn default() -> Self {
        Self {
            on: true,
            idle: None,
            interval: None,
            count: None,
            user_timeout: None,
        }
    }
}

/// libpq's `parse_int_param`: optional leading white space, an optional sign, decimal digits
/// that fit a C `int`, optional trailing white space; else libpq's `invalid integer value`.
pub(crate) fn libpq_int(value: &str, keyword: &str) -> Result<i32, String> {
    let error = || format!("invalid integer value \"{value}\" for connection option \"{keyword}\"");
    let c_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r');
    let trimmed = value.trim_start_matches(c_space).trim_end_matches(c_space);
    let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error());
    }
    trimmed.parse::<i32>().map_err(|_| error())
}

/// libpq's `useKeepalives` (libpq 13 and later): `keepalives` read as an integer by libpq's
/// rules, on unless 0; libpq adds `keepalives parameter must be an integer` to the integer
/// error.
fn keepalives_on(value: Option<&str>) -> Result<bool, String> {
    match value {
        None => Ok(true),
        Some(value) => libpq_int(value, "keepalives")
            .map(|n| n != 0)
            .map_err(|e| format!("{e}; keepalives parameter must be an integer")),
    }
}

/// Reads the keepalive keywords of `params` by libpq's rules (see [`Keepalives`]): the error
/// is libpq's text.
pub(crate) fn keepalives(params: &crate::conninfo::ConnInfo) -> Result<Keepalives, String> {
    let on = keepalives_on(params.get("keepalives"))?;
    if !on {
        return Ok(Keepalives {
            on,
            ..Keepalives::default()
        });
    }
    let int = |keyword: &str| {
        params
            .get(keyword)
            .map(|v| libpq_int(v, keyword).map(|n| n.max(0)))
            .transpose()
    };
    Ok(Keepalives {
        on,
        idle: int("keepalives_idle")?,
        interval: int("keepalives_interval")?,
        count: int("keepalives_count")?,
        user_timeout: int("tcp_user_timeout")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(s: &str) -> ConnInfo {
        ConnInfo::parse(s).expect("valid conninfo")
    }

    #[test]
    fn require_auth_reads_libpqs_lists() {
        use auth_request::*;
        let parse = |v: &str| RequireAuth::parse(Some(v));
        assert_eq!(RequireAuth::parse(None), Ok(None));
        let empty = parse("").expect("valid").expect("set");
        assert!(empty.check(auth_request::OK, false).is_ok() && empty.check(SASL, false).is_err());
        let scram = parse("scram-sha-256").expect("valid").expect("set");
        assert!(scram.check(SASL, false).is_ok() && scram.check(SASL_FIN, false).is_ok());
        assert_eq!(
            scram.check(MD5, false),
            Err("authentication method requirement \"scram-sha-256\" failed: server requested a hashed password".into())
        );
        // A server that says OK before the exchange is done, or without one.
        assert_eq!(
            scram.check(OK, false),
            Err("authentication method requirement \"scram-sha-256\" failed: server did not complete authentication".into())
        );
        assert!(scram.check(OK, true).is_ok());
        let not_cleartext = parse("!password,!md5").expect("valid").expect("set");
        assert!(not_cleartext.check(OK, false).is_ok(), "trust is allowed");
        assert!(not_cleartext.check(SASL, false).is_ok());
        assert!(not_cleartext.check(PASSWORD, false).is_err());
        let not_none = parse("!none").expect("valid").expect("set");
        assert!(not_none.check(OK, false).is_err() && not_none.check(MD5, false).is_ok());
        let none = parse("none").expect("valid").expect("set");
        assert!(none.check(OK, false).is_ok() && none.check(SASL, false).is_err());
        assert!(
            parse("none,scram-sha-256")
                .expect("valid")
                .expect("set")
                .check(OK, false)
                .is_ok()
        );
        assert_eq!(
            scram.check(99, true),
            Err("authentication method requirement \"scram-sha-256\" failed: server requested an unknown authentication type".into())
        );
    }

    #[test]
    fn session_attrs_and_load_balancing_parse_as_libpq_does() {
        for t in TargetSessionAttrs::ALL {
            assert_eq!(TargetSessionAttrs::parse(Some(t.as_str())), Ok(t));
        }
        assert_eq!(TargetSessionAttrs::parse(None), Ok(TargetSessionAttrs::Any));
        for bad in ["ANY", "read_write", "", "master"] {
            assert_eq!(
                TargetSessionAttrs::parse(Some(bad)),
                Err(format!("invalid target_session_attrs value: \"{bad}\""))
            );
        }
        assert_eq!(LoadBalanceHosts::parse(None), Ok(LoadBalanceHosts::Disable));
        assert_eq!(
            LoadBalanceHosts::parse(Some("random")),
            Ok(LoadBalanceHosts::Random)
        );
        assert_eq!(
            LoadBalanceHosts::parse(Some("Random")),
            Err("invalid load_balance_hosts value: \"Random\"".to_string())
        );
    }

    #[test]
    fn require_auth_errors_are_libpqs() {
        let parse = |v: &str| RequireAuth::parse(Some(v)).err();
        assert_eq!(
            parse("scram"),
            Some("invalid require_auth value: \"scram\"".into())
        );
        assert_eq!(
            parse("md5, password"),
            Some("invalid require_auth value: \" password\"".into())
        );
        assert_eq!(
            parse("md5,"),
            Some("invalid require_auth value: \"\"".into())
        );
        assert_eq!(
            parse("md5,!password"),
            Some("negative require_auth method \"!password\" cannot be mixed with non-negative methods".into())
        );
        assert_eq!(
            parse("!md5,password"),
            Some("require_auth method \"password\" cannot be mixed with negative methods".into())
        );
        assert_eq!(
            parse("md5,md5"),
            Some("require_auth method \"md5\" is specified more than once".into())
        );
        assert_eq!(
            parse("!gss,!sspi,!gss"),
            Some("require_auth method \"!gss\" is specified more than once".into())
        );
        // gss and sspi share GSS_CONT: allowing both is not a duplicate (only one bit is new).
        assert_eq!(parse("gss,sspi"), None);
    }

    #[test]
    fn sslcertmode_values() {
        assert_eq!(CertMode::parse(None), Ok(CertMode::Allow));
        assert_eq!(CertMode::parse(Some("")), Ok(CertMode::Allow));
        assert_eq!(CertMode::parse(Some("require")), Ok(CertMode::Require));
        assert_eq!(CertMode::parse(Some("disable")), Ok(CertMode::Disable));
        assert_eq!(
            CertMode::parse(Some("Require")),
            Err("invalid sslcertmode value: \"Require\"".into())
        );
    }

    #[test]
    fn one_port_serves_every_host() {
        let hosts = hosts_of(&params("host=a,b port=6432")).expect("valid").0;
        assert_eq!(
            hosts
                .iter()
                .map(|h| (h.host.as_str(), h.port))
                .collect::<Vec<_>>(),
            [("a", 6432), ("b", 6432)]
        );
    }

    #[test]
    fn ports_pair_with_hosts_and_empty_means_default() {
        let hosts = hosts_of(&params("host=a,b,/tmp port=1,,3"))
            .expect("valid")
            .0;
        assert_eq!(
            hosts
                .iter()
                .map(|h| (h.host.as_str(), h.port, h.is_socket()))
                .collect::<Vec<_>>(),
            [("a", 1, false), ("b", 5432, false), ("/tmp", 3, true)]
        );
    }

    #[test]
    fn mismatched_lists_are_refused() {
        assert!(hosts_of(&params("host=a,b,c port=1,2")).is_err());
        assert!(hosts_of(&params("host=a port=x")).is_err());
        assert!(hosts_of(&params("host=a,b hostaddr=1.2.3.4")).is_err());
    }

    #[test]
    fn hostaddr_stands_in_for_a_missing_host() {
        let hosts = hosts_of(&params("hostaddr=10.0.0.1")).expect("valid").0;
        assert_eq!(hosts[0].host, "10.0.0.1");
        assert_eq!(hosts[0].hostaddr.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn no_host_is_libpqs_default_socket() {
        let (hosts, used_default) = hosts_of(&params("dbname=ltm port=6432")).expect("valid");
        assert!(used_default);
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].host, LIBPQ_DEFAULT_SOCKET_DIR);
        assert_eq!(hosts[0].port, 6432);
        assert!(hosts[0].is_socket());
        let (hosts, used_default) = hosts_of(&params("host=a, port=1,2")).expect("valid");
        assert!(used_default);
        assert_eq!(hosts[1].host, LIBPQ_DEFAULT_SOCKET_DIR);
        assert!(hosts_of(&params("port=1,2")).is_err());
    }

    #[test]
    fn sources_print_as_the_contract_says() {
        assert_eq!(Source::None.to_string(), "none");
        assert_eq!(Source::Env("RDS_X".into()).to_string(), "env:RDS_X");
        assert_eq!(Source::Iam(IamKind::AwsRds).to_string(), "iam:aws-rds");
        let secret = Source::Secret {
            backend: "aws",
            key: "prod/ltm#password".into(),
        };
        assert_eq!(secret.to_string(), "secret:aws:prod/ltm#password");
    }

    #[test]
    fn connect_timeout_follows_libpq() {
        assert_eq!(connect_timeout(None), Ok(None));
        assert_eq!(connect_timeout(Some("0")), Ok(None));
        assert_eq!(connect_timeout(Some("-3")), Ok(None));
        assert_eq!(connect_timeout(Some("1")), Ok(Some(MIN_CONNECT_TIMEOUT)));
        assert_eq!(
            connect_timeout(Some(" 7 ")),
            Ok(Some(std::time::Duration::from_secs(7)))
        );
        assert_eq!(
            connect_timeout(Some("abc")),
            Err("invalid integer value \"abc\" for connection option \"connect_timeout\"".into())
        );
        assert!(connect_timeout(Some("")).is_err(), "libpq: no digits");
        assert!(
            connect_timeout(Some("99999999999")).is_err(),
            "libpq: not a C int"
        );
    }

    #[test]
    fn channel_binding_follows_libpq() {
        assert_eq!(ChannelBinding::parse(None), Ok(ChannelBinding::Prefer));
        assert_eq!(
            ChannelBinding::parse(Some("require")),
            Ok(ChannelBinding::Require)
        );
        assert_eq!(
            ChannelBinding::parse(Some("REQUIRE")),
            Err("invalid channel_binding value: \"REQUIRE\"".into())
        );
    }
}
