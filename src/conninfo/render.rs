//! Rendering a [`ConnInfo`] back into a string libpq parses into the same map.

use std::fmt::Write as _;

use super::ConnInfo;
use super::parse::is_c_space;

/// Appends `value` in key=value form: single-quoted (with `'` and `\` backslash-escaped) when
/// it is empty or holds whitespace, `'` or `\`; as it is otherwise.
fn push_kv_value(out: &mut String, value: &str) {
    let needs_quotes = value.is_empty()
        || value
            .bytes()
            .any(|b| is_c_space(b) || b == b'\'' || b == b'\\');
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
}

/// The libpq key=value form: `key=value` pairs separated by one space, in `KEYWORDS` order.
pub(crate) fn to_keyword_value(info: &ConnInfo) -> String {
    let mut out = String::new();
    for (key, value) in info.iter() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(key);
        out.push('=');
        push_kv_value(&mut out, value);
    }
    out
}

/// RFC 3986 unreserved characters: the only bytes left as they are in a URI.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Appends `value` percent-encoded: every byte but the unreserved ones, and but those for
/// which `keep` says yes.
fn push_encoded(out: &mut String, value: &str, keep: impl Fn(u8) -> bool) {
    for b in value.bytes() {
        if is_unreserved(b) || keep(b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_encoded(&mut out, value, |_| false);
    out
}

/// The netloc (`host[:port],...`) for `host` and `port`, when libpq would parse it back into
/// exactly these values: every host non-empty, and either no port and a single host, or a
/// non-empty port list with one entry per host (an entry may be empty). An IPv6 literal goes
/// in brackets; all else is percent-encoded (a `:` too), so a socket directory
/// `/cloudsql/p:r:i` is `%2Fcloudsql%2Fp%3Ar%3Ai`.
fn netloc(host: &str, port: Option<&str>) -> Option<String> {
    let hosts: Vec<&str> = host.split(',').collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return None;
    }
    let ports: Vec<&str> = match port {
        None if hosts.len() == 1 => vec![""],
        None => return None,
        Some("") => return None,
        Some(p) => p.split(',').collect(),
    };
    if ports.len() != hosts.len() {
        return None;
    }
    let mut out = String::new();
    for (i, (h, p)) in hosts.iter().zip(&ports).enumerate() {
        if i > 0 {
            out.push(',');
        }
        // An IPv6 literal, possibly with a zone (`fe80::1%eth0`).
        let address = h.split('%').next().unwrap_or_default();
        if address.parse::<std::net::Ipv6Addr>().is_ok() {
            out.push('[');
            push_encoded(&mut out, h, |b| b == b':');
            out.push(']');
        } else {
            push_encoded(&mut out, h, |_| false);
        }
        if !p.is_empty() {
            out.push(':');
            push_encoded(&mut out, p, |_| false);
        }
    }
    Some(out)
}

/// The `postgresql://` form; see [`ConnInfo::to_uri`].
pub(crate) fn to_uri(info: &ConnInfo) -> String {
    let mut out = String::from("postgresql://");
    // Keywords already placed in the netloc or path.
    let mut placed: Vec<&str> = Vec::new();

    let user = info.get("user").filter(|u| !u.is_empty());
    let password = info.get("password").filter(|p| !p.is_empty());
    if user.is_some() || password.is_some() {
        if let Some(u) = user {
            push_encoded(&mut out, u, |_| false);
            placed.push("user");
        }
        if let Some(p) = password {
            out.push(':');
            push_encoded(&mut out, p, |_| false);
            placed.push("password");
        }
        out.push('@');
    }

    if let Some(h) = info.get("host")
        && let Some(netloc) = netloc(h, info.get("port"))
    {
        out.push_str(&netloc);
        placed.push("host");
        placed.push("port");
    }

    let mut rest = String::new();
    if let Some(d) = info.get("dbname").filter(|d| !d.is_empty()) {
        rest.push('/');
        push_encoded(&mut rest, d, |_| false);
        placed.push("dbname");
    }

    let mut query = String::new();
    for (key, value) in info.iter().filter(|(k, _)| !placed.contains(k)) {
        query.push(if query.is_empty() { '?' } else { '&' });
        query.push_str(key);
        query.push('=');
        query.push_str(&encoded(value));
    }
    if !query.is_empty() && rest.is_empty() {
        rest.push('/');
    }
    out.push_str(&rest);
    out.push_str(&query);
    out
}
