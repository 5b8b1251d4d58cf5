//! Failovers on demand: a primary and its streaming standby from the native launcher
//! ([`Pair`]), writers on the catalog through the pool ([`Writers`]), and what came of it
//! ([`SoakReport`]). The failover soak (`tests/failover.rs`) and the failover bench
//! (`benches/failover.rs`) run on these.
//!
//! A failover here is what a managed service does when its primary fails: the primary stops
//! (a crash, `pg_ctl stop -m immediate`) or is fenced (turned read-only while it still
//! answers), the standby is promoted, and the old primary comes back as the new primary's
//! standby (a fresh base backup on its old port). Both servers stay in the clients' host list
//! (`host=127.0.0.1,127.0.0.1 port=A,B target_session_attrs=read-write`), so a client finds
//! the new primary only by libpq's rules.
//!
//! With synchronous replication ([`Replication::Synchronous`]: `synchronous_commit =
//! remote_apply`), a commit is acknowledged only once the standby has applied it. Between a
//! promotion and the old primary's return there is no standby; the new primary then commits
//! asynchronously (as an HA manager with a non-strict synchronous mode does) until its
//! standby has caught up, and the next failover waits for that.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::launcher::{LaunchError, NativeServer, Profile, Server};

/// The database the writers use, owned by the login role.
pub const DATABASE: &str = "ltm";

/// How commits wait for the standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    /// `synchronous_commit = remote_apply` with `synchronous_standby_names = '*'`.
    Synchronous,
    /// The default: a commit is acknowledged once flushed locally, before the standby has
    /// it.
    Asynchronous,
    /// `synchronous_commit = off`: acknowledged before even the local flush (the WAL writer
    /// flushes every 200 ms); a crash loses what was not flushed.
    Unflushed,
}

/// How the primary fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `pg_ctl stop -m immediate`: every session ends, nothing is flushed further.
    Crash,
    /// `default_transaction_read_only = on` and a reload: the old primary still answers but
    /// refuses writes (its sessions see it at their next statement).
    Fence,
}

/// One failover as it happened.
#[derive(Debug, Clone, Copy)]
pub struct Failover {
    /// How the primary failed.
    pub failure: Failure,
    /// When the primary's failure was complete: stopped, or refusing writes to new sessions
    /// (wall clock, for clients in other processes).
    pub failed_at: SystemTime,
    /// The same moment on this process's monotonic clock.
    pub failed_instant: Instant,
    /// How long the promotion took (`pg_ctl promote -w`).
    pub promote: Duration,
}

/// A primary and its streaming standby, on fixed loopback ports.
pub struct Pair {
    servers: [NativeServer; 2],
    primary: usize,
    replication: Replication,
}

impl Pair {
    /// A primary (a database [`DATABASE`] owned by the login role, `pg_hba.conf` lines
    /// `hba`) and a streaming standby made from it, with `replication` in force.
    pub fn start(hba: &[&str], replication: Replication) -> Result<Self, LaunchError> {
        let primary = NativeServer::start(&Profile::new("failover", None, hba.iter().copied()))?;
        primary.admin_sql(&format!(
            "CREATE DATABASE {DATABASE} OWNER {}",
            primary.user()
        ))?;
        // The launcher's servers commit with `synchronous_commit = off` (speed); here a commit
        // is at least flushed locally, so that only replication decides what a crash loses.
        match replication {
            Replication::Synchronous => primary.set_synchronous(true)?,
            Replication::Asynchronous => primary.set_synchronous(false)?,
            Replication::Unflushed => {}
        }
        let standby = NativeServer::start_standby(&primary)?;
        standby.wait_caught_up(&primary, Duration::from_secs(30))?;
        if replication == Replication::Synchronous {
            // The copy carries the primary's synchronous settings; promoted, it commits
            // asynchronously until a standby of its own returns (`rejoin`).
            standby.set_synchronous(false)?;
        }
        Ok(Pair {
            servers: [primary, standby],
            primary: 0,
            replication,
        })
    }

