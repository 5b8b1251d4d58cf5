//! What the Azure SDK clients share (feature `azure`): the timeouts and retries of the Key
//! Vault backend and the Entra token provider, their HTTP client, and how the SDK's errors are
//! quoted in messages.

use std::error::Error as StdError;
use std::time::Duration;

use azure_core::error::ErrorKind as AzureErrorKind;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};

/// One HTTP attempt, connecting, sending and reading the whole answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connecting (TCP and TLS) within one attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Resends after the first attempt, for 408, 429, 5xx and transport failures.
pub const MAX_RETRIES: u32 = 3;
/// The first back-off; it doubles on each retry (plus up to 255 ms of jitter).
pub const RETRY_INITIAL_DELAY: Duration = Duration::from_millis(500);
/// The longest back-off the policy picks by itself (a `Retry-After` header may ask for more).
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(8);
/// One whole fetch: token request, challenge, retries and back-off included.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Timeouts and retries of one backend. [`Default`] gives the named constants; tests shorten
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AzureTimeouts {
    /// One HTTP attempt ([`REQUEST_TIMEOUT`]).
    pub request: Duration,
    /// Connecting within one attempt ([`CONNECT_TIMEOUT`]).
    pub connect: Duration,
    /// Resends after the first attempt ([`MAX_RETRIES`]).
    pub max_retries: u32,
    /// The first back-off ([`RETRY_INITIAL_DELAY`]).
    pub retry_initial_delay: Duration,
    /// The longest back-off the policy picks by itself ([`RETRY_MAX_DELAY`]; the SDK raises
    /// anything shorter to 1 s).
    pub retry_max_delay: Duration,
    /// One whole fetch ([`TOTAL_TIMEOUT`]).
    pub total: Duration,
}

impl Default for AzureTimeouts {
    fn default() -> Self {
        Self {
            request: REQUEST_TIMEOUT,
            connect: CONNECT_TIMEOUT,
            max_retries: MAX_RETRIES,
            retry_initial_delay: RETRY_INITIAL_DELAY,
            retry_max_delay: RETRY_MAX_DELAY,
            total: TOTAL_TIMEOUT,
        }
    }
}

impl AzureTimeouts {
    fn retry_options(&self) -> RetryOptions {
        RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: sdk_duration(self.retry_initial_delay),
            max_retries: self.max_retries,
            max_total_elapsed: sdk_duration(self.total),
            max_delay: sdk_duration(self.retry_max_delay),
        })
    }

    /// The SDK client options: this retry policy and `transport`.
    pub(crate) fn client_options(&self, transport: &Transport) -> ClientOptions {
        ClientOptions {
            retry: self.retry_options(),
            transport: Some(transport.clone()),
            ..ClientOptions::default()
        }
    }
}

fn sdk_duration(d: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The HTTP client of production for the Azure SDK (Key Vault and Entra tokens alike):
/// reqwest (rustls with the process's ring provider) with the attempt and connect timeouts, no
/// redirects (as the SDK's own client).
pub(crate) fn reqwest_client(timeouts: &AzureTimeouts) -> Result<reqwest::Client, reqwest::Error> {
    crate::shared::install_ring_provider();
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The SDK errors in `e`'s source chain, `e` first.
pub(crate) fn sdk_chain<'a>(
    e: &'a azure_core::Error,
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let first: &'a (dyn StdError + 'static) = e;
    std::iter::successors(Some(first), |e: &&'a (dyn StdError + 'static)| {
        (*e).source()
    })
}

/// The SDK's own text for `e`, unless something in its chain converted data (a parser error
/// could quote a token or a value).
pub(crate) fn safe_sdk_text(e: &azure_core::Error) -> Option<String> {
    let converted = sdk_chain(e).any(|e| {
        e.downcast_ref::<azure_core::Error>()
            .is_some_and(|e| matches!(e.kind(), AzureErrorKind::DataConversion))
            || e.is::<serde_json::Error>()
    });
    if converted {
        return None;
    }
    // `Display` of an SDK error is its message; keep the first line (the rest is a link).
    let text = shorten(e.to_string().lines().next().unwrap_or(""));
    (!text.is_empty()).then_some(text)
}

/// `text` trimmed and cut to 240 characters (with `...`), for messages.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 240;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}
