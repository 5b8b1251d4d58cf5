//! Sharing one token between connections, and getting the next one before it is needed.
//!
//! [`CachedProvider`] wraps any [`CredentialProvider`]:
//!
//! - **Refresh ahead.** A token is used until [`refresh_at`] (its expiry less a margin, by
//!   default [`REFRESH_MARGIN`]); after that the next token is fetched while the current one
//!   is still handed out. In [`TokenRefresh::Ahead`] (the default) that fetch runs in the
//!   background, from a timer ([`CachedProvider::start`]) or from the first caller past the
//!   refresh time, so a caller never waits on the token endpoint while a valid token is held.
//!   [`TokenRefresh::Lazy`] runs no timer and refreshes inline, on connect: for CPU-throttled
//!   serverless hosts where background work may not get to run.
//! - **Single flight.** However many callers arrive together, one fetch runs; the others wait
//!   for it (when there is no valid token) or keep using the current token.
//! - **Failures.** When a refresh fails while the current token is still valid, the current
//!   token keeps being used and the next attempt waits [`RETRY_BACKOFF`]; only a caller with no
//!   valid token sees the error. A token that arrives already expired is an error
//!   ([`TokenErrorKind::Invalid`]) and is not cached.
//! - **After a failed login** ([`CachedProvider::refresh_after_failure`]): a token the server
//!   refused is replaced by a fresh one, once, even before its expiry.
//! - **Keyed** ([`TokenCaches`]): providers with the same [`CredentialProvider::key`] (RDS:
//!   `region:host:port:user`) share one cache, so two pools for one database fetch once.
//!
//! The clock is injected ([`WallClock`]), and the counters ([`CacheStats`]) say how many fetches
//! ran and how many callers had to wait for one.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use super::{
    CredentialProvider, SystemWallClock, Token, TokenError, TokenErrorKind, WallClock,
    humantime_utc,
};
use crate::config::TokenRefresh;
use crate::secret::Secret;

/// How long before its expiry a token is replaced, by default: five minutes, so that an RDS
/// token (15 minutes) is used for 10, and an hour-long OAuth or Entra token for 55.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// How long to wait after a failed refresh before trying again, while the current token is
/// still valid.
pub const RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// When a token fetched at `now` that expires at `expiry` must be replaced: `margin` before its
/// expiry, or halfway through its life when it lives less than twice the margin (short-lived
/// tokens still get half their life of use and half of refresh time). Never before `now`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use tea_pgcloud::iam::cache::{refresh_at, REFRESH_MARGIN};
/// let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
/// // An RDS token (900 s): used for 600 s.
/// assert_eq!(refresh_at(now, now + Duration::from_secs(900), REFRESH_MARGIN), now + Duration::from_secs(600));
/// // A 60 s token: used for 30 s.
/// assert_eq!(refresh_at(now, now + Duration::from_secs(60), REFRESH_MARGIN), now + Duration::from_secs(30));
/// ```
pub fn refresh_at(now: SystemTime, expiry: SystemTime, margin: Duration) -> SystemTime {
    let Ok(life) = expiry.duration_since(now) else {
        return now;
    };
    if life > margin.saturating_mul(2) {
        expiry - margin
    } else {
        now + life / 2
    }
}

/// How a [`CachedProvider`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOptions {
    /// How long before expiry a token is replaced (see [`refresh_at`]).
    pub margin: Duration,
    /// Background or inline refresh.
    pub mode: TokenRefresh,
    /// The pause after a failed refresh while the current token is still valid.
    pub retry_backoff: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            margin: REFRESH_MARGIN,
            mode: TokenRefresh::Ahead,
            retry_backoff: RETRY_BACKOFF,
        }
    }
}

/// What a cache has done, for tests, benches and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Token requests sent to the provider.
    pub fetches: u64,
    /// Fetches that failed.
    pub failures: u64,
    /// Calls to [`CachedProvider::token`] that waited for a fetch (there was no valid token,
    /// or the mode is lazy and the token was due).
    pub waits: u64,
    /// Calls to [`CachedProvider::token`] in all.
    pub calls: u64,
    /// Calls to [`CachedProvider::refresh_after_failure`]: logins the server refused with a
    /// token from this cache (several refusals of one token share one replacement).
    pub refused: u64,
}

