//! Small helpers that several stages share, so that each exists once: SHA-256 in hex (the
//! catalog's ids, the RDS bundle's pin), base64 (JWS segments), the jitter of retry back-offs
//! (the cloud clients), the process's rustls provider (the secrets backends and the IAM token
//! providers), and the injectable clocks (the secrets cache, the token cache, the RDS bundle's
//! cache files).
//!
//! # Clocks
//!
//! Two clocks, because two different questions are asked of "now":
//!
//! - [`Clock`] is monotonic ([`Instant`]): how long ago something happened in this process
//!   (the secrets cache's TTL). A wall-clock jump must not make a cached value older or younger.
//! - [`WallClock`] is the calendar ([`SystemTime`]): comparisons with times that come from
//!   outside the process (a token's expiry, as its issuer states it; a cache file's
//!   modification time), which an `Instant` cannot express.
//!
//! Each has its real implementation ([`SystemClock`], [`SystemWallClock`]); tests inject their
//! own to move time by hand. [`FnWallClock`] makes a wall clock of a function.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::digest::{SHA256, digest};

/// The lower-case hex SHA-256 of `bytes` (public as `rds_bundle::sha256_hex`, the form of a
/// bundle pin).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
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
#[cfg_attr(not(any(feature = "gcp", feature = "azure")), allow(dead_code))]
pub(crate) fn install_ring_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Base64 of `data` with the standard alphabet and `=` padding (RFC 4648, section 4); the
/// Secret Manager emulator's payloads.
#[cfg_attr(not(all(feature = "conformance", feature = "gcp")), allow(dead_code))]
pub(crate) fn base64(data: &[u8]) -> String {
    base64_with(
        data,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        true,
    )
}

/// Base64url of `data` without padding (RFC 4648, section 5), as JWS segments are written.
#[cfg_attr(not(feature = "gcp"), allow(dead_code))]
pub(crate) fn base64url(data: &[u8]) -> String {
    base64_with(
        data,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        false,
    )
}

#[cfg_attr(not(any(feature = "gcp", feature = "conformance")), allow(dead_code))]
fn base64_with(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Where monotonic "now" comes from; injected so that tests move time by hand. See the
/// module documentation for why there is also a [`WallClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Where wall-clock "now" comes from; injected so that tests move time by hand. Token expiry
/// is a wall-clock time (the issuer's), so this is [`SystemTime`], not `Instant`.
pub trait WallClock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemWallClock;

impl WallClock for SystemWallClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A [`WallClock`] that asks a function for the time (e.g. a closure running ahead of the
/// system clock). `Debug` does not show the function.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub(crate) struct FnWallClock<F>(pub(crate) F);

impl<F> fmt::Debug for FnWallClock<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnWallClock")
    }
}

impl<F: Fn() -> SystemTime + Send + Sync> WallClock for FnWallClock<F> {
    fn now(&self) -> SystemTime {
        (self.0)()
    }
}

/// A wait between half of `d` and all of it, so that the retries of many clients spread out.
#[cfg_attr(not(feature = "gcp"), allow(dead_code))]
pub(crate) fn jitter(d: Duration) -> Duration {
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
    fn base64url_matches_rfc4648_vectors_without_padding() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(input.as_bytes()), want);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn a_function_serves_as_a_wall_clock() {
        let at = UNIX_EPOCH + Duration::from_secs(1_724_709_600);
        let clock = FnWallClock(move || at);
        assert_eq!(WallClock::now(&clock), at);
        assert_eq!(format!("{clock:?}"), "FnWallClock");
        assert!(WallClock::now(&SystemWallClock) > at);
    }

    #[test]
    fn jitter_stays_between_half_and_whole() {
        for ms in [0, 1, 100, 250, 1000] {
            let d = Duration::from_millis(ms);
            let j = jitter(d);
            assert!(j >= d / 2 && j <= d, "{ms}: {j:?}");
        }
    }
}
