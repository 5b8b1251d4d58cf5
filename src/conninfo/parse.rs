//! The parsers: a byte-for-byte port of libpq's `conninfo_parse` (key=value form),
//! `conninfo_uri_parse_options`, `conninfo_uri_parse_params`, `conninfo_uri_decode` and
//! `conninfo_storeval` (URI form), from `src/interfaces/libpq/fe-connect.c`.
//!
//! The parsers work on bytes, as libpq does, and only check that the final values are UTF-8
//! (a percent-decoded value may not be; a later occurrence of the keyword may replace it).
//! The percent-decoder is the one of libpq 17 and older: it keeps spaces, where libpq 18 trims
//! leading and trailing ones and refuses inner ones.

use super::error::{ConnInfoError, ConnInfoErrorKind as Kind, quote, quote_or_describe};
use super::keywords::{KEYWORDS, index_of};

/// The URI designators libpq recognises (`uri_designator`, `short_uri_designator`).
pub(crate) const URI_PREFIXES: [&str; 2] = ["postgresql://", "postgres://"];

/// The length of the URI designator `s` starts with, 0 if none (libpq's `uri_prefix_length`).
pub(crate) fn uri_prefix_length(s: &str) -> usize {
    URI_PREFIXES
        .iter()
        .find(|p| s.starts_with(*p))
        .map_or(0, |p| p.len())
}

/// One optional raw value per entry of [`KEYWORDS`].
pub(crate) type Slots = Vec<Option<Vec<u8>>>;

/// `isspace()` in the C locale (what libpq sees: the Rust runtime never calls `setlocale`).
pub(crate) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn empty_slots() -> Slots {
    vec![None; KEYWORDS.len()]
}

/// The byte at `i`, or NUL past the end (the C string's terminator).
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn reject_nul(s: &str) -> Result<(), ConnInfoError> {
    if s.as_bytes().contains(&0) {
        return Err(ConnInfoError::new(
            Kind::NulCharacter,
            "connection info string contains a NUL character",
        ));
    }
    Ok(())
}

/// libpq's `conninfo_storeval`, keyword lookup and `requiressl` translation included: `Err`
/// when the keyword is unknown. `requiressl` is not in libpq's table but is still accepted:
/// a value starting with `1` becomes `sslmode=require`, anything else `sslmode=prefer`.
fn store(slots: &mut Slots, keyword: &[u8], value: Vec<u8>) -> Result<usize, ()> {
    let (keyword, value): (&[u8], Vec<u8>) = if keyword == b"requiressl" {
        let v: &[u8] = if value.first() == Some(&b'1') {
            b"require"
        } else {
            b"prefer"
        };
        (b"sslmode", v.to_vec())
    } else {
        (keyword, value)
    };
    let i = index_of(keyword).ok_or(())?;
    slots[i] = Some(value);
    Ok(i)
}

/// The secret keyword stored at `index`, if it is one.
fn secret_name(index: usize) -> Option<&'static str> {
    KEYWORDS.get(index).filter(|k| k.secret).map(|k| k.name)
}

/// A fragment as shown in a message: quoted, or described when it may belong to the value of
/// the secret keyword `after_secret` (an unquoted password with a space runs into the next
/// "keyword"), or is too long to quote.
fn shown(bytes: &[u8], after_secret: Option<&str>) -> String {
    match after_secret {
        Some(k) => format!("a fragment that follows the value of \"{k}\" (not shown)"),
        None => quote_or_describe(bytes),
    }
}

/// Converts the raw values to `String`s: `Err` for the first one that is not UTF-8.
fn finish(slots: Slots) -> Result<Vec<Option<String>>, ConnInfoError> {
    slots
        .into_iter()
        .zip(KEYWORDS)
        .map(|(slot, kw)| {
            slot.map(|v| {
                String::from_utf8(v).map_err(|_| {
                    ConnInfoError::new(
                        Kind::InvalidUtf8,
                        format!(
                            "the value of \"{}\" is not valid UTF-8 after percent-decoding",
                            kw.name
                        ),
                    )
                })
            })
            .transpose()
        })
        .collect()
}

