//! IAM database tokens: short-lived passwords issued by the cloud's identity service.
//!
//! Every source of tokens is a [`CredentialProvider`]: it fetches one [`Token`] (the password
//! and when it stops working). The providers:
//!
//! - AWS RDS / Aurora (feature `aws`, [`aws`]): a SigV4-presigned `connect` request, signed
//!   locally with credentials from the AWS default chain;
//! - GCP Cloud SQL (feature `gcp`, [`gcp`]): an OAuth2 access token with the
//!   `sqlservice.login` scope, from Application Default Credentials;
//! - Azure Database for PostgreSQL (feature `azure`, [`azure`]): an Entra ID token for
//!   `https://ossrdbms-aad.database.windows.net/.default`.
//!
//! [`cache::CachedProvider`] wraps any of them: refresh ahead of expiry, single-flight, an
//! injected clock, a lazy mode, and a forced refresh after a failed login. The pool
//! ([`crate::pool`]) asks it for a token at every new physical connection.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::error::Action;
use crate::secret::Secret;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
pub mod cache;
#[cfg(feature = "gcp")]
pub mod gcp;

/// A database token: the password to log in with, and when the issuer says it stops working.
/// `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The token, used as the password.
    pub secret: Secret,
    /// When it expires (the issuer's word, or the signing time plus the service's lifetime).
    pub expires_at: SystemTime,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &self.secret)
            .field("expires_at", &humantime_utc(self.expires_at))
            .finish()
    }
}

/// `2026-01-02T03:04:05Z` for a time after 1970 (seconds precision), for messages.
pub fn humantime_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), after H. Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// What went wrong while getting a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenErrorKind {
    /// The provider is not set up (no credentials found, a bad setting).
    Config,
    /// The identity service refused (401, 403, a bad client secret).
    Denied,
    /// The identity service could not be reached or failed (5xx, timeouts): worth retrying.
    Unavailable,
    /// The identity service answered with a token that has already expired, or with a body
    /// that is not a token.
    Invalid,
}

impl TokenErrorKind {
    /// A short name for reports: `config`, `denied`, `unavailable`, `invalid`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Denied => "denied",
            Self::Unavailable => "unavailable",
            Self::Invalid => "invalid",
        }
    }

    /// What the caller should do: `unavailable` may pass ([`Action::Retry`]), `denied` needs
    /// a grant, `config` a fix of the setup; an `invalid` answer needs a look.
    pub fn action(self) -> Action {
        match self {
            Self::Config => Action::FixConfig,
            Self::Denied => Action::FixPermissions,
            Self::Unavailable => Action::Retry,
            Self::Invalid => Action::Investigate,
        }
    }
}

/// Why a token could not be had. The message names the provider and never holds a
/// credential or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    provider: &'static str,
    kind: TokenErrorKind,
    message: String,
}

impl TokenError {
    /// An error of `provider` (`iam:aws-rds`, `iam:gcp`, `iam:azure`).
    pub fn new(provider: &'static str, kind: TokenErrorKind, message: impl Into<String>) -> Self {
        Self {
            provider,
            kind,
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> TokenErrorKind {
        self.kind
    }

    /// The provider that failed.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The message, without the provider's name.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.provider,
            crate::text::Escaped(&self.message)
        )
    }
}

impl std::error::Error for TokenError {}

/// A boxed token future.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Token, TokenError>> + Send + 'a>>;

/// A source of database tokens. Implementations fetch every time they are asked (their SDK may
/// cache the cloud credentials they sign with); [`cache::CachedProvider`] decides when to ask.
pub trait CredentialProvider: Send + Sync + fmt::Debug {
    /// The password source this provider serves, as the plan writes it: `iam:aws-rds`,
    /// `iam:gcp`, `iam:azure` (or another name for test providers).
    fn name(&self) -> &'static str;

    /// What identifies the token: two providers with the same key issue interchangeable
    /// tokens (RDS: `region:host:port:user`).
    fn key(&self) -> String;

    /// Gets a fresh token from the issuer.
    fn fetch(&self) -> TokenFuture<'_>;
}

/// The injectable wall clock; it lives in `shared.rs`, with the monotonic clock.
pub use crate::shared::{SystemWallClock, WallClock};

/// Where a pool or a connection gets its tokens.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// Through a shared, refreshing cache (the normal case).
    Cached(Arc<cache::CachedProvider>),
    /// Straight from the provider at every connection: no cache. What a naive integration
    /// does; kept for comparison in benches and for debugging.
    PerConnect(Arc<dyn CredentialProvider>),
}

impl TokenSource {
    /// The provider's name (`iam:aws-rds`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Cached(c) => c.name(),
            Self::PerConnect(p) => p.name(),
        }
    }

    /// A token to connect with.
    pub async fn token(&self) -> Result<Token, TokenError> {
        match self {
            Self::Cached(c) => c.token().await,
            Self::PerConnect(p) => p.fetch().await,
        }
    }

    /// A replacement for a token the server refused (see
    /// [`cache::CachedProvider::refresh_after_failure`]).
    pub async fn after_refusal(&self, refused: &Secret) -> Result<Token, TokenError> {
        match self {
            Self::Cached(c) => c.refresh_after_failure(refused).await,
            Self::PerConnect(p) => p.fetch().await,
        }
    }
}

/// The token provider a plan names (its `password_source` is `iam:...`), set up from `env`.
pub async fn provider_for(
    plan: &crate::plan::ConnectPlan,
    env: Arc<dyn crate::env::Environment>,
) -> Result<Arc<dyn CredentialProvider>, TokenError> {
    use crate::plan::{IamKind, Source};
    #[cfg(not(all(feature = "aws", feature = "gcp", feature = "azure")))]
    let _ = &env;
    let Source::Iam(kind) = plan.password_source else {
        return Err(TokenError::new(
            "iam",
            TokenErrorKind::Config,
            "the plan does not log in with an IAM token",
        ));
    };
    #[cfg(not(all(feature = "aws", feature = "gcp", feature = "azure")))]
    let unavailable = |name: &'static str, feature: &str| {
        TokenError::new(
            name,
            TokenErrorKind::Config,
            format!("this build has no {feature} support (cargo feature `{feature}`)"),
        )
    };
    match kind {
        #[cfg(feature = "aws")]
        IamKind::AwsRds => Ok(Arc::new(aws::RdsTokenProvider::from_plan(plan, env).await?)),
        #[cfg(not(feature = "aws"))]
        IamKind::AwsRds => Err(unavailable("iam:aws-rds", "aws")),
        #[cfg(feature = "gcp")]
        IamKind::Gcp => Ok(Arc::new(
            gcp::CloudSqlTokenProvider::from_plan(plan, env).await?,
        )),
        #[cfg(not(feature = "gcp"))]
        IamKind::Gcp => Err(unavailable("iam:gcp", "gcp")),
        #[cfg(feature = "azure")]
        IamKind::Azure => Ok(Arc::new(azure::EntraTokenProvider::from_plan(plan, env)?)),
        #[cfg(not(feature = "azure"))]
        IamKind::Azure => Err(unavailable("iam:azure", "azure")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn token_debug_hides_the_secret() {
        let token = Token {
            secret: Secret::new("tok-123".to_string()),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_724_709_600),
        };
        let shown = format!("{token:?}");
        assert!(!shown.contains("tok-123"), "{shown}");
        assert!(shown.contains("2024-08-26T22:00:00Z"), "{shown}");
    }

    #[test]
    fn utc_formatting_of_known_days() {
        let at = |s: u64| humantime_utc(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_798_761_599), "2026-12-31T23:59:59Z");
    }
}
