//! What a server says about a session, and libpq's choice of server by it
//! (`target_session_attrs`, `load_balance_hosts`).
//!
//! PostgreSQL 14 and later report `in_hot_standby` and `default_transaction_read_only` at
//! start-up and again whenever either changes (a promotion, a reload that turns a server
//! read-only), each time before a `ReadyForQuery`. [`SessionState`] keeps the latest values for
//! the life of the connection: the connection task ([`watch`]) copies them out of
//! tokio-postgres's connection after every poll, so the pool can see a server that turned
//! read-only or was promoted without a query of its own.
//!
//! [`check`] is libpq's `CONNECTION_CHECK_TARGET` (`fe-connect.c`): the reported values when
//! the server sent both (else libpq's own queries), and libpq's texts for a server of the wrong
//! kind.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{Client, Connection};

use crate::plan::TargetSessionAttrs;

const UNKNOWN: u8 = 0;
const NO: u8 = 1;
const YES: u8 = 2;

/// A reported boolean parameter's value as libpq reads it (`PG_BOOL_YES` for `on`, else
/// `PG_BOOL_NO`).
fn reported(value: Option<&str>) -> u8 {
    match value {
        None => UNKNOWN,
        Some("on") => YES,
        Some(_) => NO,
    }
}

fn known(value: u8) -> Option<bool> {
    match value {
        YES => Some(true),
        NO => Some(false),
        _ => None,
    }
}

/// What the server has reported about this session, kept current while the connection runs.
#[derive(Debug, Default)]
pub struct SessionState {
    hot_standby: AtomicU8,
    read_only: AtomicU8,
    version: Mutex<Option<String>>,
}

impl SessionState {
    /// The server's last reported `in_hot_standby`; `None` when it reports none (before
    /// PostgreSQL 14).
    pub fn in_hot_standby(&self) -> Option<bool> {
        known(self.hot_standby.load(Ordering::Acquire))
    }

    /// The server's last reported `default_transaction_read_only`; `None` when it reports none.
    pub fn default_transaction_read_only(&self) -> Option<bool> {
        known(self.read_only.load(Ordering::Acquire))
    }

    /// The `server_version` the server reported at start-up.
    pub fn server_version(&self) -> Option<String> {
        self.version.lock().ok().and_then(|v| v.clone())
    }

    /// Whether the session, as last reported, satisfies `target` (libpq's test, with
    /// `prefer-standby` taken as "any": its second pass accepts every server). `None` when the
    /// server reported too little to tell.
    pub fn satisfies(&self, target: TargetSessionAttrs) -> Option<bool> {
        match target {
            TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby => Some(true),
            TargetSessionAttrs::ReadWrite | TargetSessionAttrs::ReadOnly => {
                let read_only = self.in_hot_standby()? || self.default_transaction_read_only()?;
                Some(read_only == (target == TargetSessionAttrs::ReadOnly))
            }
            TargetSessionAttrs::Primary => Some(!self.in_hot_standby()?),
            TargetSessionAttrs::Standby => Some(self.in_hot_standby()?),
        }
    }

    /// Copies the values the server has reported; a value it never reported is left as it is
    /// (unknown, or what libpq's query found).
    fn update<S, T>(&self, connection: &Connection<S, T>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
        T: AsyncRead + AsyncWrite + Unpin,
    {
        for (name, slot) in [
            ("in_hot_standby", &self.hot_standby),
            ("default_transaction_read_only", &self.read_only),
        ] {
            if let Some(value) = connection.parameter(name) {
                slot.store(reported(Some(value)), Ordering::Release);
            }
        }
    }

    fn set(&self, hot_standby: bool, read_only: bool) {
        let flag = |b| if b { YES } else { NO };
        self.hot_standby.store(flag(hot_standby), Ordering::Release);
        self.read_only.store(flag(read_only), Ordering::Release);
    }
}

/// The connection task: tokio-postgres's connection, with `state` updated after every poll.
pub(super) struct Watched<S, T> {
    connection: Connection<S, T>,
    state: Arc<SessionState>,
}

impl<S, T> Future for Watched<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    type Output = Result<(), tokio_postgres::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = Pin::new(&mut this.connection).poll(cx);
        this.state.update(&this.connection);
        result
    }
}