#[derive(Default)]
struct Counters {
    fetches: AtomicU64,
    failures: AtomicU64,
    waits: AtomicU64,
    calls: AtomicU64,
    refused: AtomicU64,
}

#[derive(Clone)]
struct Current {
    token: Token,
    refresh_at: SystemTime,
}

#[derive(Default)]
struct State {
    current: Option<Current>,
    /// Fetches completed, successful or not: a caller that waited for the fetch lock and sees
    /// this changed takes that fetch's outcome instead of fetching again (single flight, for
    /// failures too).
    attempts: u64,
    /// No background refresh before this time (after a failure).
    not_before: Option<SystemTime>,
    last_error: Option<TokenError>,
}

/// A [`CredentialProvider`] behind a shared, refreshing cache. Create with
/// [`CachedProvider::new`] (or share one per key with [`TokenCaches`]).
pub struct CachedProvider {
    provider: Arc<dyn CredentialProvider>,
    clock: Arc<dyn WallClock>,
    options: CacheOptions,
    state: Mutex<State>,
    fetch_lock: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
    stopped: AtomicBool,
    timer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    counters: Counters,
}

impl fmt::Debug for CachedProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock_state();
        let expires = state
            .current
            .as_ref()
            .map(|c| humantime_utc(c.token.expires_at));
        drop(state);
        f.debug_struct("CachedProvider")
            .field("provider", &self.provider)
            .field("options", &self.options)
            .field("token_expires_at", &expires)
            .finish_non_exhaustive()
    }
}

/// Clears the `refreshing` flag however the background refresh ends (done, panicked, or
/// dropped with its runtime).
struct RefreshingGuard(Arc<CachedProvider>);

impl Drop for RefreshingGuard {
    fn drop(&mut self) {
        self.0.refreshing.store(false, Ordering::Release);
    }
}

