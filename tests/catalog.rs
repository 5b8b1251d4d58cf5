//! `PostgresCatalog` against launched PostgreSQL servers: every operation, `LIKE` escaping,
//! atomic and non-atomic batches, bounded cleanup, concurrent writers, concurrent migration,
//! adoption of the tables TEA's Python catalog created, lazy start, and errors that keep the
//! password out.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tea_pgcloud::catalog::{
    BatchOutcome, CatalogErrorKind, CatalogOptions, ListQuery, NewEntry, PostgresCatalog,
    content_hash, entry_id,
};
use tea_pgcloud::conformance::launcher::PgServer;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::error::ErrorClass;
use tea_pgcloud::pool::{Pool, PoolOptions};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/catalog");

/// A catalog YAML for database `db` of `server`, with extra top-level keys.
fn yaml(server: &PgServer, db: &str, password: &str, extra: &str) -> String {
    format!(
        "connection_string: \"host=127.0.0.1 port={} user={} password={password} dbname={db} sslmode=disable\"\n{extra}",
        server.port(),
        server.user(),
    )
}

async fn open(server: &PgServer, db: &str, extra: &str) -> PostgresCatalog {
    PostgresCatalog::from_yaml(
        &yaml(server, db, server.password(), extra),
        "test.yaml",
        Arc::new(MapEnv::new()),
    )
    .await
    .expect("a catalog")
}

async fn pool_for(server: &PgServer, db: &str, max: usize) -> Pool {
    let plan = common::plan_of(&yaml(server, db, server.password(), ""));
    Pool::builder(plan, Arc::new(MapEnv::new()))
        .options(PoolOptions {
            min_size: 1,
            max_size: max,
            ..PoolOptions::default()
        })
        .build()
        .await
        .expect("a pool")
}

