//! Sharing fetched secrets between connections, for a while.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{SecretError, SecretFuture, SecretsBackend};
use crate::secret::Secret;

/// How long a fetched secret is reused by default. Short enough that a rotated password is
/// picked up within minutes even without a failed login; a failed login refetches at once.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// The longest TTL accepted: one hour, the refresh interval of AWS's own Secrets Manager
/// caching client. Longer values are clamped.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// The injectable monotonic clock; it lives in `shared.rs`, with the wall clock.
pub use crate::shared::{Clock, SystemClock};

/// When a value fetched at `fetched` must be fetched again.
pub fn refresh_at(fetched: Instant, ttl: Duration) -> Instant {
    fetched + ttl.min(MAX_TTL)
}

struct Entry {
    value: Option<Secret>,
    fetched: Instant,
}

/// A backend wrapper that fetches each key once per TTL, shared by every caller. Fetches are
/// single-flight: callers that arrive while a fetch runs wait for it instead of fetching again.
pub struct CachedSecrets {
    backend: Arc<dyn SecretsBackend>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    entries: tokio::sync::Mutex<HashMap<String, Entry>>,
}

impl fmt::Debug for CachedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedSecrets")
            .field("backend", &self.backend)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl CachedSecrets {
    /// Wraps `backend`; `ttl` is clamped to [`MAX_TTL`].
    pub fn new(backend: Arc<dyn SecretsBackend>, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            backend,
            ttl: ttl.min(MAX_TTL),
            clock,
            entries: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The value of `key`, from the cache while it is fresh; `true` when it was fetched by
    /// this call (so that a failed login with it is not worth a refetch).
    pub async fn get_fresh(&self, key: &str) -> Result<(Option<Secret>, bool), SecretError> {
        let mut entries = self.entries.lock().await;
        let now = self.clock.now();
        if let Some(entry) = entries.get(key)
            && now < refresh_at(entry.fetched, self.ttl)
        {
            return Ok((entry.value.clone(), false));
        }
        // The backend and the outcome only: a key's name may come from the environment.
        let value = match self.backend.get(key).await {
            Ok(value) => {
                tracing::debug!(
                    backend = self.backend.name(),
                    found = value.is_some(),
                    ttl_s = self.ttl.as_secs(),
                    "secret fetched"
                );
                value
            }
            Err(e) => {
                tracing::warn!(
                    backend = self.backend.name(),
                    kind = e.kind().as_str(),
                    "secret fetch failed"
                );
                return Err(e);
            }
        };
        entries.insert(
            key.to_string(),
            Entry {
                value: value.clone(),
                fetched: now,
            },
        );
        Ok((value, true))
    }

    /// Forgets every cached value (after a failed login: the password may have rotated).
    pub async fn invalidate(&self) {
        self.entries.lock().await.clear();
    }
}

impl SecretsBackend for CachedSecrets {
    fn name(&self) -> &'static str {
        self.backend.name()
    }

    fn get<'a>(&'a self, key: &'a str) -> SecretFuture<'a> {
        Box::pin(async move { self.get_fresh(key).await.map(|(value, _)| value) })
    }

    fn locate(&self, key: &str) -> String {
        self.backend.locate(key)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Debug, Default)]
    struct Counting {
        fetches: AtomicUsize,
    }

    impl SecretsBackend for Counting {
        fn name(&self) -> &'static str {
            "test"
        }

        fn get<'a>(&'a self, key: &'a str) -> SecretFuture<'a> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                // Let concurrent callers pile up behind this fetch.
                tokio::task::yield_now().await;
                Ok(Some(Secret::new(format!("{key}-v{n}"))))
            })
        }
    }

    #[derive(Debug)]
    struct ManualClock(Mutex<Instant>);

    impl ManualClock {
        fn advance(&self, by: Duration) {
            let mut now = self.0.lock().expect("clock lock");
            *now += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().expect("clock lock")
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime")
    }

    #[test]
    fn refresh_at_clamps_the_ttl() {
        let t = Instant::now();
        assert_eq!(
            refresh_at(t, Duration::from_secs(10)),
            t + Duration::from_secs(10)
        );
        assert_eq!(refresh_at(t, Duration::from_secs(86_400)), t + MAX_TTL);
    }

    #[test]
    fn a_value_is_fetched_once_per_ttl_and_again_after_invalidate() {
        let backend = Arc::new(Counting::default());
        let clock = Arc::new(ManualClock(Mutex::new(Instant::now())));
        let cache = CachedSecrets::new(backend.clone(), Duration::from_secs(60), clock.clone());
        runtime().block_on(async {
            let (v1, fresh1) = cache.get_fresh("password").await.expect("fetch");
            let (v2, fresh2) = cache.get_fresh("password").await.expect("cached");
            assert!(fresh1 && !fresh2);
            assert_eq!(v1, v2);
            clock.advance(Duration::from_secs(59));
            assert!(!cache.get_fresh("password").await.expect("cached").1);
            clock.advance(Duration::from_secs(1));
            let (v3, fresh3) = cache.get_fresh("password").await.expect("refetch");
            assert!(fresh3);
            assert_eq!(
                v3.map(|s| s.expose().to_string()),
                Some("password-v2".into())
            );
            cache.invalidate().await;
            assert!(cache.get_fresh("password").await.expect("refetch").1);
        });
        assert_eq!(backend.fetches.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_thousand_concurrent_callers_cause_one_fetch() {
        let backend = Arc::new(Counting::default());
        let cache = Arc::new(CachedSecrets::new(
            backend.clone(),
            DEFAULT_TTL,
            Arc::new(SystemClock),
        ));
        runtime().block_on(async {
            let tasks: Vec<_> = (0..1000)
                .map(|_| {
                    let cache = cache.clone();
                    tokio::spawn(async move { cache.get("password").await })
                })
                .collect();
            for task in tasks {
                let value = task.await.expect("task").expect("value");
                assert_eq!(
                    value.map(|s| s.expose().to_string()),
                    Some("password-v1".into())
                );
            }
        });
        assert_eq!(backend.fetches.load(Ordering::SeqCst), 1);
    }
}