/// libpq's `conninfo_parse`: `keyword = value` pairs separated by whitespace.
pub(crate) fn parse_keyword_value(s: &str) -> Result<Vec<Option<String>>, ConnInfoError> {
    reject_nul(s)?;
    let b = s.as_bytes();
    let n = b.len();
    let mut slots = empty_slots();
    let mut after_secret: Option<&'static str> = None;
    let mut i = 0;
    while i < n {
        // Skip blanks before the parameter name.
        if is_c_space(b[i]) {
            i += 1;
            continue;
        }

        // The parameter name runs up to "=" or whitespace.
        let name_start = i;
        let name_end;
        loop {
            if i == n || b[i] == b'=' {
                name_end = i;
                break;
            }
            if is_c_space(b[i]) {
                name_end = i;
                i += 1;
                while i < n && is_c_space(b[i]) {
                    i += 1;
                }
                break;
            }
            i += 1;
        }
        let name = &b[name_start..name_end];

        // Check that there is a following "=".
        if at(b, i) != b'=' {
            return Err(ConnInfoError::new(
                Kind::MissingEquals,
                format!(
                    "missing \"=\" after {} in connection info string",
                    shown(name, after_secret)
                ),
            ));
        }
        i += 1;

        // Skip blanks after the "=".
        while i < n && is_c_space(b[i]) {
            i += 1;
        }

        let mut value = Vec::new();
        if at(b, i) != b'\'' {
            // Unquoted: up to whitespace; a backslash takes the next byte literally.
            while i < n {
                if is_c_space(b[i]) {
                    i += 1;
                    break;
                }
                if b[i] == b'\\' {
                    i += 1;
                    if i < n {
                        value.push(b[i]);
                        i += 1;
                    }
                } else {
                    value.push(b[i]);
                    i += 1;
                }
            }
        } else {
            // Single-quoted, with backslash escapes. Nothing needs to follow the closing quote.
            i += 1;
            loop {
                if i == n {
                    return Err(ConnInfoError::new(
                        Kind::UnterminatedQuote,
                        "unterminated quoted string in connection info string",
                    ));
                }
                if b[i] == b'\\' {
                    i += 1;
                    if i < n {
                        value.push(b[i]);
                        i += 1;
                    }
                    continue;
                }
                if b[i] == b'\'' {
                    i += 1;
                    break;
                }
                value.push(b[i]);
                i += 1;
            }
        }

        match store(&mut slots, name, value) {
            Ok(index) => after_secret = secret_name(index),
            Err(()) => {
                return Err(ConnInfoError::new(
                    Kind::InvalidOption,
                    format!("invalid connection option {}", shown(name, after_secret)),
                ));
            }
        }
    }
    finish(slots)
}

/// Where a percent-encoded token came from, for the error message.
#[derive(Clone, Copy)]
enum Part<'a> {
    User,
    Password,
    Host,
    Port,
    Dbname,
    ParamName,
    ParamValue(&'a [u8]),
}

impl Part<'_> {
    /// The secret keyword whose value this is, if any.
    fn secret(self) -> Option<&'static str> {
        match self {
            Part::Password => Some("password"),
            Part::ParamValue(k) => index_of(k).and_then(secret_name),
            _ => None,
        }
    }

    fn describe(self) -> String {
        match self {
            Part::User => "the URI user name".to_owned(),
            Part::Password => "the URI password".to_owned(),
            Part::Host => "the URI host list".to_owned(),
            Part::Port => "the URI port list".to_owned(),
            Part::Dbname => "the URI database name".to_owned(),
            Part::ParamName => "a URI query parameter name".to_owned(),
            Part::ParamValue(k) => match quote(k) {
                Some(q) => format!("the value of URI query parameter {q}"),
                None => "the value of a URI query parameter".to_owned(),
            },
        }
    }
}