/// Reads what the server reported at start-up and returns the connection task that keeps the
/// state current.
pub(super) fn watch<S, T>(connection: Connection<S, T>) -> (Watched<S, T>, Arc<SessionState>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let state = Arc::new(SessionState::default());
    state.update(&connection);
    if let Ok(mut version) = state.version.lock() {
        *version = connection.parameter("server_version").map(str::to_string);
    }
    (
        Watched {
            connection,
            state: state.clone(),
        },
        state,
    )
}

/// Why a server that let us in is not taken: libpq then tries the next host (never the next
/// address of the same host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rejection {
    /// The server is of the wrong kind (libpq's `session is read-only`, ...).
    WrongKind(String),
    /// libpq's query to find out failed (`"SHOW transaction_read_only" failed`).
    QueryFailed(String),
}

/// libpq's `CONNECTION_CHECK_TARGET` for `target` (`prefer-standby`'s second pass is
/// [`TargetSessionAttrs::Any`]): the reported values when the server sent both, else
/// `SHOW transaction_read_only` or `SELECT pg_catalog.pg_is_in_recovery()`, each within
/// `timeout`.
pub(super) async fn check(
    client: &Client,
    state: &SessionState,
    target: TargetSessionAttrs,
    timeout: Duration,
) -> Result<(), Rejection> {
    match target {
        TargetSessionAttrs::Any => Ok(()),
        TargetSessionAttrs::ReadWrite | TargetSessionAttrs::ReadOnly => {
            let read_only = match (
                state.in_hot_standby(),
                state.default_transaction_read_only(),
            ) {
                (Some(hot), Some(read_only)) => hot || read_only,
                _ => {
                    let on = query_bool(client, "SHOW transaction_read_only", "on", timeout)
                        .await
                        .ok_or_else(|| {
                            Rejection::QueryFailed(
                                "\"SHOW transaction_read_only\" failed".to_string(),
                            )
                        })?;
                    // libpq: "on" proves one of the two is on without saying which; it sets
                    // both.
                    state.set(on, on);
                    on
                }
            };
            match (target, read_only) {
                (TargetSessionAttrs::ReadWrite, false) | (TargetSessionAttrs::ReadOnly, true) => {
                    Ok(())
                }
                (TargetSessionAttrs::ReadWrite, _) => {
                    Err(Rejection::WrongKind("session is read-only".to_string()))
                }
                _ => Err(Rejection::WrongKind("session is not read-only".to_string())),
            }
        }
        TargetSessionAttrs::Primary
        | TargetSessionAttrs::Standby
        | TargetSessionAttrs::PreferStandby => {
            let hot_standby = match state.in_hot_standby() {
                Some(hot) => hot,
                None => {
                    let hot = query_bool(
                        client,
                        "SELECT pg_catalog.pg_is_in_recovery()",
                        "t",
                        timeout,
                    )
                    .await
                    .ok_or_else(|| {
                        Rejection::QueryFailed("\"SELECT pg_is_in_recovery()\" failed".to_string())
                    })?;
                    state
                        .hot_standby
                        .store(if hot { YES } else { NO }, Ordering::Release);
                    hot
                }
            };
            match (target, hot_standby) {
                (TargetSessionAttrs::Primary, true) => Err(Rejection::WrongKind(
                    "server is in hot standby mode".to_string(),
                )),
                (TargetSessionAttrs::Primary, false) => Ok(()),
                (_, true) => Ok(()),
                (_, false) => Err(Rejection::WrongKind(
                    "server is not in hot standby mode".to_string(),
                )),
            }
        }
    }
}

