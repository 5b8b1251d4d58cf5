//! Pool acquisition under IAM token rotation, against a launched PostgreSQL.
//!
//! Criterion groups (means with confidence intervals):
//!
//! - `warm_acquire/static` vs `warm_acquire/rotating`: get and release a pooled connection
//!   (with the verified health check) when the pool logs in with a fixed SCRAM password, and
//!   when it logs in with Cloud SQL IAM tokens that rotate every 2 s (the real GCP provider
//!   against the OAuth emulator; each issued token becomes the role's password).
//! - `churn_acquire/cached` vs `churn_acquire/naive`: every acquisition opens a new physical
//!   connection (maximum lifetime zero) while tokens rotate, with the token endpoint slowed to
//!   50 ms: through the refresh-ahead cache, and with a token fetched at every connect.
//! - `rds_token/sign`: signing one RDS IAM token.
//!
//! Then a percentile pass (p50 / p99 of single acquisitions, which criterion does not report)
//! and the Python peer (psycopg_pool with a boto3 token per connect, `benches/peer/`) against
//! the same server, printed as one table and written to `target/criterion/iam-pool.json`.
//! The peer rows use a role the server trusts, for both languages: a launched server cannot
//! check RDS tokens (AWS checks them outside PostgreSQL), so that comparison measures the
//! clients' token and connect costs, not the server's authentication.
//!
//! Run: `cargo bench --features conformance --bench pool` (the Python peer needs
//! `pip install -r benches/peer/requirements.txt`; without it its rows say so).

use std::hint::black_box;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tea_pgcloud::conformance::launcher::{PgServer, Profile};
use tea_pgcloud::conformance::rotation::RotatingIssuer;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::iam::aws::{RdsTokenProvider, TokenRequest, rds_auth_token};
use tea_pgcloud::iam::cache::{CacheOptions, CachedProvider};
use tea_pgcloud::iam::gcp::CloudSqlTokenProvider;
use tea_pgcloud::iam::{CredentialProvider, SystemWallClock, TokenSource};
use tea_pgcloud::plan::ConnectPlan;
use tea_pgcloud::pool::{HealthCheck, Pool, PoolOptions};

const INSTANCE: &str = "bench-project:us-central1:ltm";
/// One service account (so one database role) per token issuer: a rotation by one issuer
/// must not invalidate another pool's tokens.
const SA_WARM: &str = "ltm-warm@bench-project.iam.gserviceaccount.com";
const SA_CACHED: &str = "ltm-cached@bench-project.iam.gserviceaccount.com";
const SA_NAIVE: &str = "ltm-naive@bench-project.iam.gserviceaccount.com";
const STATIC_USER: &str = "bench_static";
const STATIC_PASSWORD: &str = "bench-static-password";
const PEER_USER: &str = "peer_rds";
const TOKEN_DELAY: Duration = Duration::from_millis(50);

/// A token issuer whose every token becomes its role's password, and the plan logging in
/// as its role.
struct Issuer {
    tokens: RotatingIssuer,
    plan: ConnectPlan,
}

struct World {
    runtime: tokio::runtime::Runtime,
    server: PgServer,
    /// Tokens for the rotating warm pool (4 s life, refreshed every 2 s, no delay).
    warm_issuer: Issuer,
    /// Tokens for the churn pools (4 s life, 50 ms per request).
    cached_issuer: Issuer,
    naive_issuer: Issuer,
    static_pool: Pool,
    rotating_pool: Pool,
    churn_cached: Pool,
    churn_cache: Arc<CachedProvider>,
    churn_naive: Pool,
    peer_warm: Pool,
    peer_churn: Pool,
}

fn plan_of(yaml: &str) -> ConnectPlan {
    let env = MapEnv::new();
    let config = tea_pgcloud::config::load_str(yaml, "bench.yaml", &env).expect("valid YAML");
    tea_pgcloud::provider::plan(&config, &env).expect("a plan")
}

fn options(min: usize, max: usize, lifetime: Option<Duration>) -> PoolOptions {
    PoolOptions {
        min_size: min,
        max_size: max,
        max_lifetime: lifetime,
        health_check: HealthCheck::Verified,
        wait_timeout: Some(Duration::from_secs(60)),
        ..PoolOptions::default()
    }
}