/// libpq's `conninfo_uri_decode` (libpq 17 and older: spaces are kept as they are).
fn uri_decode(s: &[u8], part: Part<'_>) -> Result<Vec<u8>, ConnInfoError> {
    let fail = |kind: Kind, what: &str| {
        let place = match (part.secret(), quote(s)) {
            (None, Some(q)) => format!(": {q}"),
            _ => format!(" in {}", part.describe()),
        };
        ConnInfoError::new(kind, format!("{what}{place}"))
    };
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'%' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (hex(at(s, i + 1)), hex(at(s, i + 2))) else {
            return Err(fail(
                Kind::InvalidPercentEncoding,
                "invalid percent-encoded token",
            ));
        };
        let c = (hi << 4) | lo;
        if c == 0 {
            return Err(fail(
                Kind::ForbiddenPercentNul,
                "forbidden value %00 in percent-encoded value",
            ));
        }
        out.push(c);
        i += 3;
    }
    Ok(out)
}

/// libpq's `get_hexdigit`.
fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// Stores one of the netloc or path parts of a URI, percent-decoded (`conninfo_storeval` with
/// `uri_decode` set).
fn store_decoded(
    slots: &mut Slots,
    keyword: &str,
    raw: &[u8],
    part: Part<'_>,
) -> Result<(), ConnInfoError> {
    let value = uri_decode(raw, part)?;
    // The netloc keywords (user, password, host, port, dbname) are all in the table.
    store(slots, keyword.as_bytes(), value).map_err(|()| {
        ConnInfoError::new(
            Kind::InvalidOption,
            format!("invalid connection option \"{keyword}\""),
        )
    })?;
    Ok(())
}

/// libpq's `conninfo_uri_parse_options`:
/// `postgresql://[user[:password]@][netloc][:port][,...][/dbname][?param1=value1&...]`.
pub(crate) fn parse_uri(s: &str) -> Result<Vec<Option<String>>, ConnInfoError> {
    reject_nul(s)?;
    let prefix_len = uri_prefix_length(s);
    if prefix_len == 0 {
        return Err(ConnInfoError::new(
            Kind::NotUri,
            "connection URI must start with \"postgresql://\" or \"postgres://\"",
        ));
    }
    let b = s.as_bytes();
    let n = b.len();
    let mut slots = empty_slots();
    let start = prefix_len;

    // Look ahead for a user credentials designator: an "@" before any "/" (a "?" does not stop
    // the search).
    let mut p = start;
    while p < n && b[p] != b'@' && b[p] != b'/' {
        p += 1;
    }
    if at(b, p) == b'@' {
        let at_sign = p;
        let mut q = start;
        while b[q] != b':' && b[q] != b'@' {
            q += 1;
        }
        let user = &b[start..q];
        if !user.is_empty() {
            store_decoded(&mut slots, "user", user, Part::User)?;
        }
        if b[q] == b':' {
            let password = &b[q + 1..at_sign];
            if !password.is_empty() {
                store_decoded(&mut slots, "password", password, Part::Password)?;
            }
        }
        p = at_sign + 1;
    } else {
        p = start;
    }

    // One or more netloc[:port], separated by commas. Hosts and ports accumulate, raw, into
    // comma-separated lists (a host without a port still adds its comma to the port list).
    let mut hostbuf: Vec<u8> = Vec::new();
    let mut portbuf: Vec<u8> = Vec::new();
    let mut prevchar;
    loop {
        let host: &[u8];
        if at(b, p) == b'[' {
            p += 1;
            let host_start = p;
            while p < n && b[p] != b']' {
                p += 1;
            }
            if p == n {
                return Err(ConnInfoError::new(
                    Kind::UnterminatedIpv6,
                    "end of string reached when looking for matching \"]\" in IPv6 host address in URI",
                ));
            }
            if p == host_start {
                return Err(ConnInfoError::new(
                    Kind::EmptyIpv6,
                    "IPv6 host address may not be empty in URI",
                ));
            }
            host = &b[host_start..p];
            p += 1;
            let c = at(b, p);
            if c != 0 && c != b':' && c != b'/' && c != b'?' && c != b',' {
                let shown = if c.is_ascii_graphic() || c == b' ' {
                    char::from(c).to_string()
                } else {
                    format!("\\x{c:02x}")
                };
                return Err(ConnInfoError::new(
                    Kind::UnexpectedCharacter,
                    format!(
                        "unexpected character \"{shown}\" at position {} in URI (expected \":\" or \"/\")",
                        p + 1
                    ),
                ));
            }
        } else {
            let host_start = p;
            while p < n && !matches!(b[p], b':' | b'/' | b'?' | b',') {
                p += 1;
            }
            host = &b[host_start..p];
        }
        prevchar = at(b, p);
        hostbuf.extend_from_slice(host);

        if prevchar == b':' {
            p += 1;
            let port_start = p;
            while p < n && !matches!(b[p], b'/' | b'?' | b',') {
                p += 1;
            }
            prevchar = at(b, p);
            portbuf.extend_from_slice(&b[port_start..p]);
        }

        if prevchar != b',' {
            break;
        }
        p += 1;
        hostbuf.push(b',');
        portbuf.push(b',');
    }

    if !hostbuf.is_empty() {
        store_decoded(&mut slots, "host", &hostbuf, Part::Host)?;
    }
    if !portbuf.is_empty() {
        store_decoded(&mut slots, "port", &portbuf, Part::Port)?;
    }

    if prevchar != 0 && prevchar != b'?' {
        // prevchar is "/": the path, up to "?", is the database name.
        p += 1;
        let dbname_start = p;
        while p < n && b[p] != b'?' {
            p += 1;
        }
        prevchar = at(b, p);
        let dbname = &b[dbname_start..p];
        // An empty dbname is not stored (it would force the default rather than PGDATABASE).
        if !dbname.is_empty() {
            store_decoded(&mut slots, "dbname", dbname, Part::Dbname)?;
        }
    }

    if prevchar != 0 {
        p += 1;
        parse_params(&b[p.min(n)..], &mut slots)?;
    }
    finish(slots)
}