    /// The connection string of both servers in a fixed order, for the login role, database
    /// [`DATABASE`], no TLS, with `extra` keywords (e.g. `target_session_attrs=read-write`).
    pub fn conninfo(&self, extra: &str) -> String {
        format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user={} dbname={DATABASE} sslmode=disable {extra}",
            self.servers[0].port(),
            self.servers[1].port(),
            self.servers[0].user()
        )
    }

    /// The login role's password.
    pub fn password(&self) -> &str {
        self.servers[0].password()
    }

    /// The server that is primary now.
    pub fn primary(&self) -> &NativeServer {
        &self.servers[self.primary]
    }

    /// The server that is standby now (or is being rebuilt as one).
    pub fn standby(&self) -> &NativeServer {
        &self.servers[1 - self.primary]
    }

    /// Fails the primary as `failure` says, then promotes the standby; the old primary is left
    /// stopped (crash) or read-only (fence) until [`Pair::rejoin`].
    pub fn fail_over(&mut self, failure: Failure) -> Result<Failover, LaunchError> {
        let old = self.primary;
        let new = 1 - old;
        match failure {
            Failure::Crash => self.servers[old].stop("immediate")?,
            Failure::Fence => {
                self.servers[old].set_read_only(true)?;
                // In force once a new session sees it (the postmaster has reloaded); open
                // sessions see it at their next statement.
                let deadline = Instant::now() + Duration::from_secs(10);
                while self.servers[old].admin_sql("SHOW default_transaction_read_only")? != "on" {
                    if Instant::now() >= deadline {
                        return Err(LaunchError::new(
                            "the fenced primary did not turn read-only within 10 s",
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        // The failure is complete: the server is gone, or refuses writes.
        let failed_at = SystemTime::now();
        let failed_instant = Instant::now();
        let started = Instant::now();
        // The standby was made to commit asynchronously once promoted (no standby of its own
        // until the old primary returns).
        self.servers[new].promote()?;
        let promote = started.elapsed();
        self.primary = new;
        Ok(Failover {
            failure,
            failed_at,
            failed_instant,
            promote,
        })
    }

    /// The old primary returns as the new primary's standby (a fresh base backup on its old
    /// port); with synchronous replication, commits wait for it again; returns once it has
    /// caught up.
    pub fn rejoin(&mut self) -> Result<(), LaunchError> {
        let [first, second] = &mut self.servers;
        let (primary, standby) = if self.primary == 0 {
            (&*first, second)
        } else {
            (&*second, first)
        };
        standby.rebuild_as_standby(primary)?;
        standby.set_read_only(false)?;
        if self.replication == Replication::Synchronous {
            primary.set_synchronous(true)?;
            // Its copy of those settings is reset: promoted later, it commits asynchronously
            // until its own standby returns.
            standby.set_synchronous(false)?;
        }
        standby.wait_caught_up(primary, Duration::from_secs(60))
    }

    /// The keys of every entry on the primary now.
    pub fn keys_on_primary(&self) -> Result<BTreeSet<String>, LaunchError> {
        let out = self
            .primary()
            .admin_sql(&format!("\\c {DATABASE}\nSELECT key FROM ltm_entries;"))?;
        Ok(out.lines().map(str::to_string).collect())
    }
}

/// What the writers saw.
#[derive(Debug, Default)]
struct Seen {
    acknowledged: Vec<String>,
    /// Writes that failed: each may or may not have committed.
    failed: Vec<String>,
    /// When each acknowledged write was sent and when it returned.
    successes: Vec<(Instant, Instant)>,
    /// Writes refused with SQLSTATE 25006 (a read-only server).
    read_only_refusals: u64,
    slowest: Duration,
}

/// Catalog writers: each writes new keys (`wN-I`) through `track_entry` until stopped,
/// noting each write acknowledged or failed, and pausing 20 ms after a failure.
pub struct Writers {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    hung: Arc<AtomicU64>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

/// How long one write may take before it counts as hung: longer than the pool's wait and
/// create timeouts together.
pub const HUNG_AFTER: Duration = Duration::from_secs(30);

impl Writers {
    /// Starts `count` writers on `catalog`, on the current tokio runtime.
    pub fn start(catalog: &crate::catalog::PostgresCatalog, count: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let hung = Arc::new(AtomicU64::new(0));
        let handles = (0..count)
            .map(|w| {
                let catalog = catalog.clone();
                let (stop, seen, hung) = (stop.clone(), seen.clone(), hung.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        let key = format!("w{w}-{i}");
                        i += 1;
                        let value = serde_json::json!({"w": w, "i": i});
                        let entry = crate::catalog::NewEntry {
                            key: key.clone(),
                            content_hash: crate::catalog::content_hash(&value),
                            storage_uri: None,
                            byte_size: 16,
                            inlined_value: Some(value),
                            metadata: serde_json::Map::new(),
                            expires_at: None,
                        };
                        let started = Instant::now();
                        let result =
                            tokio::time::timeout(HUNG_AFTER, catalog.track_entry(&entry)).await;
                        let took = started.elapsed();
                        let failed = {
                            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                            seen.slowest = seen.slowest.max(took);
                            match result {
                                Err(_) => {
                                    hung.fetch_add(1, Ordering::Relaxed);
                                    seen.failed.push(key);
                                    true
                                }
                                Ok(Ok(_)) => {
                                    seen.acknowledged.push(key);
                                    seen.successes.push((started, Instant::now()));
                                    false
                                }
                                Ok(Err(e)) => {
                                    if e.sqlstate() == Some("25006") {
                                        seen.read_only_refusals += 1;
                                    }
                                    seen.failed.push(key);
                                    true
                                }
                            }
                        };
                        if failed {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Writers {
            stop,
            seen,
            hung,
            handles,
        }
    }

    /// When the first write sent after `since` was acknowledged (a write already under way
    /// at `since` does not count), waiting up to `timeout` for one. It blocks the calling
    /// thread: call it from the thread that drives the failovers, not from the runtime.
    pub fn first_success_after(&self, since: Instant, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = {
                let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.successes
                    .iter()
                    .filter(|(sent, _)| *sent > since)
                    .map(|(_, acknowledged)| *acknowledged)
                    .min()
            };
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Writes acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .acknowledged
            .len()
    }

    /// Stops the writers and waits for them; returns what they saw.
    pub async fn finish(self) -> WriterTotals {
        self.stop.store(true, Ordering::Release);
        for handle in self.handles {
            let _ = handle.await;
        }
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()));
        WriterTotals {
            acknowledged: seen.acknowledged,
            failed: seen.failed,
            read_only_refusals: seen.read_only_refusals,
            hung: self.hung.load(Ordering::Relaxed),
            slowest: seen.slowest,
        }
    }
}

/// What the writers did over a whole run.
#[derive(Debug, Clone)]
pub struct WriterTotals {
    /// Keys whose write was acknowledged.
    pub acknowledged: Vec<String>,
    /// Keys whose write failed (committed or not: unknown).
    pub failed: Vec<String>,
    /// Writes a read-only server refused (SQLSTATE 25006).
    pub read_only_refusals: u64,
    /// Writes that took longer than [`HUNG_AFTER`].
    pub hung: u64,
    /// The slowest write, acknowledged or failed.
    pub slowest: Duration,
}

/// A soak run's result.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// Synchronous or asynchronous replication.
    pub replication: Replication,
    /// The failovers, in order.
    pub failovers: Vec<Failover>,
    /// For each failover, from the failure to the first acknowledged write after it.
    pub recovery: Vec<Option<Duration>>,
    /// What the writers did.
    pub totals: WriterTotals,
    /// Acknowledged writes missing on the last primary.
    pub lost: Vec<String>,
    /// Failed writes found on the last primary anyway (committed, the answer lost).
    pub failed_but_present: usize,
}

impl SoakReport {
    /// Compares what the writers were told with what the last primary holds.
    pub fn new(
        replication: Replication,
        failovers: Vec<Failover>,
        recovery: Vec<Option<Duration>>,
        totals: WriterTotals,
        present: &BTreeSet<String>,
    ) -> Self {
        let lost = totals
            .acknowledged
            .iter()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        let failed_but_present = totals
            .failed
            .iter()
            .filter(|k| present.contains(*k))
            .count();
        SoakReport {
            replication,
            failovers,
            recovery,
            totals,
            lost,
            failed_but_present,
        }
    }
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:?} replication, {} failovers: {} writes acknowledged, {} lost; {} failed \
             ({} of them committed after all); {} refused by a read-only server; {} hung; \
             slowest write {:.0} ms",
            self.replication,
            self.failovers.len(),
            self.totals.acknowledged.len(),
            self.lost.len(),
            self.totals.failed.len(),
            self.failed_but_present,
            self.totals.read_only_refusals,
            self.totals.hung,
            self.totals.slowest.as_secs_f64() * 1000.0
        )?;
        for (failover, recovery) in self.failovers.iter().zip(&self.recovery) {
            writeln!(
                f,
                "  {:?}: promote {:.0} ms, first write after the failure {}",
                failover.failure,
                failover.promote.as_secs_f64() * 1000.0,
                recovery.map_or("never".to_string(), |d| format!(
                    "{:.0} ms",
                    d.as_secs_f64() * 1000.0
                ))
            )?;
        }
        Ok(())
    }
}
