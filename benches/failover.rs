//! Failover time, this crate against a libpq peer, in one run: from the moment a crashed
//! primary is gone to the first write acknowledged through the pool afterwards.
//!
//! One primary and its synchronous standby (`conformance::failover::Pair`), on fixed
//! loopback ports, both in the host list with `target_session_attrs=read-write`. Two clients
//! write at the same time through the same failovers:
//!
//! - this crate: one catalog writer (`track_entry`) through the pool with its defaults
//!   (verified health check), as `conformance::failover::Writers` runs it;
//! - the peer: psycopg_pool with its defaults on the same connection string, one `INSERT`
//!   after another (`benches/peer/failover_peer.py`).
//!
//! Each failover crashes the primary (`pg_ctl stop -m immediate`), promotes the standby, and
//! then rebuilds the old primary as the new standby (outside the measured time). The report
//! gives each side's p50, p99 and worst time over the failovers, and their ratio, and writes
//! `target/failover-bench.json`.
//!
//! Run: `cargo bench --features conformance --bench failover` (needs PostgreSQL's binaries and
//! `pip install -r benches/peer/requirements.txt`); `TEA_FAILOVERS` sets the number of
//! failovers (default 12).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tea_pgcloud::catalog::{CatalogOptions, PostgresCatalog};
use tea_pgcloud::conformance::failover::{Failure, Pair, Replication, Writers};
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::pool::{Pool, PoolOptions};

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The `p` quantile (nearest rank) of sorted `samples`, in milliseconds.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let failovers: usize = std::env::var("TEA_FAILOVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut pair = Pair::start(
        &["host all all 127.0.0.1/32 scram-sha-256"],
        Replication::Synchronous,
    )
    .expect("a primary and its standby");
    let conninfo = pair.conninfo("target_session_attrs=read-write connect_timeout=2");

    // The peer, on the same host list.
    let mut peer = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/peer/failover_peer.py"
        ))
        .arg(&conninfo)
        .env("PGPASSWORD", pair.password())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the peer");
    let peer_lines: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
    let peer_libpq = Arc::new(Mutex::new(String::new()));
    let reader = {
        let stdout = peer.stdout.take().expect("the peer's output");
        let (lines, libpq) = (peer_lines.clone(), peer_libpq.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if let Some(v) = value.get("libpq").and_then(serde_json::Value::as_str) {
                    *libpq.lock().unwrap_or_else(|e| e.into_inner()) = v.to_string();
                }
                for kind in ["ok", "fail"] {
                    if let Some(t) = value.get(kind).and_then(serde_json::Value::as_f64) {
                        lines
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((kind.to_string(), t));
                    }
                }
            }
        })
    };

    let plan = {
        let env = MapEnv::new();
        let yaml = format!(
            "connection_string: \"{conninfo} password={}\"\n",
            pair.password()
        );
        let config = tea_pgcloud::config::load_str(&yaml, "bench.yaml", &env).expect("loads");
        tea_pgcloud::provider::plan(&config, &env).expect("a plan")
    };
    let catalog = runtime.block_on(async {
        let pool = Pool::builder(plan, Arc::new(MapEnv::new()))
            .options(PoolOptions {
                max_size: 4,
                ..PoolOptions::default()
            })
            .build()
            .await
            .expect("a pool");
        PostgresCatalog::from_pool(pool, CatalogOptions::default())
            .await
            .expect("a catalog")
    });
    let writers = {
        let _guard = runtime.enter();
        Writers::start(&catalog, 1)
    };

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..failovers {
        std::thread::sleep(Duration::from_millis(1000));
        let failover = pair.fail_over(Failure::Crash).expect("a failover");
        let our_first =
            writers.first_success_after(failover.failed_instant, Duration::from_secs(60));
        // The peer's first acknowledged write after the failure, waiting for it.
        let failed_at = epoch(failover.failed_at);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let their_first = loop {
            let found = peer_lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|(kind, t)| kind == "ok" && *t > failed_at)
                .map(|(_, t)| *t);
            if found.is_some() || std::time::Instant::now() >= deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let ours_ms = our_first.map(|t| (t - failover.failed_instant).as_secs_f64() * 1000.0);
        let theirs_ms = their_first.map(|t| (t - failed_at) * 1000.0);
        eprintln!(
            "failover {}/{failovers}: promote {:.0} ms; first write: tea-pgcloud {}, psycopg_pool {}",
            round + 1,
            failover.promote.as_secs_f64() * 1000.0,
            ours_ms.map_or("none in 60 s".into(), |v| format!("{v:.0} ms")),
            theirs_ms.map_or("none in 60 s".into(), |v| format!("{v:.0} ms")),
        );
        ours.push(ours_ms.unwrap_or(f64::INFINITY));
        theirs.push(theirs_ms.unwrap_or(f64::INFINITY));
        pair.rejoin().expect("the old primary rejoins");
    }
    let totals = runtime.block_on(writers.finish());
    catalog.close();
    drop(peer.stdin.take());
    let _ = peer.wait();
    let _ = reader.join();

    ours.sort_by(f64::total_cmp);
    theirs.sort_by(f64::total_cmp);
    let row = |name: &str, v: &[f64]| {
        format!(
            "| {name} | {:.0} | {:.0} | {:.0} |",
            quantile(v, 0.5),
            quantile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        )
    };
    let libpq = peer_libpq.lock().unwrap_or_else(|e| e.into_inner()).clone();
    println!(
        "\nfrom a crashed primary to the first acknowledged write, {failovers} failovers \
         (synchronous standby promoted; both clients writing through the same failovers)\n"
    );
    println!("| client | p50 ms | p99 ms | worst ms |\n|---|---|---|---|");
    println!("{}", row("tea-pgcloud pool (defaults)", &ours));
    println!(
        "{}",
        row(&format!("psycopg_pool (defaults, libpq {libpq})"), &theirs)
    );
    println!(
        "\nratio of p50s (psycopg_pool / tea-pgcloud): {:.2}; tea-pgcloud writes acknowledged: {}, \
         failed: {}",
        quantile(&theirs, 0.5) / quantile(&ours, 0.5),
        totals.acknowledged.len(),
        totals.failed.len()
    );
    let json = serde_json::json!({
        "failovers": failovers,
        "tea_pgcloud_ms": ours,
        "psycopg_pool_ms": theirs,
        "psycopg_libpq": libpq,
    });
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/failover-bench.json");
    if let Ok(mut file) = std::fs::File::create(path) {
        let _ = writeln!(file, "{json:#}");
    }
}
