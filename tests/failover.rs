//! The failover soak: catalog writers through the pool while the primary fails (a crash, or
//! fenced read-only) and its standby is promoted, several times. With synchronous replication
//! every acknowledged write is on the last primary; no write is acknowledged by a read-only
//! server; no write waits past the pool's timeouts; connections to a server that turned
//! read-only are retired. With asynchronous replication the report says what was lost.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tea_pgcloud::catalog::{CatalogOptions, PostgresCatalog};
use tea_pgcloud::conformance::failover::{
    Failure, Pair, Replication, SoakReport, WriterTotals, Writers,
};
use tea_pgcloud::conformance::launcher::Server;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::pool::{Pool, PoolOptions};

const HBA: &str = "host all all 127.0.0.1/32 scram-sha-256";

/// The pool the soak writes through: read-write servers only, small timeouts.
async fn catalog(pair: &Pair) -> (PostgresCatalog, Pool) {
    let conninfo = pair.conninfo(&format!(
        "password={} target_session_attrs=read-write connect_timeout=2",
        pair.password()
    ));
    let plan = common::plan_of(&format!("connection_string: \"{conninfo}\"\n"));
    let pool = Pool::builder(plan, Arc::new(MapEnv::new()))
        .options(PoolOptions {
            min_size: 1,
            max_size: 4,
            wait_timeout: Some(Duration::from_secs(5)),
            create_timeout: Some(Duration::from_secs(10)),
            recycle_timeout: Some(Duration::from_secs(2)),
            ..PoolOptions::default()
        })
        .build()
        .await
        .expect("a pool");
    let catalog = PostgresCatalog::from_pool(pool.clone(), CatalogOptions::default())
        .await
        .expect("a catalog");
    (catalog, pool)
}

/// Writers run while `failures` happen one after the other, each followed by the old
/// primary's return as standby; then every key is looked up on the last primary.
fn soak(replication: Replication, failures: &[Failure]) -> (SoakReport, u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut pair = Pair::start(&[HBA], replication).expect("a primary and a standby");
    let (catalog, pool) = runtime.block_on(catalog(&pair));
    let writers = {
        let _guard = runtime.enter();
        Writers::start(&catalog, 4)
    };
    let mut failovers = Vec::new();
    let mut recovery = Vec::new();
    for failure in failures {
        // Writes flow for a while before each failure.
        let before = writers.acknowledged();
        std::thread::sleep(Duration::from_millis(800));
        assert!(
            writers.acknowledged() > before,
            "writes flow before the failover"
        );
        let failover = pair.fail_over(*failure).expect("a failover");
        let first = writers.first_success_after(failover.failed_instant, Duration::from_secs(40));
        recovery.push(first.map(|t| t - failover.failed_instant));
        failovers.push(failover);
        pair.rejoin().expect("the old primary rejoins as standby");
    }
    std::thread::sleep(Duration::from_millis(500));
    let totals: WriterTotals = runtime.block_on(writers.finish());
    let wrong_kind = pool.stats().wrong_kind;
    catalog.close();
    let present = pair.keys_on_primary().expect("the keys");
    (
        SoakReport::new(replication, failovers, recovery, totals, &present),
        wrong_kind,
    )
}

#[test]
fn synchronous_failovers_lose_no_acknowledged_write() {
    let (report, wrong_kind) = soak(
        Replication::Synchronous,
        &[
            Failure::Crash,
            Failure::Fence,
            Failure::Crash,
            Failure::Fence,
        ],
    );
    println!("{report}pool connections retired for a server of the wrong kind: {wrong_kind}");
    assert!(report.totals.acknowledged.len() > 100, "{report}");
    assert!(
        report.recovery.iter().all(Option::is_some),
        "writes resumed after every failover: {report}"
    );
    // Every acknowledged write is on the last primary. A write acknowledged by a fenced
    // primary after the promotion would be on its abandoned timeline only (it is rebuilt from
    // the new primary), so none was.
    assert_eq!(report.lost, Vec::<String>::new(), "{report}");
    assert_eq!(report.totals.hung, 0, "{report}");
    // The fenced primaries' pooled connections were retired for turning read-only (a write
    // already under way on one is refused with 25006, counted in the report).
    assert!(wrong_kind > 0, "{report}");
}

#[test]
fn asynchronous_failovers_report_what_they_lose() {
    let (report, _) = soak(
        Replication::Asynchronous,
        &[Failure::Crash, Failure::Crash, Failure::Crash],
    );
    println!("{report}");
    assert!(report.totals.acknowledged.len() > 100, "{report}");
    assert!(
        report.recovery.iter().all(Option::is_some),
        "writes resumed after every failover: {report}"
    );
    assert_eq!(report.totals.hung, 0, "{report}");
}

/// The check can fail: with `synchronous_commit = off` a crash loses the commits acknowledged
/// since the WAL writer's last flush, and the soak finds them missing.
#[test]
fn unflushed_commits_are_found_lost() {
    let (report, _) = soak(
        Replication::Unflushed,
        &[Failure::Crash, Failure::Crash, Failure::Crash],
    );
    println!("{report}");
    assert!(!report.lost.is_empty(), "{report}");
}

/// A lagging standby (`recovery_min_apply_delay`) has the primary's writes but applies them
/// late: a read there sees the old state until the delay is lifted.
#[test]
fn a_lagging_standby_serves_old_data_until_it_applies() {
    let pair = Pair::start(&[HBA], Replication::Asynchronous).expect("a primary and a standby");
    let (primary, standby) = (pair.primary(), pair.standby());
    primary
        .admin_sql("\\c ltm\nCREATE TABLE lag_probe (v int);")
        .expect("a table");
    standby
        .wait_caught_up(primary, Duration::from_secs(30))
        .expect("caught up");
    standby
        .set_apply_delay(Duration::from_secs(600))
        .expect("a delay");
    primary
        .admin_sql("\\c ltm\nINSERT INTO lag_probe VALUES (1);")
        .expect("a write");
    std::thread::sleep(Duration::from_millis(500));
    let count = |server: &tea_pgcloud::conformance::launcher::NativeServer| {
        server
            .admin_sql("\\c ltm\nSELECT count(*) FROM lag_probe;")
            .expect("a count")
    };
    assert_eq!(
        count(standby),
        "0",
        "the delayed standby has not applied the row"
    );
    assert!(
        standby
            .wait_caught_up(primary, Duration::from_millis(300))
            .is_err(),
        "and is not caught up"
    );
    standby.set_apply_delay(Duration::ZERO).expect("no delay");
    standby
        .wait_caught_up(primary, Duration::from_secs(30))
        .expect("caught up");
    assert_eq!(count(standby), "1");
}