impl CachedProvider {
    /// Wraps `provider`; `clock` says what time it is.
    pub fn new(
        provider: Arc<dyn CredentialProvider>,
        options: CacheOptions,
        clock: Arc<dyn WallClock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            provider,
            clock,
            options,
            state: Mutex::new(State::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            timer: Mutex::new(None),
            counters: Counters::default(),
        })
    }

    /// Wraps `provider` with the default options and the system clock.
    pub fn with_defaults(provider: Arc<dyn CredentialProvider>) -> Arc<Self> {
        Self::new(provider, CacheOptions::default(), Arc::new(SystemWallClock))
    }

    /// The wrapped provider's name (`iam:aws-rds`, ...).
    pub fn name(&self) -> &'static str {
        self.provider.name()
    }

    /// The wrapped provider's key.
    pub fn key(&self) -> String {
        self.provider.key()
    }

    /// How this cache behaves.
    pub fn options(&self) -> CacheOptions {
        self.options
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            fetches: c.fetches.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            waits: c.waits.load(Ordering::Relaxed),
            calls: c.calls.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }

    /// The last fetch error, if the last fetch failed.
    pub fn last_error(&self) -> Option<TokenError> {
        self.lock_state().last_error.clone()
    }

    /// When the current token is due for replacement, if there is one.
    pub fn refresh_due(&self) -> Option<SystemTime> {
        self.lock_state().current.as_ref().map(|c| c.refresh_at)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written (every update
        // is one assignment), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A valid token: the cached one, or a fresh one when there is none. Past the refresh
    /// time, [`TokenRefresh::Ahead`] starts a background refresh and returns the current token
    /// at once; [`TokenRefresh::Lazy`] fetches inline (single-flight) and falls back to the
    /// current token if that fails.
    pub async fn token(self: &Arc<Self>) -> Result<Token, TokenError> {
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        let (current, attempts, backing_off) = {
            let state = self.lock_state();
            let backing_off = state.not_before.is_some_and(|t| now < t);
            (state.current.clone(), state.attempts, backing_off)
        };
        if let Some(current) = current
            && now < current.token.expires_at
        {
            if now < current.refresh_at || backing_off {
                return Ok(current.token);
            }
            match self.options.mode {
                TokenRefresh::Ahead => {
                    self.spawn_refresh(attempts);
                    return Ok(current.token);
                }
                TokenRefresh::Lazy => {
                    self.counters.waits.fetch_add(1, Ordering::Relaxed);
                    return match self.fetch_shared(attempts).await {
                        Ok(token) => Ok(token),
                        // Still valid: use it, and try again after the backoff.
                        Err(_) if self.clock.now() < current.token.expires_at => Ok(current.token),
                        Err(e) => Err(e),
                    };
                }
            }
        }
        self.counters.waits.fetch_add(1, Ordering::Relaxed);
        self.fetch_shared(attempts).await
    }

    /// Fetches a new token now, whatever the cache holds (single-flight: callers that arrive
    /// during a fetch share its outcome).
    pub async fn force_refresh(self: &Arc<Self>) -> Result<Token, TokenError> {
        let attempts = self.lock_state().attempts;
        self.fetch_shared(attempts).await
    }

    /// A replacement for `refused`, a token the server turned down: the current token when
    /// it is already a different one, else a fresh fetch (shared with every caller refused at
    /// the same time). Call it once per failed login; a second failure with the fresh token
    /// is the caller's error to report.
    pub async fn refresh_after_failure(
        self: &Arc<Self>,
        refused: &Secret,
    ) -> Result<Token, TokenError> {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        let (current, attempts) = {
            let state = self.lock_state();
            (state.current.clone(), state.attempts)
        };
        let now = self.clock.now();
        match current {
            Some(c) if c.token.secret != *refused && now < c.token.expires_at => Ok(c.token),
            _ => self.fetch_shared(attempts).await,
        }
    }

    /// Drops the cached token: the next call fetches.
    pub fn invalidate(&self) {
        self.lock_state().current = None;
    }

    /// Starts the background refresher of [`TokenRefresh::Ahead`]: a task that sleeps until
    /// the current token is due and refreshes it, so that even after a long idle spell a
    /// caller finds a valid token. It holds only a weak reference: it ends when the cache is
    /// dropped. Does nothing in lazy mode, outside a tokio runtime, after [`Self::stop`], or
    /// while a refresher runs (one whose runtime has ended is replaced).
    pub fn start(self: &Arc<Self>) {
        if self.options.mode != TokenRefresh::Ahead
            || self.stopped.load(Ordering::Acquire)
            || tokio::runtime::Handle::try_current().is_err()
        {
            return;
        }
        let mut timer = self
            .timer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if timer.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let weak = Arc::downgrade(self);
        *timer = Some(tokio::spawn(async move {
            loop {
                let Some(cache) = weak.upgrade() else { return };
                let now = cache.clock.now();
                let (wait, attempts, has_token) = {
                    let state = cache.lock_state();
                    let due = match (&state.current, state.not_before) {
                        (Some(c), Some(nb)) => c.refresh_at.max(nb),
                        (Some(c), None) => c.refresh_at,
                        // No token yet (or it was dropped): the first caller fetches; look
                        // again in a while.
                        (None, _) => now + cache.options.retry_backoff,
                    };
                    (
                        due.duration_since(now).unwrap_or(Duration::ZERO),
                        state.attempts,
                        state.current.is_some(),
                    )
                };
                drop(cache);
                if wait > Duration::ZERO {
                    // At most a minute at a time, so that a token stored meanwhile with an
                    // earlier refresh time is not overslept by long.
                    tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
                    continue;
                }
                let Some(cache) = weak.upgrade() else { return };
                if has_token {
                    // Errors are recorded (last_error, backoff); the loop goes on.
                    let _ = cache.fetch_if_unchanged(attempts).await;
                }
                drop(cache);
                // Let at least a moment pass, so that a clock that does not move cannot spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    /// Stops background refreshing (the timer, and refreshes started by callers) and waits
    /// for a fetch in flight to end. Callers still get tokens, fetched inline when needed.
    /// For orderly shutdown, and for tests that read the counters.
    pub async fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(timer) = self
            .timer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            timer.abort();
        }
        let _quiet = self.fetch_lock.lock().await;
    }

    /// Starts one background refresh unless one is running; `attempts` is the fetch count
    /// seen with the due token, so a refresh that completed meanwhile is not repeated.
    fn spawn_refresh(self: &Arc<Self>, attempts: u64) {
        if self.stopped.load(Ordering::Acquire)
            || tokio::runtime::Handle::try_current().is_err()
            || self.refreshing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let guard = RefreshingGuard(Arc::clone(self));
        tokio::spawn(async move {
            let _ = guard.0.fetch_if_unchanged(attempts).await;
            drop(guard);
        });
    }

    /// [`Self::fetch_if_unchanged`] on a task of its own: a caller that gives up (a timeout
    /// around `Pool::get`) does not abandon the fetch, whose token the next caller then finds.
    async fn fetch_shared(self: &Arc<Self>, attempts: u64) -> Result<Token, TokenError> {
        let cache = Arc::clone(self);
        match tokio::spawn(async move { cache.fetch_if_unchanged(attempts).await }).await {
            Ok(result) => result,
            Err(e) => Err(TokenError::new(
                self.provider.name(),
                TokenErrorKind::Unavailable,
                format!("the token fetch did not complete: {e}"),
            )),
        }
    }

    /// Fetches unless a fetch completed since the caller saw `attempts` (then that fetch's
    /// outcome is the answer: its token while valid, or its error).
    async fn fetch_if_unchanged(&self, attempts: u64) -> Result<Token, TokenError> {
        let _guard = self.fetch_lock.lock().await;
        {
            let state = self.lock_state();
            if state.attempts != attempts {
                match (&state.last_error, &state.current) {
                    (Some(e), _) => return Err(e.clone()),
                    (None, Some(current)) if self.clock.now() < current.token.expires_at => {
                        return Ok(current.token.clone());
                    }
                    // Invalidated or expired since: fetch.
                    _ => {}
                }
            }
        }
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.provider.fetch().await;
        let now = self.clock.now();
        let result = result.and_then(|token| {
            if token.expires_at <= now {
                Err(TokenError::new(
                    self.provider.name(),
                    TokenErrorKind::Invalid,
                    format!(
                        "the identity service returned a token that expired at {}",
                        humantime_utc(token.expires_at)
                    ),
                ))
            } else {
                Ok(token)
            }
        });
        let mut state = self.lock_state();
        state.attempts += 1;
        match &result {
            Ok(token) => {
                let refresh = refresh_at(now, token.expires_at, self.options.margin);
                // The schedule, never the token.
                tracing::info!(
                    provider = self.provider.name(),
                    expires_in_s = secs_between(now, token.expires_at),
                    refresh_in_s = secs_between(now, refresh),
                    "token fetched"
                );
                state.current = Some(Current {
                    token: token.clone(),
                    refresh_at: refresh,
                });
                state.not_before = None;
                state.last_error = None;
            }
            Err(e) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    provider = self.provider.name(),
                    kind = ?e.kind(),
                    retry_in_s = self.options.retry_backoff.as_secs_f64(),
                    error = %e,
                    "token fetch failed"
                );
                state.not_before = Some(now + self.options.retry_backoff);
                state.last_error = Some(e.clone());
            }
        }
        result
    }
}

/// Whole seconds from `now` to `then` (0 when `then` has passed).
fn secs_between(now: SystemTime, then: SystemTime) -> u64 {
    then.duration_since(now).map_or(0, |d| d.as_secs())
}

/// Caches shared by key: [`TokenCaches::get_or_insert`] returns the live cache for a provider's
/// key, or makes one. Entries are weak: a cache no pool uses any more is dropped.
#[derive(Default)]
pub struct TokenCaches {
    caches: Mutex<HashMap<String, Weak<CachedProvider>>>,
}

impl fmt::Debug for TokenCaches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .caches
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("TokenCaches").field("keys", &keys).finish()
    }
}

