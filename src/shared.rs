//! Small helpers that several stages share, so that each exists once: SHA-256 in hex (the
//! catalog's ids, the RDS bundle's pin), the jitter of retry back-offs (the cloud clients) and
//! the process's rustls provider (the secrets backends and the IAM token providers).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::digest::{SHA256, digest};

/// The lower-case hex SHA-256 of `bytes`.
///
/// ```
/// assert_eq!(
///     tea_pgcloud::shared::sha256_hex(b""),
///     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(64);
    for b in digest(&SHA256, bytes).as_ref() {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The GCP and Azure SDK clients use rustls through reqwest without a provider of their own:
/// install ring as the process default once (a no-op when one is installed already).
pub fn install_ring_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A wait between half of `d` and all of it, so that the retries of many clients spread out.
pub fn jitter(d: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or_default();
    let half = d / 2;
    half + half.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_whole() {
        for ms in [0, 1, 100, 250, 1000] {
            let d = Duration::from_millis(ms);
            let j = jitter(d);
            assert!(j >= d / 2 && j <= d, "{ms}: {j:?}");
        }
    }
}