async fn issuer(server: &PgServer, email: &'static str, delay: Duration) -> Issuer {
    let tokens = RotatingIssuer::start(server, email, 4)
        .await
        .expect("a rotating issuer");
    tokens.emulator.set_delay(delay);
    let plan = plan_of(&tokens.plain_yaml(server, "postgres"));
    Issuer { tokens, plan }
}

async fn gcp_provider(issuer: &Issuer) -> CloudSqlTokenProvider {
    issuer
        .tokens
        .provider(INSTANCE, Duration::from_secs(10))
        .await
        .expect("a provider")
}

async fn gcp_cache(issuer: &Issuer) -> Arc<CachedProvider> {
    let cache = CachedProvider::new(
        Arc::new(gcp_provider(issuer).await) as Arc<dyn CredentialProvider>,
        CacheOptions::default(),
        Arc::new(SystemWallClock),
    );
    cache.start();
    cache
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let server = PgServer::start(&Profile {
            name: "bench-pool".into(),
            tls: None,
            hba: vec![
                format!("host all {PEER_USER} 127.0.0.1/32 trust"),
                "host all all 127.0.0.1/32 scram-sha-256".into(),
            ],
        })
        .expect("a server");
        server
            .admin_sql(&format!(
                "CREATE ROLE {STATIC_USER} LOGIN PASSWORD '{STATIC_PASSWORD}'; \
                 CREATE ROLE {PEER_USER} LOGIN;"
            ))
            .expect("roles");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let port = server.port();
        let env = || Arc::new(MapEnv::new());
        let world = runtime.block_on(async {
            let warm_issuer = issuer(&server, SA_WARM, Duration::ZERO).await;
            let cached_issuer = issuer(&server, SA_CACHED, TOKEN_DELAY).await;
            let naive_issuer = issuer(&server, SA_NAIVE, TOKEN_DELAY).await;

            let static_plan = plan_of(&format!(
                "connection_string: \"host=127.0.0.1 port={port} user={STATIC_USER} \
                 password={STATIC_PASSWORD} dbname=postgres sslmode=disable\"\n"
            ));
            let peer_plan = plan_of(&format!(
                "provider: aws\nhost: 127.0.0.1\nport: {port}\nregion: us-east-1\n\
                 sslmode: disable\ndatabase: postgres\nuser: {PEER_USER}\niam_auth: true\n"
            ));
            let rds = || -> Arc<dyn CredentialProvider> {
                Arc::new(
                    RdsTokenProvider::builder()
                        .host("127.0.0.1")
                        .port(port)
                        .user(PEER_USER)
                        .region("us-east-1")
                        .credentials_provider(Credentials::new(
                            "AKIDEXAMPLE",
                            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                            None,
                            None,
                            "bench",
                        ))
                        .build()
                        .expect("an RDS provider"),
                )
            };

            let static_pool = Pool::builder(static_plan, env())
                .options(options(4, 4, None))
                .build()
                .await
                .expect("static pool");
            let warm_cache = gcp_cache(&warm_issuer).await;
            let rotating_pool = Pool::builder(warm_issuer.plan.clone(), env())
                .tokens(TokenSource::Cached(warm_cache))
                .options(options(4, 4, None))
                .build()
                .await
                .expect("rotating pool");
            let churn_cache = gcp_cache(&cached_issuer).await;
            let churn_cached = Pool::builder(cached_issuer.plan.clone(), env())
                .tokens(TokenSource::Cached(Arc::clone(&churn_cache)))
                .options(options(1, 1, Some(Duration::ZERO)))
                .build()
                .await
                .expect("churn pool (cached)");
            let naive_provider = gcp_provider(&naive_issuer).await;
            let churn_naive = Pool::builder(naive_issuer.plan.clone(), env())
                .tokens(TokenSource::PerConnect(Arc::new(naive_provider)))
                .options(options(1, 1, Some(Duration::ZERO)))
                .build()
                .await
                .expect("churn pool (naive)");
            let peer_warm = Pool::builder(peer_plan.clone(), env())
                .tokens(TokenSource::PerConnect(rds()))
                .options(options(4, 4, None))
                .build()
                .await
                .expect("peer warm pool");
            let peer_churn = Pool::builder(peer_plan, env())
                .tokens(TokenSource::PerConnect(rds()))
                .options(options(1, 1, Some(Duration::ZERO)))
                .build()
                .await
                .expect("peer churn pool");
            (
                warm_issuer,
                cached_issuer,
                naive_issuer,
                static_pool,
                rotating_pool,
                churn_cached,
                churn_cache,
                churn_naive,
                peer_warm,
                peer_churn,
            )
        });
        let (
            warm_issuer,
            cached_issuer,
            naive_issuer,
            static_pool,
            rotating_pool,
            churn_cached,
            churn_cache,
            churn_naive,
            peer_warm,
            peer_churn,
        ) = world;
        World {
            runtime,
            server,
            warm_issuer,
            cached_issuer,
            naive_issuer,
            static_pool,
            rotating_pool,
            churn_cached,
            churn_cache,
            churn_naive,
            peer_warm,
            peer_churn,
        }
    })
}