fn meta(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn keys(entries: &[tea_pgcloud::catalog::Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

/// Backends of role `tea` connected to `db`, as the server sees them.
fn sessions(server: &PgServer, db: &str) -> u32 {
    server
        .admin_sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = '{}' AND datname = '{db}'",
            server.user()
        ))
        .expect("pg_stat_activity")
        .parse()
        .expect("a count")
}

#[test]
fn every_operation_works_and_round_trips_its_values() {
    let server = common::plain_server("catalog-ops");
    server
        .create_database("ltm", server.user())
        .expect("creates the database");
    common::block_on(async {
        let catalog = open(&server, "ltm", "").await;
        let shown = format!("{catalog:?}");
        assert!(!shown.contains(server.password()), "{shown}");

        // track_entry: created, then updated.
        let expires = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let value = json!({"name": "Zoë", "scores": [1, 2.5, -3e-7], "nested": {"ok": true}});
        let first = NewEntry::inline("user:1", value.clone())
            .with_metadata(meta(json!({"type": "profile", "tier": 2})))
            .with_expiry(expires);
        let t = catalog.track_entry(&first).await.expect("tracks");
        assert!(t.created);
        assert_eq!(t.entry_id, entry_id("user:1"));
        let got = catalog
            .get_entry("user:1")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(got.id, entry_id("user:1"));
        assert_eq!(got.content_hash, content_hash(&value));
        assert_eq!(got.inlined_value.as_ref(), Some(&value));
        assert_eq!(got.metadata, json!({"type": "profile", "tier": 2}));
        assert_eq!(got.expires_at, Some(expires));
        assert_eq!(got.storage_uri, None);
        assert_eq!(got.byte_size, first.byte_size);
        let created_at = got.created_at.expect("created_at");

        let stored = NewEntry::stored("user:1", "sha256:abc", "gs://b/user-1.json", 4096)
            .with_metadata(meta(json!({"type": "profile"})));
        let t = catalog.track_entry(&stored).await.expect("tracks again");
        assert!(!t.created, "the second track of a key updates");
        let got = catalog
            .get_entry("user:1")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(got.content_hash, "sha256:abc");
        assert_eq!(got.storage_uri.as_deref(), Some("gs://b/user-1.json"));
        assert_eq!(got.byte_size, 4096);
        assert_eq!(got.inlined_value, None);
        assert_eq!(got.expires_at, None);
        assert_eq!(got.created_at, Some(created_at), "created_at is kept");
        assert!(got.updated_at > Some(created_at));
        assert_eq!(catalog.get_entry("nope").await.expect("reads"), None);

        // list_entries: prefix, metadata filter, newest first, limit.
        for (k, kind) in [
            ("user:2", "profile"),
            ("doc:1", "document"),
            ("user:3", "session"),
        ] {
            let e = NewEntry::inline(k, json!(k)).with_metadata(meta(json!({"type": kind})));
            catalog.track_entry(&e).await.expect("tracks");
        }
        let users = catalog
            .list_entries(&ListQuery::prefix("user:"))
            .await
            .expect("lists");
        assert_eq!(keys(&users), ["user:3", "user:2", "user:1"], "newest first");
        let profiles = catalog
            .list_entries(&ListQuery::default().with_metadata(meta(json!({"type": "profile"}))))
            .await
            .expect("lists");
        assert_eq!(keys(&profiles), ["user:2", "user:1"]);
        let both = catalog
            .list_entries(
                &ListQuery::prefix("user:").with_metadata(meta(json!({"type": "session"}))),
            )
            .await
            .expect("lists");
        assert_eq!(keys(&both), ["user:3"]);
        let limited = catalog
            .list_entries(&ListQuery::default().with_limit(2))
            .await
            .expect("lists");
        assert_eq!(keys(&limited), ["user:3", "doc:1"]);
        let err = catalog
            .list_entries(&ListQuery::default().with_limit(-1))
            .await
            .expect_err("negative limit");
        assert_eq!(err.kind(), CatalogErrorKind::InvalidInput);

        // retrieve_batch: in the order asked, missing keys as None.
        let got = catalog
            .retrieve_batch(&["doc:1", "missing", "user:2"])
            .await
            .expect("retrieves");
        let summary: Vec<(&str, Option<&str>)> = got
            .iter()
            .map(|(k, e)| (k.as_str(), e.as_ref().map(|e| e.key.as_str())))
            .collect();
        assert_eq!(
            summary,
            [
                ("doc:1", Some("doc:1")),
                ("missing", None),
                ("user:2", Some("user:2"))
            ]
        );
        assert!(
            catalog
                .retrieve_batch::<&str>(&[])
                .await
                .expect("empty")
                .is_empty()
        );

        // Snapshots and changes since.
        let snap = catalog.create_snapshot("nightly").await.expect("snapshot");
        assert_eq!(snap.name, "nightly");
        assert_eq!(snap.entry_count, 4);
        let expected_bytes = 4096
            + ["user:2", "doc:1", "user:3"]
                .iter()
                .map(|k| i64::from(NewEntry::inline(*k, json!(k)).byte_size))
                .sum::<i64>();
        assert_eq!(snap.total_bytes, expected_bytes);
        assert_eq!(
            catalog.get_snapshot(&snap.id).await.expect("reads"),
            Some(snap.clone())
        );
        assert_eq!(catalog.get_snapshot("no-such").await.expect("reads"), None);
        assert!(
            catalog
                .get_changed_entries(Some(&snap.id))
                .await
                .expect("changes")
                .is_empty()
        );
        catalog
            .track_entry(&NewEntry::inline("doc:1", json!("new text")))
            .await
            .expect("changes doc:1");
        catalog
            .track_entry(&NewEntry::inline("user:2", json!("user:2")))
            .await
            .expect("same content for user:2");
        catalog
            .track_entry(&NewEntry::inline("new:1", json!(1)))
            .await
            .expect("adds new:1");
        let changed = catalog
            .get_changed_entries(Some(&snap.id))
            .await
            .expect("changes");
        assert_eq!(
            keys(&changed),
            ["new:1", "doc:1"],
            "changed or new, not same-content"
        );
        assert_eq!(
            catalog.get_changed_entries(None).await.expect("all").len(),
            5
        );
        let err = catalog
            .get_changed_entries(Some("no-such"))
            .await
            .expect_err("unknown snapshot");
        assert_eq!(err.kind(), CatalogErrorKind::NotFound);

        // delete_entry, stats.
        assert!(catalog.delete_entry("new:1").await.expect("deletes"));
        assert!(
            !catalog
                .delete_entry("new:1")
                .await
                .expect("deletes nothing")
        );
        let stats = catalog.stats().await.expect("stats");
        assert_eq!(stats.entries, 4);
        assert_eq!(stats.snapshots, 1);
        assert_eq!(stats.schema_version, Some(1));
        let listed: i64 = catalog
            .list_entries(&ListQuery::default())
            .await
            .expect("lists")
            .iter()
            .map(|e| i64::from(e.byte_size))
            .sum();
        assert_eq!(stats.total_bytes, listed);

        // close: later operations fail clearly, clones included.
        let clone = catalog.clone();
        catalog.close();
        let err = clone.get_entry("user:1").await.expect_err("closed");
        assert_eq!(err.kind(), CatalogErrorKind::Closed);
    });
}

#[test]
fn list_prefixes_are_taken_literally() {
    let server = common::plain_server("catalog-like");
    server
        .create_database("ltm", server.user())
        .expect("creates the database");
    common::block_on(async {
        let catalog = open(&server, "ltm", "").await;
        for k in ["a%", "a%b", "ab", "a_c", "abc", "a\\x", "ay", "b%"] {
            catalog
                .track_entry(&NewEntry::inline(k, json!(k)))
                .await
                .expect("tracks");
        }
        let mut cases = vec![
            ("a%", vec!["a%", "a%b"]),
            ("a_", vec!["a_c"]),
            ("a\\", vec!["a\\x"]),
            ("%", vec![]),
            (
                "",
                vec!["a%", "a%b", "a\\x", "a_c", "ab", "abc", "ay", "b%"],
            ),
        ];
        for (prefix, want) in cases.drain(..) {
            let got = catalog
                .list_entries(&ListQuery::prefix(prefix))
                .await
                .expect("lists");
            let mut got = keys(&got);
            got.sort_unstable();
            assert_eq!(got, want, "prefix {prefix:?}");
        }
    });
}

#[test]
fn atomic_batches_are_all_or_nothing_and_others_keep_the_good_entries() {
    let server = common::plain_server("catalog-batch");
    server
        .create_database("ltm", server.user())
        .expect("creates the database");
    common::block_on(async {
        let catalog = open(&server, "ltm", "").await;
        catalog
            .track_entry(&NewEntry::inline("existing", json!(0)))
            .await
            .expect("tracks");
        let too_long = "k".repeat(1025);
        let batch = |tag: &str| {
            vec![
                NewEntry::inline(format!("{tag}:1"), json!(1)),
                NewEntry::inline("existing", json!(tag)),
                NewEntry::inline(too_long.clone(), json!("x")),
                NewEntry::inline(format!("{tag}:2"), json!(2)),
            ]
        };

        let report = catalog
            .store_batch(&batch("atomic"), true)
            .await
            .expect("runs");
        assert!(!report.success());
        assert_eq!(report.stored_count(), 0);
        assert_eq!(report.failed_count(), 1);
        assert_eq!(report.items[0].outcome, BatchOutcome::RolledBack);
        assert_eq!(report.items[1].outcome, BatchOutcome::RolledBack);
        match &report.items[2].outcome {
            BatchOutcome::Failed(e) => {
                assert_eq!(e.sqlstate(), Some("22001"), "{e}");
                assert!(!e.to_string().contains(server.password()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(report.items[3].outcome, BatchOutcome::RolledBack);
        assert_eq!(catalog.get_entry("atomic:1").await.expect("reads"), None);
        let existing = catalog
            .get_entry("existing")
            .await
            .expect("reads")
            .expect("kept");
        assert_eq!(
            existing.inlined_value,
            Some(json!(0)),
            "the update was rolled back"
        );

        let report = catalog
            .store_batch(&batch("loose"), false)
            .await
            .expect("runs");
        assert!(!report.success());
        assert_eq!(report.stored_count(), 3);
        assert_eq!(report.failed_count(), 1);
        assert_eq!(
            report.items[0].outcome,
            BatchOutcome::Stored { created: true }
        );
        assert_eq!(
            report.items[1].outcome,
            BatchOutcome::Stored { created: false }
        );
        assert!(matches!(report.items[2].outcome, BatchOutcome::Failed(_)));
        assert_eq!(
            report.items[3].outcome,
            BatchOutcome::Stored { created: true }
        );
        assert_eq!(report.items[2].key, too_long);
        let got = catalog
            .retrieve_batch(&["loose:1", "loose:2", "existing"])
            .await
            .expect("reads");
        assert!(got.iter().all(|(_, e)| e.is_some()), "{got:?}");
        assert_eq!(
            got[2].1.as_ref().and_then(|e| e.inlined_value.clone()),
            Some(json!("loose"))
        );

        let ok = catalog
            .store_batch(&[NewEntry::inline("solo", json!(1))], true)
            .await
            .expect("runs");
        assert!(ok.success());
        assert!(
            catalog
                .store_batch(&[], true)
                .await
                .expect("empty")
                .success()
        );
        assert_eq!(catalog.stats().await.expect("stats").entries, 4);
    });
}

#[test]
fn cleanup_deletes_at_most_the_batch_limit_per_call() {
    let server = common::plain_server("catalog-cleanup");
    server
        .create_database("ltm", server.user())
        .expect("creates the database");
    common::block_on(async {
        let catalog = open(&server, "ltm", "").await;
        let past = SystemTime::now() - Duration::from_secs(3600);
        let future = SystemTime::now() + Duration::from_secs(3600);
        let mut entries: Vec<NewEntry> = (0..25)
            .map(|i| NewEntry::inline(format!("old:{i}"), json!(i)).with_expiry(past))
            .collect();
        entries.extend(
            (0..3).map(|i| NewEntry::inline(format!("later:{i}"), json!(i)).with_expiry(future)),
        );
        entries.extend((0..2).map(|i| NewEntry::inline(format!("forever:{i}"), json!(i))));
        assert!(
            catalog
                .store_batch(&entries, true)
                .await
                .expect("stores")
                .success()
        );

        let mut seen = Vec::new();
        loop {
            let c = catalog.cleanup_expired(10).await.expect("cleans");
            seen.push((c.deleted, c.remaining));
            if c.deleted == 0 {
                break;
            }
        }
        assert_eq!(seen, [(10, 15), (10, 5), (5, 0), (0, 0)]);
        let left = catalog
            .list_entries(&ListQuery::default())
            .await
            .expect("lists");
        let mut left = keys(&left);
        left.sort_unstable();
        assert_eq!(
            left,
            ["forever:0", "forever:1", "later:0", "later:1", "later:2"]
        );
        let err = catalog.cleanup_expired(0).await.expect_err("limit 0");
        assert_eq!(err.kind(), CatalogErrorKind::InvalidInput);
    });
}

#[test]
fn concurrent_writers_lose_nothing_and_count_creations_exactly() {
    const TASKS: usize = 16;
    const OWN: usize = 25;
    const SHARED: usize = 10;
    let server = common::plain_server("catalog-writers");
    server
        .create_database("ltm", server.user())
        .expect("creates the database");
    common::block_on_multi(async {
        let catalog = open(&server, "ltm", "max_size: 4\n").await;
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let catalog = catalog.clone();
                tokio::spawn(async move {
                    let mut created = (0usize, 0usize);
                    for i in 0..OWN.max(SHARED) {
                        if i < OWN {
                            let e = NewEntry::inline(format!("task{t}:{i}"), json!([t, i]));
                            if catalog.track_entry(&e).await.expect("tracks").created {
                                created.0 += 1;
                            }
                        }
                        if i < SHARED {
                            let e = NewEntry::inline(format!("shared:{i}"), json!(t));
                            if catalog.track_entry(&e).await.expect("tracks").created {
                                created.1 += 1;
                            }
                        }
                    }
                    created
                })
            })
            .collect();
        let (mut own, mut shared) = (0, 0);
        for task in tasks {
            let (o, s) = task.await.expect("joins");
            own += o;
            shared += s;
        }
        assert_eq!(own, TASKS * OWN, "every own key created once");
        assert_eq!(
            shared, SHARED,
            "each shared key created by exactly one writer"
        );
        let stats = catalog.stats().await.expect("stats");
        assert_eq!(stats.entries as usize, TASKS * OWN + SHARED);

        // Atomic batches of the same new keys at once: every batch succeeds, each key is
        // created by exactly one of them.
        let batches: Vec<_> = (0..8)
            .map(|t| {
                let catalog = catalog.clone();
                tokio::spawn(async move {
                    let entries: Vec<NewEntry> = (0..20)
                        .map(|i| NewEntry::inline(format!("batch:{i}"), json!([t, i])))
                        .collect();
                    catalog.store_batch(&entries, true).await.expect("a batch")
                })
            })
            .collect();
        let mut created = 0;
        for b in batches {
            let report = b.await.expect("joins");
            assert!(report.success(), "{report:?}");
            created += report
                .items
                .iter()
                .filter(|i| i.outcome == BatchOutcome::Stored { created: true })
                .count();
        }
        assert_eq!(created, 20);
        let stats = catalog.stats().await.expect("stats");
        assert_eq!(stats.entries as usize, TASKS * OWN + SHARED + 20);
        let pool = catalog.pool_if_open().expect("open");
        assert!(pool.stats().connections_opened <= 4, "{:?}", pool.stats());
    });
}

#[test]
fn two_catalogs_starting_together_migrate_a_fresh_database_once() {
    let server = common::plain_server("catalog-migrate");
    common::block_on_multi(async {
        for round in 0..3 {
            let db = format!("fresh{round}");
            server
                .create_database(&db, server.user())
                .expect("creates the database");
            let (a, b) = tokio::join!(open(&server, &db, ""), open(&server, &db, ""));
            let client = a.pool().await.expect("pool").get().await.expect("client");
            let rows = client
                .query("SELECT version, description FROM ltm_schema_version", &[])
                .await
                .expect("version table");
            assert_eq!(rows.len(), 1, "round {round}: one migration recorded");
            assert_eq!(rows[0].get::<_, i32>(0), 1);
            let again = b.migrate().await.expect("migrates");
            assert_eq!((again.from, again.to), (1, 1));
            assert!(again.applied.is_empty(), "idempotent: {again:?}");
            assert_eq!(b.stats().await.expect("stats").schema_version, Some(1));
        }
    });
}

/// Columns and indexes of the catalog tables, as text, for comparing two databases.
async fn schema_of(client: &tokio_postgres::Client) -> Vec<String> {
    let columns = client
        .query(
            "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' ||
                    COALESCE(character_maximum_length::text, '-') || ' ' || is_nullable || ' ' ||
                    COALESCE(column_default, '-')
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name LIKE 'ltm\\_%'
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .expect("columns");
    let indexes = client
        .query(
            "SELECT indexdef FROM pg_indexes
             WHERE schemaname = 'public' AND tablename LIKE 'ltm\\_%' ORDER BY indexname",
            &[],
        )
        .await
        .expect("indexes");
    let constraints = client
        .query(
            "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
             FROM pg_constraint WHERE conrelid::regclass::text LIKE 'ltm\\_%' ORDER BY 1",
            &[],
        )
        .await
        .expect("constraints");
    columns
        .iter()
        .chain(&indexes)
        .chain(&constraints)
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[test]
fn tables_created_by_the_python_catalog_are_adopted_without_data_loss() {
    let server = common::plain_server("catalog-python");
    server
        .create_database("python", server.user())
        .expect("creates the database");
    server
        .create_database("rust", server.user())
        .expect("creates the database");
    let ddl = std::fs::read_to_string(format!("{FIXTURES}/python_ddl.sql")).expect("DDL");
    let rows_sql = std::fs::read_to_string(format!("{FIXTURES}/python_rows.sql")).expect("rows");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/python_rows.json")).expect("rows json"),
    )
    .expect("JSON");
    common::block_on(async {
        // The Python catalog's start-up and writes, as the application role.
        let pool = pool_for(&server, "python", 2).await;
        {
            let client = pool.get().await.expect("client");
            client.batch_execute(&ddl).await.expect("Python DDL");
            client.batch_execute(&rows_sql).await.expect("Python rows");
            assert_eq!(
                tea_pgcloud::catalog::schema::current_version(&client)
                    .await
                    .expect("version"),
                None,
                "no version table before the Rust catalog"
            );
        }
        let catalog = PostgresCatalog::from_pool(pool, CatalogOptions::default())
            .await
            .expect("migrates over the Python tables");
        let stats = catalog.stats().await.expect("stats");
        assert_eq!(stats.schema_version, Some(1));
        let rows = expected["entries"].as_array().expect("entries");
        assert_eq!(stats.entries as usize, rows.len());

        for row in rows {
            let key = row["key"].as_str().expect("key");
            let e = catalog.get_entry(key).await.expect("reads").expect(key);
            assert_eq!(e.id, row["id"].as_str().expect("id"));
            assert_eq!(e.id, entry_id(key), "{key}: the same id in both ports");
            assert_eq!(e.content_hash, row["content_hash"].as_str().expect("hash"));
            assert_eq!(e.storage_uri.as_deref(), row["storage_uri"].as_str());
            assert_eq!(
                i64::from(e.byte_size),
                row["byte_size"].as_i64().expect("size")
            );
            assert_eq!(e.metadata, row["metadata"], "{key}");
            let secs = |t: Option<SystemTime>| {
                t.map(|t| t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs())
            };
            assert_eq!(secs(e.expires_at), row["expires_at"].as_u64(), "{key}");
            assert_eq!(secs(e.updated_at), row["updated_at"].as_u64(), "{key}");
            match &row["inlined_value"] {
                Value::Null => assert_eq!(e.inlined_value, None),
                value => {
                    assert_eq!(e.inlined_value.as_ref(), Some(value), "{key}");
                    assert_eq!(
                        content_hash(value),
                        e.content_hash,
                        "{key}: Rust hashes the value as Python did"
                    );
                }
            }
        }

        // The Python snapshot works with the Rust catalog.
        let snap = &expected["snapshot"];
        let sid = snap["id"].as_str().expect("snapshot id");
        let got = catalog
            .get_snapshot(sid)
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(got.name, snap["name"].as_str().expect("name"));
        assert_eq!(
            i64::from(got.entry_count),
            snap["entry_count"].as_i64().expect("n")
        );
        assert_eq!(
            got.total_bytes,
            snap["total_bytes"].as_i64().expect("bytes")
        );
        assert!(
            catalog
                .get_changed_entries(Some(sid))
                .await
                .expect("changes")
                .is_empty()
        );
        catalog
            .track_entry(&NewEntry::inline("user:123", json!({"name": "changed"})))
            .await
            .expect("updates a Python row");
        let changed = catalog
            .get_changed_entries(Some(sid))
            .await
            .expect("changes");
        assert_eq!(keys(&changed), ["user:123"]);
        let rate = catalog
            .list_entries(&ListQuery::prefix("rate_100%"))
            .await
            .expect("lists");
        assert_eq!(keys(&rate), ["rate_100%"]);
        let cleaned = catalog.cleanup_expired(100).await.expect("cleans");
        assert_eq!(
            (cleaned.deleted, cleaned.remaining),
            (1, 0),
            "session:old expired in 2020"
        );

        // Migration 1 on an empty database gives exactly the Python catalog's schema.
        let fresh = open(&server, "rust", "").await;
        let python_schema =
            schema_of(&catalog.pool().await.expect("pool").get().await.expect("c")).await;
        let rust_schema =
            schema_of(&fresh.pool().await.expect("pool").get().await.expect("c")).await;
        assert!(python_schema.len() > 20, "{python_schema:#?}");
        assert_eq!(python_schema, rust_schema);
    });
}

#[test]
fn a_lazy_catalog_connects_and_migrates_on_first_use() {
    let server = common::plain_server("catalog-lazy");
    server
        .create_database("ltm", server.user())
        .expect("creates the database");
    common::block_on(async {
        let catalog = open(&server, "ltm", "lazy: true\nmin_size: 2\n").await;
        assert!(catalog.pool_if_open().is_none());
        assert_eq!(
            sessions(&server, "ltm"),
            0,
            "no connection before first use"
        );
        let stats = catalog.stats().await.expect("first use");
        assert_eq!(stats.schema_version, Some(1), "migrated on first use");
        assert!(catalog.pool_if_open().is_some());
        assert_eq!(
            sessions(&server, "ltm"),
            2,
            "min_size connections once open"
        );

        // Nobody listens on this port: a lazy catalog still starts, its first use fails.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("addr").port()
        };
        let yaml = format!(
            "connection_string: \"host=127.0.0.1 port={port} user=tea password=pw-not-shown dbname=ltm sslmode=disable connect_timeout=2\"\nlazy: true\n"
        );
        let lazy = PostgresCatalog::from_yaml(&yaml, "t.yaml", Arc::new(MapEnv::new()))
            .await
            .expect("a lazy catalog does not connect");
        let err = lazy.get_entry("k").await.expect_err("no server");
        assert_eq!(err.kind(), CatalogErrorKind::Connect, "{err}");
        assert_eq!(err.class(), ErrorClass::Unreachable, "{err}");
        for shown in [err.to_string(), format!("{err:?}"), format!("{lazy:?}")] {
            assert!(!shown.contains("pw-not-shown"), "{shown}");
        }
    });
}

#[test]
fn failures_are_classed_and_never_show_the_password() {
    let server = common::plain_server("catalog-errors");
    server
        .create_database("ltm", server.user())
        .expect("creates the database");
    common::block_on(async {
        let wrong = "wrong-pass-XYZ";
        let err = PostgresCatalog::from_yaml(
            &yaml(&server, "ltm", wrong, ""),
            "t.yaml",
            Arc::new(MapEnv::new()),
        )
        .await
        .expect_err("wrong password");
        assert_eq!(err.kind(), CatalogErrorKind::Connect, "{err}");
        assert_eq!(err.class(), ErrorClass::AuthFailed, "{err}");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(wrong), "{shown}");
            assert!(!shown.contains(server.password()), "{shown}");
        }

        let err = PostgresCatalog::from_yaml(
            "connection_string: \"host=h\"\nlazy: maybe\n",
            "t.yaml",
            Arc::new(MapEnv::new()),
        )
        .await
        .expect_err("bad YAML value");
        assert_eq!(err.kind(), CatalogErrorKind::Config);
        assert_eq!(err.class(), ErrorClass::Config);
        assert!(err.to_string().contains("lazy"), "{err}");

        // Without auto_migrate the schema is left alone until migrate() is asked for.
        let catalog = open(&server, "ltm", "auto_migrate: false\n").await;
        let err = catalog.get_entry("k").await.expect_err("no tables yet");
        assert_eq!(err.kind(), CatalogErrorKind::Database);
        assert_eq!(err.sqlstate(), Some("42P01"), "{err}");
        let report = catalog.migrate().await.expect("migrates");
        assert_eq!((report.from, report.to, report.applied), (0, 1, vec![1]));
        assert_eq!(catalog.get_entry("k").await.expect("reads"), None);
    });
}

/// Asserts that `err` is the catalog's error for a column it cannot read: kind `schema`, naming
/// the query, the column, the type expected and the one the server sent.
fn assert_unreadable(
    err: &tea_pgcloud::catalog::CatalogError,
    query: &str,
    column: &str,
    expected: &str,
    got: &str,
) {
    assert_eq!(err.kind(), CatalogErrorKind::Schema, "{err}");
    let message = err.message();
    assert!(message.contains(&format!("query \"{query}\"")), "{err}");
    assert!(message.contains(&format!("\"{column}\"")), "{err}");
    assert!(message.contains(&format!("expected {expected}")), "{err}");
    assert!(message.contains(&format!("got {got}")), "{err}");
}

#[test]
fn columns_the_catalog_cannot_read_are_errors_that_name_query_column_and_types() {
    let server = common::plain_server("catalog-types");
    server
        .create_database("ltm", server.user())
        .expect("creates the database");
    let alter = |sql: &str| {
        server
            .admin_sql(&format!("\\connect ltm\n{sql}"))
            .expect("alters the catalog's tables");
    };
    common::block_on(async {
        let catalog = open(&server, "ltm", "").await;
        catalog
            .track_entry(&NewEntry::inline("k1", json!({"a": 1})))
            .await
            .expect("tracks");
        let snapshot = catalog.create_snapshot("s1").await.expect("a snapshot");
        catalog
            .track_entry(&NewEntry::inline("k2", json!(2)))
            .await
            .expect("tracks a change since the snapshot");

        // An entry column of another type: every path that reads entries.
        alter("ALTER TABLE ltm_entries ALTER COLUMN byte_size TYPE text USING byte_size::text");
        let err = catalog
            .get_entry("k1")
            .await
            .expect_err("byte_size is text");
        assert_unreadable(&err, "get entry", "byte_size", "int4", "text");
        let err = catalog.retrieve_batch(&["k1"]).await.expect_err("text");
        assert_unreadable(&err, "retrieve batch", "byte_size", "int4", "text");
        let err = catalog
            .list_entries(&ListQuery::default())
            .await
            .expect_err("text");
        assert_unreadable(&err, "list entries", "byte_size", "int4", "text");
        let err = catalog.get_changed_entries(None).await.expect_err("text");
        assert_unreadable(&err, "changed entries", "byte_size", "int4", "text");
        let err = catalog
            .get_changed_entries(Some(&snapshot.id))
            .await
            .expect_err("text");
        assert_unreadable(&err, "changed entries", "byte_size", "int4", "text");
        alter(
            "ALTER TABLE ltm_entries ALTER COLUMN byte_size TYPE integer USING byte_size::integer",
        );
        assert!(
            catalog
                .get_entry("k1")
                .await
                .expect("reads again")
                .is_some()
        );

        // NULL where the schema says NOT NULL.
        alter(
            "ALTER TABLE ltm_entries ALTER COLUMN content_hash DROP NOT NULL;\n\
             UPDATE ltm_entries SET content_hash = NULL",
        );
        let err = catalog.get_entry("k1").await.expect_err("a NULL hash");
        assert_unreadable(&err, "get entry", "content_hash", "text", "NULL");
        alter("UPDATE ltm_entries SET content_hash = 'sha256:00'");

        // JSON text that does not parse.
        alter(
            "ALTER TABLE ltm_entries ALTER COLUMN inlined_value TYPE text USING inlined_value::text;\n\
             UPDATE ltm_entries SET inlined_value = '{\"unterminated'",
        );
        let err = catalog.get_entry("k1").await.expect_err("not JSON");
        assert_eq!(err.kind(), CatalogErrorKind::Schema, "{err}");
        assert!(err.message().contains("query \"get entry\""), "{err}");
        assert!(err.message().contains("\"inlined_value\""), "{err}");
        assert!(err.message().contains("JSON"), "{err}");

        // Snapshot columns.
        alter("ALTER TABLE ltm_snapshots ALTER COLUMN entry_count TYPE bigint");
        let err = catalog
            .get_snapshot(&snapshot.id)
            .await
            .expect_err("a bigint count");
        assert_unreadable(&err, "get snapshot", "entry_count", "int4", "int8");
        let err = catalog
            .create_snapshot("s2")
            .await
            .expect_err("a bigint count");
        assert_unreadable(&err, "create snapshot", "entry_count", "int4", "int8");
        let count = server
            .admin_sql("\\connect ltm\nSELECT count(*) FROM ltm_snapshots")
            .expect("counts");
        assert_eq!(
            count, "1",
            "a snapshot whose row cannot be read is rolled back"
        );

        // The schema version: stats, the version read itself, migrate, and a new catalog's
        // auto-migration.
        alter("ALTER TABLE ltm_schema_version ALTER COLUMN version TYPE bigint");
        let err = catalog.stats().await.expect_err("a bigint version");
        assert_unreadable(&err, "schema version", "version", "int4", "int8");
        {
            let pool = catalog.pool().await.expect("the pool");
            let client = pool.get().await.expect("a connection");
            let err = tea_pgcloud::catalog::schema::current_version(&client)
                .await
                .expect_err("a bigint version");
            assert_unreadable(&err, "schema version", "version", "int4", "int8");
        }
        let err = catalog.migrate().await.expect_err("a bigint version");
        assert_unreadable(&err, "schema version", "version", "int4", "int8");
        let err = PostgresCatalog::from_yaml(
            &yaml(&server, "ltm", server.password(), ""),
            "test.yaml",
            Arc::new(MapEnv::new()),
        )
        .await
        .expect_err("auto-migration reads the version");
        assert_unreadable(&err, "schema version", "version", "int4", "int8");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(server.password()), "{shown}");
        }
    });
}

#[test]
fn a_server_error_message_is_quoted_at_bounded_length() {
    let server = common::plain_server("catalog-server-text");
    server
        .create_database("ltm", server.user())
        .expect("creates the database");
    common::block_on(async {
        let catalog = open(&server, "ltm", "").await;
        // A server error message is the server's to size: the catalog's is bounded.
        server
            .admin_sql(
                "\\connect ltm\n\
                 CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
                 $$BEGIN RAISE EXCEPTION '%', repeat('x', 100000); END$$;\n\
                 CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON ltm_entries \
                 FOR EACH ROW EXECUTE FUNCTION refuse()",
            )
            .expect("a trigger that refuses at length");
        let err = catalog
            .track_entry(&NewEntry::inline("k", json!(1)))
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), CatalogErrorKind::Database, "{err}");
        assert_eq!(err.sqlstate(), Some("P0001"), "{err}");
        assert!(err.message().contains("xxxx..."), "{err}");
        assert!(err.message().len() < 1000, "{} bytes", err.message().len());
    });
}
