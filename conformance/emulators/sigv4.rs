//! A SigV4 presigned-URL verifier written from the specification (canonical request, string to
//! sign, derived key, HMAC) with nothing of aws-sigv4, beside the credentials emulators whose
//! keys sign RDS IAM tokens: the tests recompute a token's signature with it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::shared::sha256_hex;

/// The query parameters of a presigned token (`HOST:PORT/?QUERY`), percent-decoded.
pub fn token_params(token: &str) -> Result<BTreeMap<String, String>, String> {
    let (_, query) = token
        .split_once("/?")
        .ok_or_else(|| "not HOST:PORT/?QUERY".to_string())?;
    query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').ok_or_else(|| format!("not k=v: {kv}"))?;
            Ok((k.to_string(), percent_decode(v)?))
        })
        .collect()
}

/// `%XX` escapes decoded; the result must be UTF-8.
pub fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .ok_or_else(|| format!("a cut escape in {s}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|e| format!("{hex}: {e}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| format!("not UTF-8: {e}"))
}

/// SigV4's encoding: everything but unreserved characters.
pub fn sigv4_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `20240826T220000Z` (`X-Amz-Date`) as a time.
pub fn amz_date(s: &str) -> Result<SystemTime, String> {
    if s.len() != 16 || s.as_bytes()[8] != b'T' || !s.ends_with('Z') {
        return Err(format!("not an X-Amz-Date: {s}"));
    }
    let n = |r: std::ops::Range<usize>| {
        s[r].parse::<i64>()
            .map_err(|e| format!("not an X-Amz-Date: {s}: {e}"))
    };
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    // Days from civil (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(9..11)? * 3600 + n(11..13)? * 60 + n(13..15)?;
    let secs = u64::try_from(secs).map_err(|_| format!("before 1970: {s}"))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data.as_bytes()).as_ref().to_vec()
}

/// The presigned token's signature, recomputed from the SigV4 specification with
/// `secret_key`: canonical request (`GET /`, the sorted query without `X-Amz-Signature`, the
/// `host` header, an empty body), string to sign, derived key, HMAC.
pub fn signature_by_hand(token: &str, secret_key: &str) -> Result<String, String> {
    let (authority, query) = token
        .split_once("/?")
        .ok_or_else(|| "not HOST:PORT/?QUERY".to_string())?;
    let mut pairs = Vec::new();
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').ok_or_else(|| format!("not k=v: {kv}"))?;
        if k != "X-Amz-Signature" {
            pairs.push((
                sigv4_encode(&percent_decode(k)?),
                sigv4_encode(&percent_decode(v)?),
            ));
        }
    }
    pairs.sort();
    let canonical_query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let canonical_request = format!(
        "GET\n/\n{}\nhost:{authority}\n\nhost\n{}",
        canonical_query.join("&"),
        sha256_hex(b"")
    );
    let p = token_params(token)?;
    let field = |name: &str| p.get(name).ok_or_else(|| format!("no {name}"));
    let (_, scope) = field("X-Amz-Credential")?
        .split_once('/')
        .ok_or_else(|| "X-Amz-Credential is not AKID/SCOPE".to_string())?;
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        field("X-Amz-Date")?,
        sha256_hex(canonical_request.as_bytes())
    );
    let mut key = format!("AWS4{secret_key}").into_bytes();
    for part in scope.split('/') {
        key = hmac(&key, part);
    }
    Ok(hex(&hmac(&key, &string_to_sign)))
}