/// One acquisition and release, timed.
async fn acquire(pool: &Pool) -> Duration {
    let t = Instant::now();
    let client = pool.get().await.expect("an acquisition");
    let elapsed = t.elapsed();
    drop(black_box(client));
    elapsed
}

fn bench_pool(c: &mut Criterion, group: &str, rows: &[(&str, &Pool)], sample_size: usize) {
    let w = world();
    let mut g = c.benchmark_group(group);
    g.sample_size(sample_size);
    for (name, pool) in rows {
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                w.runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += acquire(pool).await;
                    }
                    total
                })
            })
        });
    }
    g.finish();
}

fn warm(c: &mut Criterion) {
    let w = world();
    bench_pool(
        c,
        "warm_acquire",
        &[("static", &w.static_pool), ("rotating", &w.rotating_pool)],
        50,
    );
}

fn churn(c: &mut Criterion) {
    let w = world();
    bench_pool(
        c,
        "churn_acquire",
        &[("cached", &w.churn_cached), ("naive", &w.churn_naive)],
        10,
    );
}

fn signing(c: &mut Criterion) {
    let request = TokenRequest {
        host: "prod-instance.us-east-1.rds.amazonaws.com",
        port: 5432,
        user: "ltm",
        region: "us-east-1",
    };
    let creds = Credentials::new("AKIDEXAMPLE", "SECRET", None, None, "bench");
    c.bench_function("rds_token/sign", |b| {
        b.iter(|| rds_auth_token(black_box(&request), &creds, SystemTime::now()))
    });
}

fn percentiles(samples: &mut [Duration]) -> Value {
    samples.sort();
    let n = samples.len();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| ms(samples[((n - 1) as f64 * p).round() as usize]);
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / n as f64;
    json!({"n": n, "mean_ms": mean, "p50_ms": pct(0.5), "p99_ms": pct(0.99)})
}

/// `n` timed acquisitions of each pool, interleaved in blocks of `block` so that drift in
/// the machine's load hits every row alike.
fn interleaved(pools: &[&Pool], n: usize, block: usize) -> Vec<Vec<Duration>> {
    let w = world();
    let mut samples = vec![Vec::with_capacity(n); pools.len()];
    w.runtime.block_on(async {
        let mut done = 0;
        while done < n {
            let k = block.min(n - done);
            for (i, pool) in pools.iter().enumerate() {
                for _ in 0..k {
                    samples[i].push(acquire(pool).await);
                }
            }
            done += k;
        }
    });
    samples
}

fn peer() -> Value {
    let w = world();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/peer/psycopg_pool_peer.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &w.server.port().to_string(),
        ])
        .args([
            "--user", PEER_USER, "--warm", "3000", "--churn", "300", "--sign", "3000",
        ])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| json!({"error": e.to_string()}))
        }
        Ok(out) => {
            json!({"error": String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("failed").to_string()})
        }
        Err(e) => json!({"error": e.to_string()}),
    }
}

fn sign_samples(n: usize) -> Vec<Duration> {
    let request = TokenRequest {
        host: "127.0.0.1",
        port: 5432,
        user: PEER_USER,
        region: "us-east-1",
    };
    let creds = Credentials::new("AKIDEXAMPLE", "SECRET", None, None, "bench");
    (0..n)
        .map(|_| {
            let t = Instant::now();
            black_box(rds_auth_token(&request, &creds, SystemTime::now()).expect("signs"));
            t.elapsed()
        })
        .collect()
}

