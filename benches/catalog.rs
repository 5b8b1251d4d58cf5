//! `PostgresCatalog` throughput over verify-full TLS, against a launched PostgreSQL.
//!
//! Two catalogs, each built from YAML by [`PostgresCatalog::from_yaml`] (the production path:
//! plan, pool, migration) on the same TLS server (`hostssl ... scram-sha-256`, a server
//! certificate for `localhost` signed by a generated CA, `sslmode: verify-full` with that CA as
//! `sslrootcert`), each in a database of its own:
//!
//! - `static`: a fixed SCRAM password in the connection string;
//! - `rotating`: Cloud SQL IAM login (`provider: gcp`, `iam_auth: true`), the real
//!   `CloudSqlTokenProvider` (Application Default Credentials = a service-account key file named
//!   by `GOOGLE_APPLICATION_CREDENTIALS` in a `MapEnv`) against the OAuth emulator, which issues
//!   4 s tokens; every issued token becomes the role's password (`RoleRotator`), so the old one
//!   stops working at once. The pool's token cache refreshes ahead, every ~2 s.
//!
//! Both pools share the same pool keys, with connections replaced after [`MAX_LIFETIME_SECS`]: a
//! run opens new connections while tokens rotate, and each must log in with the current one.
//! Reconnects are rare next to the operations, so they barely move the means; the report counts
//! them.
//!
//! Criterion groups (`Throughput::Elements`, so criterion prints entries/s):
//!
//! - `track_entry/{static,rotating}`: one upsert per iteration, keys cycling over a fixed set
//!   of [`KEYS`] entries written beforehand (so every upsert updates and the table stays the
//!   same size);
//! - `retrieve_batch_100/{static,rotating}`: one `retrieve_batch` of [`BATCH`] consecutive keys
//!   of that set per iteration (all present).
//!
//! Then one interleaved pass (blocks of each operation alternating between the catalogs, so
//! drift in the machine's load hits both alike) prints entries/s, static vs rotating with their
//! ratio, and writes it to `target/criterion/catalog.json`.
//!
//! Run: `cargo bench --features conformance --bench catalog` (needs PostgreSQL's binaries,
//! found as the conformance launcher finds them, and `openssl` for the service-account key).

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tea_pgcloud::catalog::{NewEntry, PostgresCatalog};
use tea_pgcloud::conformance::certs::CertFactory;
use tea_pgcloud::conformance::launcher::PgServer;
use tea_pgcloud::conformance::rotation::RotatingIssuer;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::iam::TokenSource;
use tea_pgcloud::iam::cache::CacheStats;
use tea_pgcloud::iam::gcp::CREDENTIALS_VAR;

/// Entries written beforehand; the operations cycle over them.
const KEYS: usize = 1000;
/// Keys per `retrieve_batch`.
const BATCH: usize = 100;
// A batch is a window of the key set that never runs past its end.
const _: () = assert!(KEYS.is_multiple_of(BATCH));
/// Token life the emulator grants (the cache refreshes at half of it).
const TOKEN_LIFE_SECS: i64 = 4;
/// Pool connections are replaced after this long, so that a run reconnects under rotation.
const MAX_LIFETIME_SECS: u32 = 3;
/// Pool size, the same for both catalogs (the bench runs one operation at a time).
const POOL_SIZE: u32 = 2;
const INSTANCE: &str = "bench-project:us-central1:ltm";
const SERVICE_ACCOUNT: &str = "ltm-catalog@bench-project.iam.gserviceaccount.com";
const STATIC_USER: &str = "bench_static";
const STATIC_PASSWORD: &str = "bench-static-password";
const STATIC_DB: &str = "ltm_static";
const ROTATING_DB: &str = "ltm_rotating";

/// One catalog under test, with the entries its operations cycle over.
struct Side {
    name: &'static str,
    catalog: PostgresCatalog,
    entries: Vec<NewEntry>,
    keys: Vec<String>,
    next_track: AtomicUsize,
    next_batch: AtomicUsize,
}

impl Side {
    /// One upsert of the next key; every key exists, so it must be an update.
    async fn track(&self) {
        let i = self.next_track.fetch_add(1, Ordering::Relaxed) % KEYS;
        let tracked = self
            .catalog
            .track_entry(&self.entries[i])
            .await
            .expect("track_entry");
        assert!(!tracked.created, "{}: key {i} should exist", self.name);
        black_box(tracked);
    }

    /// One `retrieve_batch` of the next [`BATCH`] keys; every one must be found.
    async fn retrieve(&self) {
        let start = self.next_batch.fetch_add(1, Ordering::Relaxed) * BATCH % KEYS;
        let got = self
            .catalog
            .retrieve_batch(&self.keys[start..start + BATCH])
            .await
            .expect("retrieve_batch");
        assert!(
            got.len() == BATCH && got.iter().all(|(_, e)| e.is_some()),
            "{}: a batch came back incomplete",
            self.name
        );
        black_box(got);
    }
}

