//! libpq's host-name check for `verify-full` (`pgtls_verify_peer_name_matches_certificate_guts`
//! in `fe-secure-openssl.c`, `pq_verify_peer_name_matches_certificate_name` in
//! `fe-secure-common.c`), which differs from the WebPKI rules rustls applies:
//!
//! - The host is compared with every subjectAltName of type dNSName (name comparison) and
//!   iPAddress (byte comparison), in order; the first match wins.
//! - The subject's Common Name is checked only when no SAN has the host's type: a DNS host with
//!   no dNSName SAN, or an IP host with no iPAddress SAN (libpq then checks the CN even when
//!   dNSName SANs exist).
//! - Names compare case-insensitively. A wildcard is only `*.` at the start, matches one label
//!   (no dot), and only one `*`.
//! - A name with an embedded NUL is an error, never a match.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The result of checking a certificate against a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NameCheck {
    /// A name in the certificate matches.
    Match,
    /// No name matches: the names examined, first one first (for the error message).
    NoMatch(Vec<String>),
    /// The certificate cannot be read or holds a malformed name.
    Invalid(String),
}

/// Whether `host` is an IP address as libpq's `is_ip_address` sees it (`inet_aton` for IPv4,
/// which also takes forms like `127.1`, or `inet_pton` for IPv6).
fn host_ip(host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    inet_aton(host).map(IpAddr::V4)
}

/// `inet_aton`'s forms: a, a.b, a.b.c, a.b.c.d, each part decimal, octal (0 prefix) or hex (0x).
fn inet_aton(host: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        let value = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16).ok()?
        } else if part.len() > 1 && part.starts_with('0') {
            u32::from_str_radix(&part[1..], 8).ok()?
        } else {
            part.parse::<u32>().ok()?
        };
        values.push(value);
    }
    let (last, head) = values.split_last()?;
    let mut addr: u32 = 0;
    for (i, v) in head.iter().enumerate() {
        if *v > 255 {
            return None;
        }
        addr |= v << (24 - 8 * i);
    }
    let room = 32 - 8 * head.len() as u32;
    if room < 32 && *last >= (1u32 << room) {
        return None;
    }
    Some(std::net::Ipv4Addr::from(addr | last))
}

/// libpq's `wildcard_certificate_match`.
fn wildcard_matches(pattern: &str, host: &str) -> bool {
    let (pat, h) = (pattern.as_bytes(), host.as_bytes());
    if pat.len() < 3 || pat[0] != b'*' || pat[1] != b'.' || pat.len() > h.len() {
        return false;
    }
    let suffix = &pattern[1..];
    let start = h.len() - pat.len() + 1;
    if !host.is_char_boundary(start) || !host[start..].eq_ignore_ascii_case(suffix) {
        return false;
    }
    // No dot left of where the pattern started to match (one label only).
    !host[..start].contains('.')
}

fn name_matches(name: &str, host: &str) -> bool {
    name.eq_ignore_ascii_case(host) || wildcard_matches(name, host)
}

/// Checks a DER certificate against `host` by libpq's rules.
pub(super) fn check(cert_der: &[u8], host: &str) -> NameCheck {
    let cert = match X509Certificate::from_der(cert_der) {
        Ok((_, cert)) => cert,
        Err(e) => return NameCheck::Invalid(format!("cannot parse the server certificate: {e}")),
    };
    let ip = host_ip(host);
    let mut examined = Vec::new();
    let mut check_cn = true;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => {
                    if ip.is_none() {
                        check_cn = false;
                    }
                    if dns.contains('\0') {
                        return NameCheck::Invalid(
                            "SSL certificate's name contains embedded null".into(),
                        );
                    }
                    examined.push(dns.to_string());
                    if name_matches(dns, host) {
                        return NameCheck::Match;
                    }
                }
                GeneralName::IPAddress(bytes) => {
                    if ip.is_some() {
                        check_cn = false;
                    }
                    let cert_ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    let Some(cert_ip) = cert_ip else {
                        return NameCheck::Invalid(format!(
                            "SSL certificate address entry has invalid length {}",
                            bytes.len()
                        ));
                    };
                    examined.push(cert_ip.to_string());
                    if ip == Some(cert_ip) {
                        return NameCheck::Match;
                    }
                }
                _ => {}
            }
        }
    }
    if check_cn && let Some(cn) = cert.subject().iter_common_name().next() {
        let Ok(cn) = cn.as_str() else {
            return NameCheck::Invalid("the certificate's common name is not a string".into());
        };
        if cn.contains('\0') {
            return NameCheck::Invalid("SSL certificate's name contains embedded null".into());
        }
        examined.push(cn.to_string());
        if name_matches(cn, host) {
            return NameCheck::Match;
        }
    }
    NameCheck::NoMatch(examined)
}

/// libpq's message for a failed check.
pub(super) fn mismatch_message(examined: &[String], host: &str) -> String {
    match examined {
        [] => "could not get server's host name from server certificate".to_string(),
        [one] => format!("server certificate for \"{one}\" does not match host name \"{host}\""),
        [first, rest @ ..] => format!(
            "server certificate for \"{first}\" (and {} other name{}) does not match host name \"{host}\"",
            rest.len(),
            if rest.len() == 1 { "" } else { "s" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_leading_label() {
        assert!(wildcard_matches("*.tea.test", "db.tea.test"));
        assert!(wildcard_matches("*.tea.test", "DB.TEA.TEST"));
        assert!(!wildcard_matches("*.tea.test", "a.db.tea.test"));
        assert!(!wildcard_matches("*.tea.test", "tea.test"));
        assert!(!wildcard_matches("*.tea.test", ".tea.test"));
        assert!(!wildcard_matches("db*.tea.test", "db1.tea.test"));
        assert!(!wildcard_matches("*", "localhost"));
        assert!(!wildcard_matches("*.", "a."));
        // libpq compares bytes: a multi-byte host must not split a character.
        assert!(!wildcard_matches("*.é", "xé"));
    }

    #[test]
    fn inet_aton_takes_the_short_forms() {
        assert_eq!(host_ip("127.1"), Some("127.0.0.1".parse().expect("ip")));
        assert_eq!(host_ip("0x7f.1"), Some("127.0.0.1".parse().expect("ip")));
        assert_eq!(host_ip("::1"), Some("::1".parse().expect("ip")));
        assert_eq!(host_ip("localhost"), None);
        assert_eq!(host_ip("256.1.1.1"), None);
    }

    #[test]
    fn messages_follow_libpq() {
        assert_eq!(
            mismatch_message(&["a".into(), "b".into(), "c".into()], "h"),
            "server certificate for \"a\" (and 2 other names) does not match host name \"h\""
        );
        assert_eq!(
            mismatch_message(&[], "h"),
            "could not get server's host name from server certificate"
        );
    }
}
