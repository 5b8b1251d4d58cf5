//! The pool against a launched PostgreSQL: sizes, maximum lifetime, the health check on
//! recycle, the wait timeout, and connections that outlive their password.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tea_pgcloud::conformance::launcher::PgServer;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::error::ErrorClass;
use tea_pgcloud::pool::{HealthCheck, Pool, PoolError, PoolOptions};

fn plan(server: &PgServer, password: &str) -> tea_pgcloud::plan::ConnectPlan {
    common::plan_of(&format!(
        "connection_string: \"host=127.0.0.1 port={} user={} password={} dbname=postgres sslmode=disable\"\n",
        server.port(),
        server.user(),
        password,
    ))
}

fn options(min: usize, max: usize) -> PoolOptions {
    PoolOptions {
        min_size: min,
        max_size: max,
        ..PoolOptions::default()
    }
}

async fn backend_pid(pool: &Pool) -> i32 {
    let client = pool.get().await.expect("a connection");
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("a query")
        .get(0)
}

#[test]
fn the_pool_opens_min_size_and_never_more_than_max_size() {
    let server = common::plain_server("pool-sizes");
    common::block_on(async {
        let pool = Pool::builder(plan(&server, server.password()), Arc::new(MapEnv::new()))
            .options(options(2, 4))
            .build()
            .await
            .expect("a pool");
        assert_eq!(pool.status().size, 2, "min_size connections at start");
        assert_eq!(pool.stats().connections_opened, 2);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let client = pool.get().await.expect("a connection");
                    let user: String = client
                        .query_one("SELECT current_user::text", &[])
                        .await
                        .expect("a query")
                        .get(0);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    user
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.expect("joins"), server.user());
        }
        let status = pool.status();
        assert!(status.size <= 4, "{status:?}");
        assert!(pool.stats().connections_opened <= 4, "{:?}", pool.stats());
        let shown = format!("{pool:?}");
        assert!(!shown.contains(server.password()), "{shown}");
    });
}

#[test]
fn connections_are_replaced_after_their_maximum_lifetime() {
    let server = common::plain_server("pool-lifetime");
    common::block_on(async {
        let pool = Pool::builder(plan(&server, server.password()), Arc::new(MapEnv::new()))
            .options(PoolOptions {
                max_lifetime: Some(Duration::from_millis(300)),
                ..options(1, 1)
            })
            .build()
            .await
            .expect("a pool");
        let first = backend_pid(&pool).await;
        assert_eq!(backend_pid(&pool).await, first, "reused while young");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let second = backend_pid(&pool).await;
        assert_ne!(second, first, "replaced once old");
        assert_eq!(pool.stats().expired, 1);
        assert_eq!(pool.stats().connections_opened, 2);
    });
}

#[test]
fn a_connection_the_server_dropped_is_replaced_before_the_caller_sees_it() {
    let server = common::plain_server("pool-health");
    common::block_on(async {
        let pool = Pool::builder(plan(&server, server.password()), Arc::new(MapEnv::new()))
            .options(PoolOptions {
                health_check: HealthCheck::Verified,
                ..options(1, 1)
            })
            .build()
            .await
            .expect("a pool");
        let pid = backend_pid(&pool).await;
        server
            .admin_sql(&format!("SELECT pg_terminate_backend({pid})"))
            .expect("terminates");
        // The idle connection is dead; the caller gets a new one, not an error.
        let again = backend_pid(&pool).await;
        assert_ne!(again, pid);
        assert_eq!(pool.stats().unhealthy, 1, "{:?}", pool.stats());
    });
}

#[test]
fn a_full_pool_times_out_with_a_clear_error() {
    let server = common::plain_server("pool-timeout");
    common::block_on(async {
        let pool = Pool::builder(plan(&server, server.password()), Arc::new(MapEnv::new()))
            .options(PoolOptions {
                wait_timeout: Some(Duration::from_millis(200)),
                ..options(1, 1)
            })
            .build()
            .await
            .expect("a pool");
        let held = pool.get().await.expect("the one connection");
        let err = pool.get().await.expect_err("none free");
        assert!(matches!(err, PoolError::Timeout), "{err:?}");
        assert_eq!(err.class(), ErrorClass::Unreachable);
        assert!(err.to_string().contains("timed out"), "{err}");
        drop(held);
        let _free = pool.get().await.expect("free again");
    });
}

#[test]
fn open_connections_outlive_a_changed_password_and_new_ones_fail_clearly() {
    let server = common::plain_server("pool-outlive");
    common::block_on(async {
        let pool = Pool::builder(plan(&server, server.password()), Arc::new(MapEnv::new()))
            .options(options(1, 2))
            .build()
            .await
            .expect("a pool");
        let held = pool.get().await.expect("a connection");
        server
            .admin_sql(&format!(
                "ALTER ROLE \"{}\" PASSWORD 'something-else'",
                server.user()
            ))
            .expect("rotates");
        // The open connection keeps working: servers check a password only at login.
        held.simple_query("SELECT 1").await.expect("still usable");
        // A new physical connection with the old password is refused, as auth-failed, and
        // the message never quotes the password.
        let err = pool.get().await.expect_err("old password");
        assert_eq!(err.class(), ErrorClass::AuthFailed, "{err}");
        assert!(!err.to_string().contains(server.password()), "{err}");
        assert_eq!(pool.stats().connect_failures, 1);
    });
}

#[test]
fn a_pool_that_cannot_open_its_first_connection_fails_to_build() {
    let server = common::plain_server("pool-build-fails");
    common::block_on(async {
        let err = Pool::builder(plan(&server, "wrong-password"), Arc::new(MapEnv::new()))
            .options(options(1, 2))
            .build()
            .await
            .expect_err("wrong password");
        assert_eq!(err.class(), ErrorClass::AuthFailed, "{err}");
        assert!(!err.to_string().contains("wrong-password"), "{err}");
    });
}
