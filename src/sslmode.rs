//! libpq's `sslmode` and the TLS policy it amounts to.

use std::fmt;
use std::str::FromStr;

/// libpq's six `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SslMode {
    /// Plain only.
    Disable,
    /// Plain first; TLS only if the server refuses plain (verified only when a root
    /// certificate file is present).
    Allow,
    /// TLS first (verified only when a root certificate file is present); plain if the server
    /// refuses TLS or the TLS attempt fails. libpq's default.
    Prefer,
    /// TLS, unverified, unless a root certificate file is present: then the chain is verified.
    Require,
    /// TLS with the certificate chain verified, host name not checked.
    VerifyCa,
    /// TLS with the chain verified and the host name checked.
    VerifyFull,
}

impl SslMode {
    /// Every mode, weakest first.
    pub const ALL: [SslMode; 6] = [
        Self::Disable,
        Self::Allow,
        Self::Prefer,
        Self::Require,
        Self::VerifyCa,
        Self::VerifyFull,
    ];

    /// The libpq spelling (`verify-full`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// The allowed spellings, for error messages.
    pub fn allowed() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|m| m.as_str() == s).ok_or(())
    }
}

/// The TLS policy of a connection, read once when the plan is made (libpq's rules applied to
/// `sslmode`, the root certificate and every TLS keyword): the plan's `tls` field. `connect`
/// reads it and parses nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    /// The TLS behaviour the connection gets, by the six names of [`SslMode`]; they differ
    /// from the written `sslmode` where libpq upgrades a mode (`require` with a root
    /// certificate file present verifies the chain: `verify-ca`), and it is `disable` when
    /// every host is a unix socket.
    pub mode: SslMode,
    /// What is checked of the server certificate whenever TLS is used (a root certificate
    /// file turns on chain checks even under `allow` and `prefer`).
    pub verify: Verify,
    /// How TLS starts (`sslnegotiation`).
    pub negotiation: Negotiation,
    /// The TLS versions offered (`ssl_min_protocol_version`, `ssl_max_protocol_version`).
    pub versions: TlsVersions,
    /// Whether the ClientHello carries Server Name Indication (`sslsni`).
    pub sni: bool,
    /// Whether a client certificate is sent (`sslcertmode`, libpq 16).
    pub cert_mode: CertMode,
    /// The client certificate file libpq looks for: `sslcert`, else
    /// `$HOME/.postgresql/postgresql.crt` (read when a TLS attempt starts; nothing there means
    /// no client certificate).
    pub client_cert: Option<String>,
    /// Its key file: `sslkey`, else `$HOME/.postgresql/postgresql.key`.
    pub client_key: Option<String>,
    /// The revocation list file read beside a root certificate file: `sslcrl`, else, when
    /// `sslcrldir` is not set either, `$HOME/.postgresql/root.crl` (a file that cannot be read
    /// turns revocation checks off, as in libpq).
    pub crl_file: Option<String>,
    /// The directories of hashed revocation lists (`sslcrldir`, `:`-separated).
    pub crl_dirs: Option<String>,
}

impl TlsPolicy {
    /// A policy of mode `mode` with libpq's defaults for everything else, and the
    /// verification libpq's rules give `mode` without a root certificate file.
    pub fn new(mode: SslMode) -> Self {
        Self {
            mode,
            verify: match mode {
                SslMode::VerifyFull => Verify::Full,
                SslMode::VerifyCa => Verify::Ca,
                _ => Verify::None,
            },
            negotiation: Negotiation::Postgres,
            versions: TlsVersions::default(),
            sni: true,
            cert_mode: CertMode::Allow,
            client_cert: None,
            client_key: None,
            crl_file: None,
            crl_dirs: None,
        }
    }

    /// The mode's name (`verify-full`).
    pub fn as_str(&self) -> &'static str {
        self.mode.as_str()
    }
}

impl fmt::Display for TlsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// libpq 16's `sslcertmode`: whether a client certificate is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertMode {
    /// Never sent, and the certificate and key files are not read.
    Disable,
    /// Sent when the server asks and one is configured (libpq's default).
    #[default]
    Allow,
    /// The server must ask for one (a TLS CertificateRequest) and one must be sent, or the
    /// connection fails.
    Require,
}

