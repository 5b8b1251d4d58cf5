//! The live rotation soak: a pool logging in with Cloud SQL IAM tokens keeps working while
//! the tokens rotate and connections churn.
//!
//! - The token issuer is the OAuth token endpoint emulator; the real provider
//!   ([`CloudSqlTokenProvider`], service-account key, JWT-bearer grant) fetches from it.
//! - The launched PostgreSQL stands in for Cloud SQL's token check: when the emulator issues a
//!   token, the harness makes it the role's password ([`RoleRotator`]) before the answer is
//!   sent, and the previous token stops working at once (harsher than Cloud SQL, where it
//!   stays valid until it expires).
//! - Tokens live 3 s, so refresh-ahead replaces them every 1.5 s; connections live at most
//!   150 ms, so new physical connections (each asking the cache for a token) are made all the
//!   time.
//!
//! The soak passes when at least 10,000 acquisitions from 16 tasks succeed, with zero
//! failures, while the password rotates at least 20 times; the emulator's request count proves
//! that the cache and single-flight stood between thousands of connections and the issuer.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tea_pgcloud::config::TokenRefresh;
use tea_pgcloud::conformance::emulators::gcp_token::OAuthTokenEmulator;
use tea_pgcloud::conformance::rotation::{RoleRotator, RotatingIssuer};
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::iam::cache::{CacheOptions, CachedProvider};
use tea_pgcloud::iam::{CredentialProvider, SystemWallClock, TokenSource};
use tea_pgcloud::pool::{HealthCheck, Pool, PoolOptions};

const INSTANCE: &str = "my-project:us-central1:ltm";
const SA_EMAIL: &str = "ltm-agent@my-project.iam.gserviceaccount.com";
const DB_USER: &str = "ltm-agent@my-project.iam";

const TASKS: usize = 16;
const MIN_ACQUISITIONS: u64 = 10_000;
const MIN_ROTATIONS: u64 = 20;
/// The soak gives up (and fails) after this long.
const CAP: Duration = Duration::from_secs(180);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Setup {
    server: tea_pgcloud::conformance::launcher::PgServer,
    rotator: Arc<RoleRotator>,
    oauth: OAuthTokenEmulator,
    cache: Arc<CachedProvider>,
    plan: tea_pgcloud::plan::ConnectPlan,
}

async fn setup(name: &str, expires_in: i64, mode: TokenRefresh) -> Setup {
    let server = common::plain_server(name);
    let issuer = RotatingIssuer::start(&server, SA_EMAIL, expires_in)
        .await
        .expect("a rotating issuer");
    assert_eq!(issuer.role(), DB_USER);
    let provider = issuer
        .provider(INSTANCE, Duration::from_secs(5))
        .await
        .expect("a provider");
    let plan = common::plan_of(&issuer.plain_yaml(&server, "postgres"));
    let RotatingIssuer {
        emulator: oauth,
        rotator,
        ..
    } = issuer;
    assert_eq!(provider.user(), DB_USER);
    let cache = CachedProvider::new(
        Arc::new(provider) as Arc<dyn CredentialProvider>,
        CacheOptions {
            mode,
            retry_backoff: Duration::from_millis(200),
            ..CacheOptions::default()
        },
        Arc::new(SystemWallClock),
    );
    assert_eq!(plan.password_source.to_string(), "iam:gcp");
    assert_eq!(plan.user.as_deref(), Some(DB_USER));
    Setup {
        server,
        rotator,
        oauth,
        cache,
        plan,
    }
}