/// One simple query whose single value is compared with `yes` (libpq compares the text);
/// `None` when the query fails, times out or returns other than one row.
async fn query_bool(client: &Client, sql: &str, yes: &str, timeout: Duration) -> Option<bool> {
    let messages = tokio::time::timeout(timeout, client.simple_query(sql))
        .await
        .ok()?
        .ok()?;
    let rows: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .collect();
    match rows.as_slice() {
        // `try_get`: a row without columns is an error, never a panic.
        [row] => Some(row.try_get(0).ok()??.starts_with(yes)),
        _ => None,
    }
}

/// A uniform random index in `0..=max` from the system's generator (rejection sampling, no
/// modulo bias); 0 if the generator fails.
fn random_index(max: usize) -> usize {
    use ring::rand::SecureRandom;
    let Some(span) = (max as u64).checked_add(1) else {
        return 0;
    };
    let zone = u64::MAX - (u64::MAX % span);
    let rng = ring::rand::SystemRandom::new();
    loop {
        let mut bytes = [0u8; 8];
        if rng.fill(&mut bytes).is_err() {
            return 0;
        }
        let n = u64::from_le_bytes(bytes);
        if n < zone {
            return usize::try_from(n % span).unwrap_or(0);
        }
    }
}

/// A Fisher-Yates shuffle, as libpq shuffles hosts and addresses for
/// `load_balance_hosts=random`.
pub(super) fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = random_index(i);
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(hot: Option<bool>, ro: Option<bool>) -> SessionState {
        let s = SessionState::default();
        let v = |b: Option<bool>| match b {
            None => UNKNOWN,
            Some(true) => YES,
            Some(false) => NO,
        };
        s.hot_standby.store(v(hot), Ordering::Release);
        s.read_only.store(v(ro), Ordering::Release);
        s
    }

    #[test]
    fn libpq_reads_on_as_yes_and_anything_else_as_no() {
        assert_eq!(reported(Some("on")), YES);
        assert_eq!(reported(Some("off")), NO);
        assert_eq!(reported(Some("ON")), NO);
        assert_eq!(reported(None), UNKNOWN);
    }

    #[test]
    fn each_target_accepts_the_servers_libpq_accepts() {
        use TargetSessionAttrs as T;
        // (in_hot_standby, default_transaction_read_only) -> accepted targets
        let primary = state(Some(false), Some(false));
        let read_only_primary = state(Some(false), Some(true));
        let standby = state(Some(true), Some(false));
        for (s, accepted) in [
            (
                &primary,
                vec![T::Any, T::ReadWrite, T::Primary, T::PreferStandby],
            ),
            (
                &read_only_primary,
                vec![T::Any, T::ReadOnly, T::Primary, T::PreferStandby],
            ),
            (
                &standby,
                vec![T::Any, T::ReadOnly, T::Standby, T::PreferStandby],
            ),
        ] {
            for t in T::ALL {
                assert_eq!(s.satisfies(t), Some(accepted.contains(&t)), "{t}");
            }
        }
        assert_eq!(state(None, Some(false)).satisfies(T::ReadWrite), None);
        assert_eq!(state(Some(false), None).satisfies(T::ReadOnly), None);
        assert_eq!(state(None, None).satisfies(T::Any), Some(true));
    }

    #[test]
    fn shuffles_are_permutations_and_reach_every_order() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let mut v = [1, 2, 3];
            shuffle(&mut v);
            let mut sorted = v;
            sorted.sort_unstable();
            assert_eq!(sorted, [1, 2, 3]);
            seen.insert(v);
        }
        assert_eq!(
            seen.len(),
            6,
            "every order of three appears in 2000 shuffles"
        );
        for max in [0usize, 1, 2, 6] {
            for _ in 0..100 {
                assert!(random_index(max) <= max);
            }
        }
    }
}