impl CertMode {
    /// Reads the keyword as libpq does (unset or empty is `allow`); the error is libpq's text.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("" | "allow") => Ok(Self::Allow),
            Some("disable") => Ok(Self::Disable),
            Some("require") => Ok(Self::Require),
            Some(other) => Err(format!("invalid sslcertmode value: \"{other}\"")),
        }
    }
}

/// Where trust for server certificates comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootCert {
    /// No root certificate file exists (neither `sslrootcert` nor the default
    /// `~/.postgresql/root.crt`).
    Absent,
    /// A root certificate file exists.
    File,
    /// `sslrootcert=system`: the operating system's trust store (libpq 16+).
    System,
}

/// How much of the server certificate a TLS connection checks (the `verified` of ping JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verify {
    /// Any certificate is accepted.
    None,
    /// The chain must lead to a trusted root; the host name is not checked.
    Ca,
    /// The chain and the host name are checked.
    Full,
}

impl Verify {
    /// `none`, `ca` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Ca => "ca",
            Self::Full => "full",
        }
    }
}

/// What libpq checks whenever it does use TLS: the verify modes check what they say, and in
/// every other mode a root certificate file that exists turns on chain verification
/// (`initialize_SSL` sets `SSL_VERIFY_PEER` whatever the mode). Under `allow` and `prefer` a
/// failed verification then sends libpq on to its plain-text attempt.
///
/// ```
/// use tea_pgcloud::sslmode::{verification, RootCert, SslMode, Verify};
/// assert_eq!(verification(SslMode::Prefer, RootCert::File), Verify::Ca);
/// assert_eq!(verification(SslMode::Prefer, RootCert::Absent), Verify::None);
/// assert_eq!(verification(SslMode::VerifyFull, RootCert::Absent), Verify::Full);
/// ```
pub fn verification(mode: SslMode, root: RootCert) -> Verify {
    match (mode, root) {
        (SslMode::VerifyFull, _) | (_, RootCert::System) => Verify::Full,
        (SslMode::VerifyCa, _) => Verify::Ca,
        (SslMode::Disable, _) | (_, RootCert::Absent) => Verify::None,
        (_, RootCert::File) => Verify::Ca,
    }
}

/// Applies libpq's rules: `require` verifies the chain when a root certificate is present, and
/// `sslrootcert=system` forces `verify-full` (an explicit weaker mode is an error, as in libpq).
/// `allow` and `prefer` keep their names: what they verify is [`verification`].
///
/// ```
/// use tea_pgcloud::sslmode::{effective_tls, RootCert, SslMode};
/// assert_eq!(effective_tls(SslMode::Require, RootCert::File), Ok(SslMode::VerifyCa));
/// assert_eq!(effective_tls(SslMode::Require, RootCert::Absent), Ok(SslMode::Require));
/// assert!(effective_tls(SslMode::Require, RootCert::System).is_err());
/// ```
pub fn effective_tls(mode: SslMode, root: RootCert) -> Result<SslMode, String> {
    match (mode, root) {
        (SslMode::VerifyFull, RootCert::System) => Ok(SslMode::VerifyFull),
        (weak, RootCert::System) => Err(format!(
            "weak sslmode \"{weak}\" may not be used with sslrootcert=system (use \"verify-full\")"
        )),
        (SslMode::Require, RootCert::File) => Ok(SslMode::VerifyCa),
        (mode, _) => Ok(mode),
    }
}

/// How TLS starts (libpq 17's `sslnegotiation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// `postgres` (the default): an `SSLRequest`, then TLS if the server agrees.
    Postgres,
    /// `direct`: TLS at once, with ALPN `postgresql` (PostgreSQL 17 servers).
    Direct,
}

/// Why libpq refuses an `sslnegotiation`; `Display` gives libpq's own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegotiationError {
    /// Not `postgres` or `direct`.
    InvalidValue(String),
    /// `direct` with a mode that may fall back to plain text.
    WeakMode(SslMode),
}

impl std::fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidValue(value) => write!(f, "invalid sslnegotiation value: \"{value}\""),
            Self::WeakMode(mode) => write!(
                f,
                "weak sslmode \"{mode}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")"
            ),
        }
    }
}