#[test]
fn soak_ten_thousand_acquisitions_through_twenty_rotations() {
    common::block_on_multi(async {
        let Setup {
            server,
            rotator,
            oauth,
            cache,
            plan,
        } = setup("iam-soak", 3, TokenRefresh::Ahead).await;
        let pool = Pool::builder(plan, Arc::new(MapEnv::new()))
            .tokens(TokenSource::Cached(Arc::clone(&cache)))
            .options(PoolOptions {
                min_size: 2,
                max_size: 8,
                max_lifetime: Some(Duration::from_millis(150)),
                health_check: HealthCheck::Verified,
                wait_timeout: Some(Duration::from_secs(30)),
                ..PoolOptions::default()
            })
            .build()
            .await
            .expect("a pool");
        // Building the pool started the cache's refresher (not started here, so that a pool
        // that forgot to would fail the waits check below).
        // Building the pool opened `min_size` connections together: one fetched the first
        // token, the other waited for it. From here on, nobody may wait.
        let waits_at_start = cache.stats().waits;
        assert!(waits_at_start <= 2, "{:?}", cache.stats());

        let acquisitions = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let done = {
            let acquisitions = Arc::clone(&acquisitions);
            let rotator = Arc::clone(&rotator);
            move || {
                acquisitions.load(Ordering::Relaxed) >= MIN_ACQUISITIONS
                    && rotator.rotations() >= MIN_ROTATIONS
            }
        };
        let done = Arc::new(done);
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let pool = pool.clone();
                let acquisitions = Arc::clone(&acquisitions);
                let failures = Arc::clone(&failures);
                let done = Arc::clone(&done);
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut first_error = None;
                    while !done() && started.elapsed() < CAP {
                        let t = Instant::now();
                        match pool.get().await {
                            Ok(client) => {
                                latencies.push(t.elapsed());
                                match client.query_one("SELECT current_user::text", &[]).await {
                                    Ok(row) if row.get::<_, String>(0) == DB_USER => {
                                        acquisitions.fetch_add(1, Ordering::Relaxed);
                                    }
                                    other => {
                                        failures.fetch_add(1, Ordering::Relaxed);
                                        first_error.get_or_insert(format!("query: {other:?}"));
                                    }
                                }
                            }
                            Err(e) => {
                                failures.fetch_add(1, Ordering::Relaxed);
                                first_error.get_or_insert(format!("acquire: {e}"));
                            }
                        }
                    }
                    (latencies, first_error)
                })
            })
            .collect();

        // Progress every 5 s, so a slow run shows where it is.
        let progress = {
            let acquisitions = Arc::clone(&acquisitions);
            let rotator = Arc::clone(&rotator);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                while !done() && started.elapsed() < CAP {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    eprintln!(
                        "soak: {:>5.1} s, {} acquisitions, {} rotations",
                        started.elapsed().as_secs_f64(),
                        acquisitions.load(Ordering::Relaxed),
                        rotator.rotations()
                    );
                }
            })
        };

        let mut latencies = Vec::new();
        let mut errors = Vec::new();
        for t in tasks {
            let (l, e) = t.await.expect("a task");
            latencies.extend(l);
            errors.extend(e);
        }
        progress.abort();
        latencies.sort();
        let elapsed = started.elapsed();
        // No refresh may run between reading the counters below.
        cache.stop().await;
        let stats = cache.stats();
        let pool_stats = pool.stats();
        let report = format!(
            "soak: {} acquisitions in {:.1} s from {TASKS} tasks, {} failures; {} rotations \
             ({} ALTER ROLE failures); token requests {} (cache fetches {}, callers that waited {}, \
             refused tokens replaced {}); physical connections {} ({} retired by lifetime); \
             acquire p50 {:?} p99 {:?} max {:?}",
            acquisitions.load(Ordering::Relaxed),
            elapsed.as_secs_f64(),
            failures.load(Ordering::Relaxed),
            rotator.rotations(),
            rotator.failures(),
            oauth.requests(),
            stats.fetches,
            stats.waits,
            stats.refused,
            pool_stats.connections_opened,
            pool_stats.expired,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or_default(),
        );
        eprintln!("{report}");

        assert!(errors.is_empty(), "{report}\nfirst errors: {errors:#?}");
        assert_eq!(failures.load(Ordering::Relaxed), 0, "{report}");
        assert!(
            acquisitions.load(Ordering::Relaxed) >= MIN_ACQUISITIONS,
            "{report}"
        );
        assert!(rotator.rotations() >= MIN_ROTATIONS, "{report}");
        assert_eq!(rotator.failures(), 0, "{report}");
        // Every issued token was one cache fetch: nothing else asked the issuer.
        assert_eq!(oauth.requests() as u64, stats.fetches, "{report}");
        assert_eq!(rotator.rotations(), stats.fetches, "{report}");
        // The cache stood between the connections and the issuer: far fewer token requests
        // than physical connections, about one per refresh interval.
        assert!(
            pool_stats.connections_opened > 10 * stats.fetches,
            "{report}"
        );
        let interval = 1.5;
        assert!(
            (stats.fetches as f64) <= elapsed.as_secs_f64() / interval + 3.0,
            "more fetches than refreshes: {report}"
        );
        // A token is refused only by a login that started before a rotation committed and
        // finished after: at most one per connection being opened (max_size) per rotation.
        assert!(stats.refused <= 8 * rotator.rotations(), "{report}");
        // Refresh-ahead: no acquisition ever waited for a token fetch.
        assert_eq!(stats.waits, waits_at_start, "{report}");
        drop(server);
    });
}