struct World {
    runtime: tokio::runtime::Runtime,
    /// The rotating catalog's tokens, each made its role's password.
    issuer: RotatingIssuer,
    static_side: Side,
    rotating_side: Side,
    // Dropped last: the server and the files the catalogs read.
    _server: PgServer,
    _dir: tempfile::TempDir,
}

/// The pool keys both catalogs use.
fn pool_keys() -> String {
    format!("min_size: {POOL_SIZE}\nmax_size: {POOL_SIZE}\nmax_lifetime: {MAX_LIFETIME_SECS}\n")
}

fn entries() -> (Vec<NewEntry>, Vec<String>) {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("bench:entry:{i:04}")).collect();
    let entries = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            NewEntry::inline(
                k.clone(),
                json!({"i": i, "name": format!("entry {i}"), "tags": ["bench", "ltm"], "score": 0.5}),
            )
        })
        .collect();
    (entries, keys)
}

async fn side(name: &'static str, yaml: &str, env: MapEnv) -> Side {
    let catalog = PostgresCatalog::from_yaml(yaml, "bench.yaml", Arc::new(env))
        .await
        .unwrap_or_else(|e| panic!("{name} catalog: {e}"));
    let (entries, keys) = entries();
    let report = catalog
        .store_batch(&entries, true)
        .await
        .expect("the entries are written");
    assert!(report.success(), "{name}: the entries are written");
    Side {
        name,
        catalog,
        entries,
        keys,
        next_track: AtomicUsize::new(0),
        next_batch: AtomicUsize::new(0),
    }
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let factory = CertFactory::new().expect("certificates");
        let server = PgServer::start_tls(
            "bench-catalog",
            &factory,
            &["hostssl all all 127.0.0.1/32 scram-sha-256"],
            false,
        );
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = dir.path().join("root.pem");
        std::fs::write(&root, factory.root_pem()).expect("writes the CA");
        let root = root.to_str().expect("a UTF-8 path").to_string();

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let issuer = runtime
            .block_on(RotatingIssuer::start(
                &server,
                SERVICE_ACCOUNT,
                TOKEN_LIFE_SECS,
            ))
            .expect("a rotating issuer");
        let role = issuer.role();
        server
            .admin_sql(&format!(
                "CREATE ROLE {STATIC_USER} LOGIN PASSWORD '{STATIC_PASSWORD}'"
            ))
            .expect("the static role");
        // One statement per call: CREATE DATABASE cannot run inside a transaction block.
        for (db, owner) in [(STATIC_DB, STATIC_USER), (ROTATING_DB, role)] {
            server.create_database(db, owner).expect("a database");
        }

        let port = server.port();
        let (static_side, rotating_side) = runtime.block_on(async {
            let key_file = dir.path().join("service-account.json");
            std::fs::write(&key_file, issuer.service_account_key().to_string())
                .expect("writes the key file");
            let key_file = key_file.to_str().expect("a UTF-8 path").to_string();

            let static_yaml = format!(
                "connection_string: \"host=localhost port={port} user={STATIC_USER} \
                 password={STATIC_PASSWORD} dbname={STATIC_DB} sslmode=verify-full \
                 sslrootcert={root}\"\n{}",
                pool_keys()
            );
            let rotating_yaml = format!(
                "provider: gcp\nconnection_name: {INSTANCE}\nhost: localhost\nport: {port}\n\
                 ip_type: public\nsslmode: verify-full\nsslrootcert: {root}\n\
                 database: {ROTATING_DB}\nuser: {SERVICE_ACCOUNT}\niam_auth: true\n{}",
                pool_keys()
            );
            // A `MapEnv` answers `is_file` only for the files it is told of.
            let static_env = MapEnv::new().with_file(root.clone());
            let rotating_env = MapEnv::new()
                .with_file(root.clone())
                .with_file(key_file.clone())
                .with_var(CREDENTIALS_VAR, key_file);
            let static_side = side("static", &static_yaml, static_env).await;
            let rotating_side = side("rotating", &rotating_yaml, rotating_env).await;
            (static_side, rotating_side)
        });
        assert!(
            issuer.rotator.rotations() > 0,
            "the rotating catalog logged in with an issued token"
        );
        World {
            runtime,
            issuer,
            static_side,
            rotating_side,
            _server: server,
            _dir: dir,
        }
    })
}

#[derive(Clone, Copy)]
enum Op {
    Track,
    Retrieve,
}

impl Op {
    fn elements(self) -> usize {
        match self {
            Op::Track => 1,
            Op::Retrieve => BATCH,
        }
    }

    async fn run(self, side: &Side) {
        match self {
            Op::Track => side.track().await,
            Op::Retrieve => side.retrieve().await,
        }
    }
}