fn report(_: &mut Criterion) {
    let w = world();
    let waits_before = w.churn_cache.stats().waits;
    let rotations_before = w.cached_issuer.tokens.rotator.rotations();
    let mut warm = interleaved(&[&w.static_pool, &w.rotating_pool], 5000, 500);
    let mut churn = interleaved(&[&w.churn_cached, &w.churn_naive], 150, 25);
    let waits = w.churn_cache.stats().waits - waits_before;
    let rotations = w.cached_issuer.tokens.rotator.rotations() - rotations_before;
    let mut peer_rust = interleaved(&[&w.peer_warm, &w.peer_churn], 1000, 250);
    let mut signs = sign_samples(3000);
    let python = peer();

    let static_warm = percentiles(&mut warm[0]);
    let rotating_warm = percentiles(&mut warm[1]);
    let cached = percentiles(&mut churn[0]);
    let naive = percentiles(&mut churn[1]);
    let rust_peer_warm = percentiles(&mut peer_rust[0]);
    let rust_peer_churn = percentiles(&mut peer_rust[1]);
    let sign = percentiles(&mut signs);
    let ratio = rotating_warm["mean_ms"].as_f64().unwrap_or(f64::NAN)
        / static_warm["mean_ms"].as_f64().unwrap_or(f64::NAN);
    let summary = json!({
        "warm_acquire": {"static": static_warm, "rotating": rotating_warm, "ratio_rotating_to_static": ratio},
        "churn_acquire_50ms_token_endpoint": {"cached": cached, "naive": naive,
            "acquisitions_that_waited_for_a_token_fetch_cached": waits, "rotations_during_pass": rotations},
        "peer_trust_role": {"rust_warm": rust_peer_warm, "rust_churn_token_per_connect": rust_peer_churn,
            "rust_sign": sign, "python": python},
        "token_requests": {"warm": w.warm_issuer.tokens.emulator.requests(), "churn_cached": w.cached_issuer.tokens.emulator.requests(), "churn_naive": w.naive_issuer.tokens.emulator.requests()},
    });
    let row = |name: &str, v: &Value| {
        println!(
            "{name:<58} {:>9.3} {:>9.3} {:>9.3} {:>6}",
            v["mean_ms"].as_f64().unwrap_or(f64::NAN),
            v["p50_ms"].as_f64().unwrap_or(f64::NAN),
            v["p99_ms"].as_f64().unwrap_or(f64::NAN),
            v["n"]
        );
    };
    println!();
    println!(
        "{:<58} {:>9} {:>9} {:>9} {:>6}",
        "pool acquisition (ms)", "mean", "p50", "p99", "n"
    );
    row(
        "warm, static SCRAM password",
        &summary["warm_acquire"]["static"],
    );
    row(
        "warm, rotating IAM token (gcp, 2 s rotation)",
        &summary["warm_acquire"]["rotating"],
    );
    println!("  ratio rotating / static (mean): {ratio:.3}");
    row(
        "churn, 50 ms token endpoint, cached (refresh-ahead)",
        &summary["churn_acquire_50ms_token_endpoint"]["cached"],
    );
    row(
        "churn, 50 ms token endpoint, naive (fetch per connect)",
        &summary["churn_acquire_50ms_token_endpoint"]["naive"],
    );
    println!(
        "  cached: {waits} acquisitions waited for a token fetch; {rotations} rotations during the pass"
    );
    row(
        "peer (trust role): Rust pool warm, RDS token",
        &summary["peer_trust_role"]["rust_warm"],
    );
    row(
        "peer (trust role): Rust new connection + RDS token",
        &summary["peer_trust_role"]["rust_churn_token_per_connect"],
    );
    row(
        "peer: Rust rds_auth_token signing",
        &summary["peer_trust_role"]["rust_sign"],
    );
    match python.get("error") {
        Some(e) => println!("  python peer: not run ({e})"),
        None => {
            row(
                "peer (trust role): Python psycopg_pool warm",
                &python["warm"],
            );
            row(
                "peer (trust role): Python new connection + boto3 token",
                &python["churn"],
            );
            row("peer: Python boto3 generate_db_auth_token", &python["sign"]);
            println!("  python versions: {}", python["versions"]);
        }
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/criterion/iam-pool.json"
    );
    if let Some(dir) = std::path::Path::new(path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(
        path,
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    ) {
        Ok(()) => println!("  written to {path}"),
        Err(e) => println!("  cannot write {path}: {e}"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = warm, churn, signing, report
}
criterion_main!(benches);