#[test]
fn lazy_mode_refreshes_on_connect_and_never_fails() {
    common::block_on_multi(async {
        let Setup {
            server,
            rotator,
            oauth,
            cache,
            plan,
        } = setup("iam-lazy", 2, TokenRefresh::Lazy).await;
        let pool = Pool::builder(plan, Arc::new(MapEnv::new()))
            .tokens(TokenSource::Cached(Arc::clone(&cache)))
            .options(PoolOptions {
                min_size: 1,
                max_size: 4,
                max_lifetime: Some(Duration::from_millis(100)),
                health_check: HealthCheck::Fast,
                wait_timeout: Some(Duration::from_secs(30)),
                ..PoolOptions::default()
            })
            .build()
            .await
            .expect("a pool");
        // No timer in lazy mode: nothing is fetched while nobody connects.
        cache.start();
        let before = oauth.requests();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(oauth.requests(), before, "no background fetch in lazy mode");
        // The token has expired meanwhile; connections keep coming anyway.
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_secs(5) {
            let client = pool.get().await.expect("an acquisition");
            client.simple_query("SELECT 1").await.expect("a query");
            n += 1;
        }
        cache.stop().await;
        let stats = cache.stats();
        assert!(n > 50, "{n} acquisitions");
        assert!(
            rotator.rotations() >= 3,
            "{} rotations",
            rotator.rotations()
        );
        // In lazy mode, every fetch is made by a connecting caller.
        assert_eq!(stats.waits, stats.fetches, "{stats:?}");
        assert_eq!(oauth.requests() as u64, stats.fetches, "{stats:?}");
        drop(server);
    });
}

#[test]
fn a_refused_token_is_replaced_without_a_failed_acquisition_and_the_timer_refreshes_when_idle() {
    common::block_on_multi(async {
        let Setup {
            server,
            rotator,
            oauth,
            cache,
            plan,
        } = setup("iam-refused", 2, TokenRefresh::Ahead).await;
        // The hook (the new password) runs before the emulator's delay: for 300 ms after each
        // rotation the cache still hands out the old token, which the server now refuses.
        oauth.set_delay(Duration::from_millis(300));
        let pool = Pool::builder(plan, Arc::new(MapEnv::new()))
            .tokens(TokenSource::Cached(Arc::clone(&cache)))
            .options(PoolOptions {
                min_size: 1,
                max_size: 4,
                max_lifetime: Some(Duration::from_millis(20)),
                health_check: HealthCheck::Fast,
                ..PoolOptions::default()
            })
            .build()
            .await
            .expect("a pool");
        let started = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut n = 0u32;
                    while started.elapsed() < Duration::from_secs(5) {
                        let client = pool.get().await.expect("no acquisition fails");
                        client.simple_query("SELECT 1").await.expect("a query");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("a task");
        }
        let busy = cache.stats();
        assert!(total > 100, "{total} acquisitions");
        assert!(
            rotator.rotations() >= 3,
            "{} rotations",
            rotator.rotations()
        );
        assert!(busy.refused > 0, "the retry path never ran: {busy:?}");
        assert_eq!(pool.stats().connect_failures, 0, "{:?}", pool.stats());

        // Idle: nobody asks for a token for 3 s (refresh every 1 s): the refresher fetches.
        tokio::time::sleep(Duration::from_secs(3)).await;
        cache.stop().await;
        let idle = cache.stats();
        assert!(
            idle.fetches >= busy.fetches + 2,
            "no refresh while idle: {busy:?} -> {idle:?}"
        );
        assert_eq!(idle.calls, busy.calls, "nobody called meanwhile");
        drop(server);
    });
}