fn bench_op(c: &mut Criterion, group: &str, op: Op, sample_size: usize) {
    let w = world();
    let mut g = c.benchmark_group(group);
    g.sample_size(sample_size);
    g.throughput(Throughput::Elements(op.elements() as u64));
    for side in [&w.static_side, &w.rotating_side] {
        g.bench_function(side.name, |b| {
            b.iter_custom(|iters| {
                w.runtime.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        op.run(side).await;
                    }
                    t.elapsed()
                })
            })
        });
    }
    g.finish();
}

fn track(c: &mut Criterion) {
    bench_op(c, "track_entry", Op::Track, 30);
}

fn retrieve(c: &mut Criterion) {
    bench_op(c, "retrieve_batch_100", Op::Retrieve, 20);
}

/// Entries per second of `op` on each side over `rounds` rounds of `block` operations per
/// side, the sides alternating block by block.
fn interleaved(op: Op, rounds: usize, block: usize) -> [f64; 2] {
    let w = world();
    let sides = [&w.static_side, &w.rotating_side];
    let mut busy = [Duration::ZERO; 2];
    w.runtime.block_on(async {
        for _ in 0..rounds {
            for (i, side) in sides.iter().enumerate() {
                let t = Instant::now();
                for _ in 0..block {
                    op.run(side).await;
                }
                busy[i] += t.elapsed();
            }
        }
    });
    let elements = (rounds * block * op.elements()) as f64;
    busy.map(|d| elements / d.as_secs_f64())
}

fn opened(side: &Side) -> u64 {
    side.catalog
        .pool_if_open()
        .map(|p| p.stats().connections_opened)
        .unwrap_or_default()
}

/// The rotating pool's token cache counters (zero for a pool without one).
fn cache_stats(side: &Side) -> CacheStats {
    match side.catalog.pool_if_open().and_then(|p| p.tokens()) {
        Some(TokenSource::Cached(cache)) => cache.stats(),
        _ => CacheStats::default(),
    }
}

fn report(_: &mut Criterion) {
    let w = world();
    let opened_before = [opened(&w.static_side), opened(&w.rotating_side)];
    let rotations_before = w.issuer.rotator.rotations();
    let cache_before = cache_stats(&w.rotating_side);
    let started = Instant::now();
    let [track_static, track_rotating] = interleaved(Op::Track, 20, 200);
    let [retrieve_static, retrieve_rotating] = interleaved(Op::Retrieve, 20, 50);
    let pass_secs = started.elapsed().as_secs_f64();
    let rotations = w.issuer.rotator.rotations() - rotations_before;
    let reconnects = [
        opened(&w.static_side) - opened_before[0],
        opened(&w.rotating_side) - opened_before[1],
    ];
    let cache_after = cache_stats(&w.rotating_side);
    let cache = json!({
        "fetches": cache_after.fetches - cache_before.fetches,
        "failed_fetches": cache_after.failures - cache_before.failures,
        "calls_that_waited_for_a_fetch": cache_after.waits - cache_before.waits,
        "logins_refused": cache_after.refused - cache_before.refused,
    });

    let row =
        |s: f64, r: f64| json!({"static": s, "rotating": r, "ratio_rotating_to_static": r / s});
    let summary = json!({
        "entries_per_second": {
            "track_entry": row(track_static, track_rotating),
            "retrieve_batch_100": row(retrieve_static, retrieve_rotating),
        },
        "pass_seconds": pass_secs,
        "token_rotations_during_pass": rotations,
        "connections_opened_during_pass": {"static": reconnects[0], "rotating": reconnects[1]},
        "token_requests_total": w.issuer.emulator.requests(),
        "rotating_token_cache_during_pass": cache,
        "setup": {
            "tls": "verify-full, sslrootcert = generated CA, server cert for localhost",
            "auth": "scram-sha-256 (static password; rotating: each issued IAM token)",
            "token_life_seconds": TOKEN_LIFE_SECS,
            "pool_size": POOL_SIZE,
            "max_lifetime_seconds": MAX_LIFETIME_SECS,
            "keys": KEYS,
            "batch": BATCH,
        },
    });
    println!();
    println!(
        "{:<32} {:>12} {:>12} {:>17}",
        "catalog throughput (entries/s)", "static", "rotating", "rotating/static"
    );
    for (name, s, r) in [
        ("track_entry", track_static, track_rotating),
        ("retrieve_batch_100", retrieve_static, retrieve_rotating),
    ] {
        println!("{name:<32} {s:>12.0} {r:>12.0} {:>17.3}", r / s);
    }
    println!(
        "  interleaved pass of {pass_secs:.1} s: {rotations} token rotations; connections opened: \
         static {}, rotating {}; rotating cache: {}",
        reconnects[0], reconnects[1], summary["rotating_token_cache_during_pass"]
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/criterion/catalog.json");
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
        .measurement_time(Duration::from_secs(4));
    targets = track, retrieve, report
}
criterion_main!(benches);