impl std::error::Error for NegotiationError {}

/// Applies libpq 17's rules for `sslnegotiation`: `postgres` (or unset) or `direct`, and
/// `direct` only with `require` or stronger (it has no plain-text fallback).
///
/// ```
/// use tea_pgcloud::sslmode::{negotiation, Negotiation, SslMode};
/// assert_eq!(negotiation(SslMode::Require, Some("direct")), Ok(Negotiation::Direct));
/// assert_eq!(negotiation(SslMode::Prefer, None), Ok(Negotiation::Postgres));
/// assert!(negotiation(SslMode::Prefer, Some("direct")).is_err());
/// assert!(negotiation(SslMode::Require, Some("tls")).is_err());
/// ```
pub fn negotiation(mode: SslMode, value: Option<&str>) -> Result<Negotiation, NegotiationError> {
    match value {
        None | Some("postgres") => Ok(Negotiation::Postgres),
        Some("direct") => match mode {
            SslMode::Disable | SslMode::Allow | SslMode::Prefer => {
                Err(NegotiationError::WeakMode(mode))
            }
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Ok(Negotiation::Direct),
        },
        Some(other) => Err(NegotiationError::InvalidValue(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print_agree() {
        for mode in SslMode::ALL {
            assert_eq!(mode.as_str().parse::<SslMode>(), Ok(mode));
        }
        assert!("verify_full".parse::<SslMode>().is_err());
        assert!("REQUIRE".parse::<SslMode>().is_err());
    }

    #[test]
    fn only_require_is_upgraded_by_a_root_certificate() {
        for mode in SslMode::ALL {
            let upgraded = effective_tls(mode, RootCert::File).expect("file never errors");
            let expected = if mode == SslMode::Require {
                SslMode::VerifyCa
            } else {
                mode
            };
            assert_eq!(upgraded, expected);
            assert_eq!(effective_tls(mode, RootCert::Absent), Ok(mode));
        }
    }

    #[test]
    fn a_root_certificate_file_turns_on_chain_checks_in_every_tls_mode() {
        use SslMode::*;
        let with_file: Vec<_> = SslMode::ALL.map(|m| verification(m, RootCert::File)).into();
        assert_eq!(
            with_file,
            [
                Verify::None,
                Verify::Ca,
                Verify::Ca,
                Verify::Ca,
                Verify::Ca,
                Verify::Full
            ]
        );
        for mode in [Allow, Prefer, Require] {
            assert_eq!(verification(mode, RootCert::Absent), Verify::None);
        }
    }

    #[test]
    fn system_roots_demand_verify_full() {
        for mode in SslMode::ALL {
            let result = effective_tls(mode, RootCert::System);
            assert_eq!(result.is_ok(), mode == SslMode::VerifyFull, "{mode}");
        }
    }
}

/// A TLS protocol version this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// libpq's spelling (`TLSv1.2`, `TLSv1.3`), also the one `pg_stat_ssl` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "TLSv1.2",
            Self::Tls13 => "TLSv1.3",
        }
    }
}

/// The TLS versions a connection may use: libpq's `ssl_min_protocol_version` (default
/// `TLSv1.2`) and `ssl_max_protocol_version` (default: no bound), as the plan reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlsVersions {
    /// The lowest version offered.
    pub min: TlsVersion,
    /// The highest version offered.
    pub max: TlsVersion,
}

impl Default for TlsVersions {
    fn default() -> Self {
        Self {
            min: TlsVersion::Tls12,
            max: TlsVersion::Tls13,
        }
    }
}

/// Why the protocol version bounds cannot be used; `Display` gives libpq's message where
/// libpq has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsVersionError {
    /// Not a version libpq knows (`TLSv1`, `TLSv1.1`, `TLSv1.2`, `TLSv1.3`, any case): the
    /// keyword and the value.
    InvalidValue(&'static str, String),
    /// The minimum is above the maximum (libpq's `sslVerifyProtocolRange`).
    InvalidRange,
    /// A version libpq knows and this client does not speak (TLS 1.0 and 1.1): the keyword.
    Unsupported(&'static str),
}

impl std::fmt::Display for TlsVersionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidValue(keyword, value) => write!(f, "invalid {keyword} value: \"{value}\""),
            Self::InvalidRange => f.write_str("invalid SSL protocol version range"),
            Self::Unsupported(keyword) => write!(
                f,
                "connection option \"{keyword}\" is supported with \"TLSv1.2\", \"TLSv1.3\" only: TLS 1.0 and 1.1 are not offered by this client"
            ),
        }
    }
}

