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

/// The TLS behaviour a connection actually gets, after libpq's rules are applied to `sslmode`
/// and the root certificate: the plan's `tls` field.
///
/// It has the same six names as [`SslMode`]; they differ where libpq upgrades a mode, e.g.
/// `require` with a root certificate file present verifies the chain (`verify-ca`).
pub type TlsPolicy = SslMode;

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
pub fn effective_tls(mode: SslMode, root: RootCert) -> Result<TlsPolicy, String> {
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