impl TokenCaches {
    /// The process-wide set.
    pub fn global() -> &'static TokenCaches {
        static GLOBAL: OnceLock<TokenCaches> = OnceLock::new();
        GLOBAL.get_or_init(TokenCaches::default)
    }

    /// The cache for `provider`'s name and key, made with `options` and `clock` if there is
    /// none yet (an existing cache keeps its own options).
    pub fn get_or_insert(
        &self,
        provider: Arc<dyn CredentialProvider>,
        options: CacheOptions,
        clock: Arc<dyn WallClock>,
    ) -> Arc<CachedProvider> {
        let key = format!("{}|{}", provider.name(), provider.key());
        let mut caches = self
            .caches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        caches.retain(|_, weak| weak.strong_count() > 0);
        if let Some(cache) = caches.get(&key).and_then(Weak::upgrade) {
            return cache;
        }
        let cache = CachedProvider::new(provider, options, clock);
        caches.insert(key, Arc::downgrade(&cache));
        cache
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::iam::TokenFuture;

    /// A clock moved by hand.
    #[derive(Debug)]
    struct ManualClock(Mutex<SystemTime>);

    impl ManualClock {
        fn new() -> Arc<Self> {
            Arc::new(Self(Mutex::new(
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            )))
        }
        fn advance(&self, d: Duration) {
            let mut t = self.0.lock().expect("clock");
            *t += d;
        }
    }

    impl WallClock for ManualClock {
        fn now(&self) -> SystemTime {
            *self.0.lock().expect("clock")
        }
    }

    /// Issues `tok-N` valid for `life` from the manual clock's now, after `delay`; fails while
    /// `fail` is set.
    #[derive(Debug)]
    struct Issuer {
        clock: Arc<ManualClock>,
        life: Duration,
        delay: Duration,
        issued: AtomicUsize,
        fail: AtomicBool,
        expired: AtomicBool,
    }

    impl Issuer {
        fn new(clock: &Arc<ManualClock>, life: Duration, delay: Duration) -> Arc<Self> {
            Arc::new(Self {
                clock: Arc::clone(clock),
                life,
                delay,
                issued: AtomicUsize::new(0),
                fail: AtomicBool::new(false),
                expired: AtomicBool::new(false),
            })
        }
    }

    impl CredentialProvider for Issuer {
        fn name(&self) -> &'static str {
            "iam:test"
        }
        fn key(&self) -> String {
            "test".into()
        }
        fn fetch(&self) -> TokenFuture<'_> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                if self.fail.load(Ordering::SeqCst) {
                    return Err(TokenError::new(
                        "iam:test",
                        TokenErrorKind::Unavailable,
                        "503",
                    ));
                }
                let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
                let now = self.clock.now();
                let expires_at = if self.expired.load(Ordering::SeqCst) {
                    now - Duration::from_secs(1)
                } else {
                    now + self.life
                };
                Ok(Token {
                    secret: Secret::new(format!("tok-{n}")),
                    expires_at,
                })
            })
        }
    }

    fn cache(
        issuer: &Arc<Issuer>,
        clock: &Arc<ManualClock>,
        mode: TokenRefresh,
    ) -> Arc<CachedProvider> {
        CachedProvider::new(
            Arc::clone(issuer) as Arc<dyn CredentialProvider>,
            CacheOptions {
                mode,
                ..CacheOptions::default()
            },
            Arc::clone(clock) as Arc<dyn WallClock>,
        )
    }

    const RDS: Duration = Duration::from_secs(900);

    #[test]
    fn refresh_at_rules() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let s = Duration::from_secs;
        // Long-lived: margin before expiry.
        assert_eq!(
            refresh_at(now, now + s(3600), REFRESH_MARGIN),
            now + s(3300)
        );
        // Exactly twice the margin: half-life.
        assert_eq!(refresh_at(now, now + s(600), REFRESH_MARGIN), now + s(300));
        // Short: half-life.
        assert_eq!(refresh_at(now, now + s(10), REFRESH_MARGIN), now + s(5));
        // Already expired: now.
        assert_eq!(refresh_at(now, now - s(10), REFRESH_MARGIN), now);
        // Never after expiry, never before now.
        for life in [0u64, 1, 2, 299, 300, 601, 900, 86_400] {
            let at = refresh_at(now, now + s(life), REFRESH_MARGIN);
            assert!(at >= now && at <= now + s(life), "life {life}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_concurrent_callers_cause_one_fetch() {
        let clock = ManualClock::new();
        let issuer = Issuer::new(&clock, RDS, Duration::from_millis(50));
        let cache = cache(&issuer, &clock, TokenRefresh::Ahead);
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let cache = Arc::clone(&cache);
                tokio::spawn(async move { cache.token().await })
            })
            .collect();
        for t in tasks {
            let token = t.await.expect("joins").expect("token");
            assert_eq!(token.secret.expose(), "tok-1");
        }
        assert_eq!(issuer.issued.load(Ordering::SeqCst), 1);
        let stats = cache.stats();
        assert_eq!((stats.fetches, stats.calls), (1, 1000));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_failed_fetch_too() {
        let clock = ManualClock::new();
        let issuer = Issuer::new(&clock, RDS, Duration::from_millis(50));
        issuer.fail.store(true, Ordering::SeqCst);
        let cache = cache(&issuer, &clock, TokenRefresh::Ahead);
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let cache = Arc::clone(&cache);
                tokio::spawn(async move { cache.token().await })
            })
            .collect();
        for t in tasks {
            let err = t.await.expect("joins").expect_err("the issuer is down");
            assert_eq!(err.kind(), TokenErrorKind::Unavailable);
        }
        assert_eq!(cache.stats().fetches, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_gives_up_does_not_abandon_the_fetch() {
        let clock = ManualClock::new();
        let issuer = Issuer::new(&clock, RDS, Duration::from_millis(300));
        let cache = cache(&issuer, &clock, TokenRefresh::Ahead);
        let impatient = tokio::time::timeout(Duration::from_millis(50), cache.token()).await;
        assert!(impatient.is_err(), "gave up before the issuer answered");
        tokio::time::sleep(Duration::from_millis(400)).await;
        // The fetch went on and its token is cached: no second fetch.
        assert_eq!(
            cache.token().await.expect("cached").secret.expose(),
            "tok-1"
        );
        assert_eq!(cache.stats().fetches, 1);
    }

    #[tokio::test]
    async fn ahead_mode_serves_the_current_token_while_refreshing_in_the_background() {
        let clock = ManualClock::new();
        let issuer = Issuer::new(&clock, RDS, Duration::from_millis(20));
        let cache = cache(&issuer, &clock, TokenRefresh::Ahead);
        assert_eq!(cache.token().await.expect("first").secret.expose(), "tok-1");
        // Not due yet: no fetch.
        clock.advance(Duration::from_secs(599));
        assert_eq!(
            cache.token().await.expect("cached").secret.expose(),
            "tok-1"
        );
        assert_eq!(cache.stats().fetches, 1);
        // Due (600 s): the current token comes back at once, and a refresh starts.
        clock.advance(Duration::from_secs(2));
        assert_eq!(cache.token().await.expect("due").secret.expose(), "tok-1");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(cache.token().await.expect("new").secret.expose(), "tok-2");
        let stats = cache.stats();
        assert_eq!(stats.fetches, 2);
        // Only the very first call waited.
        assert_eq!(stats.waits, 1);
    }

    #[tokio::test]
    async fn lazy_mode_refreshes_inline_when_due() {
        let clock = ManualClock::new();
        let issuer = Issuer::new(&clock, RDS, Duration::ZERO);
        let cache = cache(&issuer, &clock, TokenRefresh::Lazy);
        assert_eq!(cache.token().await.expect("first").secret.expose(), "tok-1");
        clock.advance(Duration::from_secs(601));
        assert_eq!(
            cache.token().await.expect("inline").secret.expose(),
            "tok-2"
        );
        assert_eq!(cache.stats().waits, 2);
        // The timer does not run in lazy mode.
        cache.start();
        assert!(cache.timer.lock().expect("timer").is_none());
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_valid_token_and_backs_off() {
        let clock = ManualClock::new();
        let issuer = Issuer::new(&clock, RDS, Duration::ZERO);
        let cache = cache(&issuer, &clock, TokenRefresh::Lazy);
        cache.token().await.expect("first");
        issuer.fail.store(true, Ordering::SeqCst);
        clock.advance(Duration::from_secs(700));
        // Due, the refresh fails, the old token is still valid until 900 s.
        assert_eq!(
            cache.token().await.expect("fallback").secret.expose(),
            "tok-1"
        );
        assert_eq!(
            cache.last_error().map(|e| e.kind()),
            Some(TokenErrorKind::Unavailable)
        );
        // Within the backoff: no new attempt.
        assert_eq!(
            cache.token().await.expect("backoff").secret.expose(),
            "tok-1"
        );
        assert_eq!(cache.stats().fetches, 2);
        // Past expiry with the issuer still down: the caller sees the error.
        clock.advance(Duration::from_secs(300));
        let err = cache.token().await.expect_err("expired and down");
        assert_eq!(err.kind(), TokenErrorKind::Unavailable);
        // The issuer recovers.
        issuer.fail.store(false, Ordering::SeqCst);
        assert_eq!(
            cache.token().await.expect("recovered").secret.expose(),
            "tok-2"
        );
    }

    #[tokio::test]
    async fn an_expired_token_from_the_issuer_is_an_error_and_not_cached() {
        let clock = ManualClock::new();
        let issuer = Issuer::new(&clock, RDS, Duration::ZERO);
        issuer.expired.store(true, Ordering::SeqCst);
        let cache = cache(&issuer, &clock, TokenRefresh::Ahead);
        let err = cache.token().await.expect_err("expired");
        assert_eq!(err.kind(), TokenErrorKind::Invalid);
        assert!(!err.to_string().contains("tok-"), "{err}");
        issuer.expired.store(false, Ordering::SeqCst);
        assert_eq!(cache.token().await.expect("good").secret.expose(), "tok-2");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_token_is_replaced_once_for_all_callers() {
        let clock = ManualClock::new();
        let issuer = Issuer::new(&clock, RDS, Duration::from_millis(30));
        let cache = cache(&issuer, &clock, TokenRefresh::Ahead);
        let refused = cache.token().await.expect("first").secret;
        // Fifty connections fail with the same token at once: one fetch replaces it.
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let cache = Arc::clone(&cache);
                let refused = refused.clone();
                tokio::spawn(async move { cache.refresh_after_failure(&refused).await })
            })
            .collect();
        for t in tasks {
            let token = t.await.expect("joins").expect("token");
            assert_eq!(token.secret.expose(), "tok-2");
        }
        assert_eq!(cache.stats().fetches, 2);
        assert_eq!(cache.stats().refused, 50);
        // force_refresh always fetches.
        assert_eq!(
            cache.force_refresh().await.expect("forced").secret.expose(),
            "tok-3"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_refreshes_without_callers() {
        // A real clock is needed for the timer; time is paused and auto-advanced by tokio,
        // while the wall clock is the manual one, moved in step below.
        let clock = ManualClock::new();
        let issuer = Issuer::new(&clock, Duration::from_secs(60), Duration::ZERO);
        let cache = cache(&issuer, &clock, TokenRefresh::Ahead);
        cache.token().await.expect("first");
        cache.start();
        // Due at 30 s: move both clocks past it.
        clock.advance(Duration::from_secs(31));
        tokio::time::sleep(Duration::from_secs(31)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(issuer.issued.load(Ordering::SeqCst), 2);
        assert_eq!(cache.token().await.expect("fresh").secret.expose(), "tok-2");
        assert_eq!(cache.stats().waits, 1);
    }

    #[test]
    fn caches_are_shared_by_key_and_dropped_with_their_users() {
        let clock = ManualClock::new();
        let caches = TokenCaches::default();
        let a = caches.get_or_insert(
            Issuer::new(&clock, RDS, Duration::ZERO),
            CacheOptions::default(),
            Arc::clone(&clock) as Arc<dyn WallClock>,
        );
        let b = caches.get_or_insert(
            Issuer::new(&clock, RDS, Duration::ZERO),
            CacheOptions::default(),
            Arc::clone(&clock) as Arc<dyn WallClock>,
        );
        assert!(Arc::ptr_eq(&a, &b));
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none());
        assert!(format!("{caches:?}").contains("test"));
    }
}