impl std::error::Error for TlsVersionError {}

/// libpq's protocol version names, in order, as `sslVerifyProtocolVersion` accepts them
/// (compared without regard to ASCII case).
const LIBPQ_TLS_VERSIONS: [&str; 4] = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

/// Applies libpq's rules to `ssl_min_protocol_version` and `ssl_max_protocol_version` (absent:
/// libpq's defaults, `TLSv1.2` and no bound; an empty value is no bound): each must be a
/// version libpq knows, then the range must not be empty (`sslVerifyProtocolRange`, with the
/// default minimum when it is absent); then, beyond libpq, a bound of TLS 1.0 or 1.1 is
/// refused, since this client offers TLS 1.2 and 1.3 only.
///
/// ```
/// use tea_pgcloud::sslmode::{tls_versions, TlsVersion};
/// assert_eq!(tls_versions(None, None).map(|v| v.min), Ok(TlsVersion::Tls12));
/// assert_eq!(tls_versions(Some("tlsv1.3"), None).map(|v| v.min), Ok(TlsVersion::Tls13));
/// assert_eq!(
///     tls_versions(Some("TLSv1.3"), Some("TLSv1.2")).unwrap_err().to_string(),
///     "invalid SSL protocol version range"
/// );
/// assert!(tls_versions(Some("TLSv9"), None).is_err());
/// // The default minimum (TLSv1.2) is above this maximum, as libpq says:
/// assert!(tls_versions(None, Some("TLSv1.1")).is_err());
/// ```
pub fn tls_versions(min: Option<&str>, max: Option<&str>) -> Result<TlsVersions, TlsVersionError> {
    fn index(keyword: &'static str, value: Option<&str>) -> Result<Option<usize>, TlsVersionError> {
        match value.filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => LIBPQ_TLS_VERSIONS
                .iter()
                .position(|known| known.eq_ignore_ascii_case(v))
                .map(Some)
                .ok_or_else(|| TlsVersionError::InvalidValue(keyword, v.to_string())),
        }
    }
    // libpq's default minimum applies when the keyword is absent (an empty value is no bound).
    let lo = index("ssl_min_protocol_version", min.or(Some("TLSv1.2")))?;
    let hi = index("ssl_max_protocol_version", max)?;
    // sslVerifyProtocolRange: a range with an unset bound, or starting at TLSv1, is valid;
    // else the minimum may not be above the maximum.
    if let (Some(lo), Some(hi)) = (lo, hi)
        && lo != 0
        && lo > hi
    {
        return Err(TlsVersionError::InvalidRange);
    }
    let version = |keyword, i: Option<usize>, default| match i {
        None => Ok(default),
        Some(2) => Ok(TlsVersion::Tls12),
        Some(3) => Ok(TlsVersion::Tls13),
        Some(_) => Err(TlsVersionError::Unsupported(keyword)),
    };
    Ok(TlsVersions {
        min: version("ssl_min_protocol_version", lo, TlsVersion::Tls12)?,
        max: version("ssl_max_protocol_version", hi, TlsVersion::Tls13)?,
    })
}

/// libpq's `sslsni`: Server Name Indication is sent when the keyword is unset or its value
/// starts with `1` (`conn->sslsni[0] == '1'` in `fe-secure-openssl.c`); SNI never carries an IP
/// address.
///
/// ```
/// use tea_pgcloud::sslmode::sni;
/// assert!(sni(None) && sni(Some("1")));
/// assert!(!sni(Some("0")) && !sni(Some("")) && !sni(Some("yes")));
/// ```
pub fn sni(value: Option<&str>) -> bool {
    value.is_none_or(|v| v.starts_with('1'))
}