/// libpq's `conninfo_uri_parse_params`: `key=value` pairs separated by `&`, each side
/// percent-decoded; `ssl=true` means `sslmode=require`; an unknown keyword is an error.
fn parse_params(params: &[u8], slots: &mut Slots) -> Result<(), ConnInfoError> {
    let n = params.len();
    let mut q = 0;
    let mut after_secret: Option<&'static str> = None;
    while q < n {
        let keyword_start = q;
        let mut equals: Option<usize> = None;
        let value_end;
        loop {
            let c = at(params, q);
            if c == b'=' {
                if let Some(e) = equals {
                    return Err(ConnInfoError::new(
                        Kind::ExtraSeparator,
                        format!(
                            "extra key/value separator \"=\" in URI query parameter: {}",
                            shown(&params[keyword_start..e], after_secret)
                        ),
                    ));
                }
                equals = Some(q);
                q += 1;
            } else if c == b'&' || c == 0 {
                value_end = q;
                if c != 0 {
                    q += 1;
                }
                break;
            } else {
                q += 1;
            }
        }
        let Some(e) = equals else {
            return Err(ConnInfoError::new(
                Kind::MissingSeparator,
                format!(
                    "missing key/value separator \"=\" in URI query parameter: {}",
                    shown(&params[keyword_start..value_end], after_secret)
                ),
            ));
        };

        let keyword = uri_decode(&params[keyword_start..e], Part::ParamName)?;
        let value = uri_decode(&params[e + 1..value_end], Part::ParamValue(&keyword))?;

        // Special keyword handling for JDBC compatibility.
        let (keyword, value) = if keyword == b"ssl" && value == b"true" {
            (b"sslmode".to_vec(), b"require".to_vec())
        } else {
            (keyword, value)
        };

        match store(slots, &keyword, value) {
            Ok(index) => after_secret = secret_name(index),
            Err(()) => {
                return Err(ConnInfoError::new(
                    Kind::InvalidQueryParameter,
                    format!(
                        "invalid URI query parameter: {}",
                        shown(&keyword, after_secret)
                    ),
                ));
            }
        }
    }
    Ok(())
}
