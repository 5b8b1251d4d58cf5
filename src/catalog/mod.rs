//! TEA's long-term-memory catalog on PostgreSQL: [`PostgresCatalog`].
//!
//! Same schema and behaviour as TEA's Python `PostgresCatalog`, so that both ports can share
//! one database: entry ids are `sha256(key)` ([`entry_id`]), content hashes are Python's
//! ([`content_hash`]), and the tables are the Python catalog's ([`schema`]). Where the Python
//! catalog has known defects this port does better: list prefixes are escaped for `LIKE`,
//! non-atomic batches use a savepoint per entry, the pool is built per plan (credentials are
//! resolved per connection, so a rotated password does not leak a pool), and the schema is
//! versioned.
//!
//! Values go through JSONB, which keeps numbers as PostgreSQL `numeric`: a float with an
//! integral value written in exponent form (`1e16`) reads back as an integer and then hashes
//! differently. That holds for the Python catalog alike; the stored `content_hash` is the one
//! computed before the write.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tea_pgcloud::catalog::CatalogError> {
//! use std::sync::Arc;
//! use serde_json::json;
//! use tea_pgcloud::catalog::{ListQuery, NewEntry, PostgresCatalog};
//! use tea_pgcloud::env::ProcessEnv;
//! let yaml = std::fs::read_to_string("agent.yaml").unwrap_or_default();
//! let catalog = PostgresCatalog::from_yaml(&yaml, "agent.yaml", Arc::new(ProcessEnv)).await?;
//! let tracked = catalog
//!     .track_entry(&NewEntry::inline("user:123", json!({"name": "Ada"})))
//!     .await?;
//! assert!(tracked.created);
//! let recent = catalog.list_entries(&ListQuery::prefix("user:")).await?;
//! # let _ = recent;
//! catalog.close();
//! # Ok(()) }
//! ```

mod error;
mod hash;
mod read;
pub mod schema;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use tokio_postgres::types::ToSql;

use crate::config::{CatalogConfig, PoolConfig};
use crate::error::ErrorClass;
use crate::plan::ConnectPlan;
use crate::pool::Pool;
use read::QueryRow;

pub use error::{CatalogError, CatalogErrorKind};
pub use hash::{CONTENT_HASH_PREFIX, content_hash, entry_id, python_float_repr, python_json_dumps};
pub use schema::MigrationReport;

/// How many entries [`ListQuery`] returns when no limit is set (the Python default).
pub const DEFAULT_LIST_LIMIT: i64 = 100;

pub use crate::env::SharedEnv;

/// What the catalog does at start, from the `pool` block (`auto_migrate`, `lazy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogOptions {
    /// Create or upgrade the schema before the first operation (default true).
    pub auto_migrate: bool,
    /// Open the pool and migrate on first use instead of at start (default false).
    pub lazy: bool,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        Self::from_config(&PoolConfig::default())
    }
}

impl CatalogOptions {
    /// The options a catalog's `pool` block asks for.
    pub fn from_config(config: &PoolConfig) -> Self {
        Self {
            auto_migrate: config.auto_migrate,
            lazy: config.lazy,
        }
    }
}

/// An entry to track (insert or update by key).
#[derive(Clone, PartialEq)]
pub struct NewEntry {
    /// The entry's key (at most 1024 characters, as the schema says).
    pub key: String,
    /// `sha256:...` of the value ([`content_hash`]).
    pub content_hash: String,
    /// Where the value is stored when it is not inlined (`gs://...`, `s3://...`).
    pub storage_uri: Option<String>,
    /// The value's size in bytes.
    pub byte_size: i32,
    /// The value itself, for small values.
    pub inlined_value: Option<Value>,
    /// Free-form metadata, filtered on with [`ListQuery::metadata`].
    pub metadata: Map<String, Value>,
    /// When the entry expires ([`PostgresCatalog::cleanup_expired`]).
    pub expires_at: Option<SystemTime>,
}

impl fmt::Debug for NewEntry {
    // Values and metadata are user data: show their size, not their content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEntry")
            .field("key", &self.key)
            .field("content_hash", &self.content_hash)
            .field("storage_uri", &self.storage_uri)
            .field("byte_size", &self.byte_size)
            .field("inlined", &self.inlined_value.is_some())
            .field("metadata_keys", &self.metadata.len())
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl NewEntry {
    /// An entry whose value is stored inline: its hash is [`content_hash`] of the value and its
    /// size the length of the text hashed (saturating at `i32::MAX`).
    pub fn inline(key: impl Into<String>, value: Value) -> Self {
        let size = python_json_dumps(&value).len();
        Self {
            key: key.into(),
            content_hash: content_hash(&value),
            storage_uri: None,
            byte_size: i32::try_from(size).unwrap_or(i32::MAX),
            inlined_value: Some(value),
            metadata: Map::new(),
            expires_at: None,
        }
    }

    /// An entry whose value is stored elsewhere, at `storage_uri`.
    pub fn stored(
        key: impl Into<String>,
        content_hash: impl Into<String>,
        storage_uri: impl Into<String>,
        byte_size: i32,
    ) -> Self {
        Self {
            key: key.into(),
            content_hash: content_hash.into(),
            storage_uri: Some(storage_uri.into()),
            byte_size,
            inlined_value: None,
            metadata: Map::new(),
            expires_at: None,
        }
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the expiry.
    pub fn with_expiry(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }
}

/// A tracked entry as stored.
#[derive(Clone, PartialEq)]
pub struct Entry {
    /// `sha256(key)` ([`entry_id`]).
    pub id: String,
    /// The key.
    pub key: String,
    /// `sha256:...` of the value.
    pub content_hash: String,
    /// Where the value is stored when not inlined.
    pub storage_uri: Option<String>,
    /// The value's size in bytes.
    pub byte_size: i32,
    /// The inlined value.
    pub inlined_value: Option<Value>,
    /// The metadata (a JSON object).
    pub metadata: Value,
    /// When it expires.
    pub expires_at: Option<SystemTime>,
    /// When it was first tracked.
    pub created_at: Option<SystemTime>,
    /// When it was last tracked.
    pub updated_at: Option<SystemTime>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("content_hash", &self.content_hash)
            .field("storage_uri", &self.storage_uri)
            .field("byte_size", &self.byte_size)
            .field("inlined", &self.inlined_value.is_some())
            .field("expires_at", &self.expires_at)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// What [`PostgresCatalog::track_entry`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// The entry's id.
    pub entry_id: String,
    /// Whether the entry was new (`false`: an existing entry was updated).
    pub created: bool,
}

/// Which entries [`PostgresCatalog::list_entries`] returns: newest first (by `updated_at`).
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Keys starting with this text, taken literally (`%`, `_` and `\` match only themselves).
    pub prefix: Option<String>,
    /// Entries whose metadata contains this object (`metadata @> filter`).
    pub metadata: Option<Map<String, Value>>,
    /// At most this many entries (default [`DEFAULT_LIST_LIMIT`]).
    pub limit: i64,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            prefix: None,
            metadata: None,
            limit: DEFAULT_LIST_LIMIT,
        }
    }
}

impl ListQuery {
    /// Entries whose key starts with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: Some(prefix.into()),
            ..Self::default()
        }
    }

    /// Also requires the metadata to contain `filter`.
    pub fn with_metadata(mut self, filter: Map<String, Value>) -> Self {
        self.metadata = Some(filter);
        self
    }

    /// Sets the limit.
    pub fn with_limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }
}

/// A snapshot: the content hash of every entry at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its id (a UUID).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Entries recorded.
    pub entry_count: i32,
    /// Their total `byte_size`.
    pub total_bytes: i64,
    /// When it was taken.
    pub created_at: Option<SystemTime>,
}

/// The outcome of one entry of [`PostgresCatalog::store_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Stored (and committed); `created` as in [`Tracked`].
    Stored {
        /// Whether the entry was new.
        created: bool,
    },
    /// This entry failed.
    Failed(CatalogError),
    /// Atomic batch: not stored because another entry failed (rolled back, or never tried).
    RolledBack,
}

/// One entry's result in a [`BatchReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// The entry's key.
    pub key: String,
    /// What happened to it.
    pub outcome: BatchOutcome,
}

/// What [`PostgresCatalog::store_batch`] did, entry by entry, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// Per-entry results.
    pub items: Vec<BatchItem>,
}

impl BatchReport {
    /// Entries stored.
    pub fn stored_count(&self) -> usize {
        self.items
            .iter()
            .filter(|i| matches!(i.outcome, BatchOutcome::Stored { .. }))
            .count()
    }

    /// Entries that failed themselves (not counting those rolled back with them).
    pub fn failed_count(&self) -> usize {
        self.items
            .iter()
            .filter(|i| matches!(i.outcome, BatchOutcome::Failed(_)))
            .count()
    }

    /// Whether every entry was stored.
    pub fn success(&self) -> bool {
        self.stored_count() == self.items.len()
    }
}

/// What [`PostgresCatalog::cleanup_expired`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cleanup {
    /// Entries deleted by this call (at most the batch limit).
    pub deleted: u64,
    /// Expired entries left for later calls.
    pub remaining: u64,
}

/// Totals of [`PostgresCatalog::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogStats {
    /// Entries.
    pub entries: i64,
    /// Their total `byte_size`.
    pub total_bytes: i64,
    /// Snapshots.
    pub snapshots: i64,
    /// The recorded schema version (`None`: never migrated by this crate).
    pub schema_version: Option<i32>,
}

/// Where the pool comes from.
enum PoolSource {
    /// Built from a plan on first use (or at start when not lazy).
    Plan(Box<ConnectPlan>, SharedEnv),
    /// Given by the caller.
    Given(Pool),
}

struct Inner {
    source: PoolSource,
    ready: OnceCell<Pool>,
    options: CatalogOptions,
    closed: AtomicBool,
}

/// TEA's LTM catalog on a pool of this crate. Cheap to clone: clones share the pool.
///
/// Every operation takes a connection from the pool for its duration; a lazy catalog builds
/// the pool (and migrates, with `auto_migrate`) on its first operation.
#[derive(Clone)]
pub struct PostgresCatalog {
    inner: Arc<Inner>,
}

impl fmt::Debug for PostgresCatalog {
    // The plan's and the pool's Debug never show a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("PostgresCatalog");
        if let PoolSource::Plan(plan, _) = &self.inner.source {
            d.field("plan", plan);
        }
        d.field("pool", &self.inner.ready.get())
            .field("options", &self.inner.options)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// The columns of an [`Entry`], in the order [`entry_from_row`] reads them (table alias `e`).
const ENTRY_COLUMNS: &str = "e.id, e.key, e.content_hash, e.storage_uri, e.byte_size, \
     e.inlined_value::text, e.metadata::text, e.expires_at, e.created_at, e.updated_at";

/// The upsert of [`PostgresCatalog::track_entry`] and [`PostgresCatalog::store_batch`]. JSON
/// goes over the wire as text (`$6`, `$7`) and is cast by the server. `xmax = 0` holds exactly
/// for a row this statement inserted (an updated row version carries the updating
/// transaction's id), so `created` is decided atomically with the write.
const UPSERT: &str = "INSERT INTO ltm_entries AS e (
        id, key, content_hash, storage_uri, byte_size,
        inlined_value, metadata, expires_at, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8,
        clock_timestamp(), clock_timestamp())
    ON CONFLICT (id) DO UPDATE SET
        content_hash = EXCLUDED.content_hash,
        storage_uri = EXCLUDED.storage_uri,
        byte_size = EXCLUDED.byte_size,
        inlined_value = EXCLUDED.inlined_value,
        metadata = EXCLUDED.metadata,
        expires_at = EXCLUDED.expires_at,
        updated_at = EXCLUDED.updated_at
    RETURNING (e.xmax = 0) AS created";

impl PostgresCatalog {
    /// A catalog for `config`: builds the plan, then (unless `pool.lazy`) the pool, and runs
    /// the migrations when `pool.auto_migrate`.
    pub async fn connect(config: &CatalogConfig, env: SharedEnv) -> Result<Self, CatalogError> {
        let plan = crate::provider::plan(config, env.as_ref())?;
        let options = CatalogOptions::from_config(&config.pool);
        Self::start(PoolSource::Plan(Box::new(plan), env), options).await
    }

    /// [`PostgresCatalog::connect`] for a YAML text (a whole agent file or a bare catalog
    /// mapping); `file` names it in error messages.
    pub async fn from_yaml(text: &str, file: &str, env: SharedEnv) -> Result<Self, CatalogError> {
        let config = crate::config::load_str(text, file, env.as_ref())?;
        Self::connect(&config, env).await
    }

    /// A catalog on a pool built by the caller (tests, a pool with custom token sources).
    /// Unless `options.lazy`, migrates now when `options.auto_migrate`.
    /// [`PostgresCatalog::close`] closes that pool.
    pub async fn from_pool(pool: Pool, options: CatalogOptions) -> Result<Self, CatalogError> {
        Self::start(PoolSource::Given(pool), options).await
    }

    async fn start(source: PoolSource, options: CatalogOptions) -> Result<Self, CatalogError> {
        let catalog = Self {
            inner: Arc::new(Inner {
                source,
                ready: OnceCell::new(),
                options,
                closed: AtomicBool::new(false),
            }),
        };
        if !options.lazy {
            catalog.pool().await?;
        }
        Ok(catalog)
    }

    /// The pool, building it and migrating first if this is the first use.
    pub async fn pool(&self) -> Result<&Pool, CatalogError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        self.inner
            .ready
            .get_or_try_init(|| async {
                let pool = match &self.inner.source {
                    PoolSource::Plan(plan, env) => {
                        build_pool(plan.as_ref().clone(), Arc::clone(env)).await?
                    }
                    PoolSource::Given(pool) => pool.clone(),
                };
                if self.inner.options.auto_migrate {
                    let mut client = pool.get().await?;
                    schema::migrate(&mut client).await?;
                }
                Ok(pool)
            })
            .await
    }

    /// The pool if it has been built (a lazy catalog before its first use has none).
    pub fn pool_if_open(&self) -> Option<&Pool> {
        self.inner.ready.get()
    }

    /// The options in effect.
    pub fn options(&self) -> CatalogOptions {
        self.inner.options
    }

    /// Brings the schema to the newest version (also when `auto_migrate` is off).
    pub async fn migrate(&self) -> Result<MigrationReport, CatalogError> {
        let mut client = self.pool().await?.get().await?;
        schema::migrate(&mut client).await
    }

    /// Inserts the entry, or updates the entry with the same key; says which.
    pub async fn track_entry(&self, entry: &NewEntry) -> Result<Tracked, CatalogError> {
        let client = self.pool().await?.get().await?;
        let id = entry_id(&entry.key);
        let params = upsert_params(&id, entry);
        let mut attempt = 1;
        loop {
            match client.query_one(UPSERT, &params.as_slice()).await {
                Ok(row) => {
                    return Ok(Tracked {
                        entry_id: id,
                        created: QueryRow::new("track entry", &row).get(0)?,
                    });
                }
                Err(e) if attempt < UPSERT_ATTEMPTS && is_unique_race(&e) => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The entry with this key.
    pub async fn get_entry(&self, key: &str) -> Result<Option<Entry>, CatalogError> {
        let client = self.pool().await?.get().await?;
        let sql = format!("SELECT {ENTRY_COLUMNS} FROM ltm_entries e WHERE e.id = $1");
        let row = client.query_opt(&sql, &[&entry_id(key)]).await?;
        row.as_ref()
            .map(|row| entry_from_row(&QueryRow::new("get entry", row)))
            .transpose()
    }

    /// Entries by prefix and metadata, newest first.
    pub async fn list_entries(&self, query: &ListQuery) -> Result<Vec<Entry>, CatalogError> {
        if query.limit < 0 {
            return Err(CatalogError::invalid(format!(
                "list limit {} is negative",
                query.limit
            )));
        }
        let pattern = query.prefix.as_deref().map(like_prefix);
        let filter = query
            .metadata
            .as_ref()
            .map(|m| Value::Object(m.clone()).to_string());
        let client = self.pool().await?.get().await?;
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM ltm_entries e
             WHERE ($1::text IS NULL OR e.key LIKE $1::text ESCAPE '\\')
               AND ($2::text IS NULL OR e.metadata @> $2::text::jsonb)
             ORDER BY e.updated_at DESC NULLS LAST, e.id
             LIMIT $3"
        );
        let rows = client
            .query(&sql, &[&pattern, &filter, &query.limit])
            .await?;
        rows.iter()
            .map(|row| entry_from_row(&QueryRow::new("list entries", row)))
            .collect()
    }

    /// Deletes the entry with this key; whether there was one.
    pub async fn delete_entry(&self, key: &str) -> Result<bool, CatalogError> {
        let client = self.pool().await?.get().await?;
        let n = client
            .execute("DELETE FROM ltm_entries WHERE id = $1", &[&entry_id(key)])
            .await?;
        Ok(n > 0)
    }

    /// Records every entry's content hash under a new snapshot, with the count and total size,
    /// consistently (one repeatable-read transaction).
    pub async fn create_snapshot(&self, name: &str) -> Result<Snapshot, CatalogError> {
        let id = new_uuid()?;
        let mut client = self.pool().await?.get().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let row = tx
            .query_one(
                "INSERT INTO ltm_snapshots (id, name, entry_count, total_bytes, created_at)
                 SELECT $1, $2, count(*)::int, COALESCE(sum(byte_size), 0)::bigint, now()
                 FROM ltm_entries
                 RETURNING id, name, entry_count, total_bytes, created_at",
                &[&id, &name],
            )
            .await?;
        // Read before committing: a snapshot whose row cannot be read is rolled back.
        let snapshot = snapshot_from_row(&QueryRow::new("create snapshot", &row))?;
        tx.execute(
            "INSERT INTO ltm_snapshot_entries (snapshot_id, entry_id, content_hash)
             SELECT $1, id, content_hash FROM ltm_entries",
            &[&id],
        )
        .await?;
        tx.commit().await?;
        Ok(snapshot)
    }

    /// The snapshot with this id.
    pub async fn get_snapshot(&self, id: &str) -> Result<Option<Snapshot>, CatalogError> {
        let client = self.pool().await?.get().await?;
        let row = client
            .query_opt(
                "SELECT id, name, entry_count, total_bytes, created_at
                 FROM ltm_snapshots WHERE id = $1",
                &[&id],
            )
            .await?;
        row.as_ref()
            .map(|row| snapshot_from_row(&QueryRow::new("get snapshot", row)))
            .transpose()
    }

    /// Entries whose content hash differs from the one the snapshot recorded, or that the
    /// snapshot does not have (new since); every entry when `since` is `None`. Entries deleted
    /// since are not reported (as in the Python catalog). Unlike the Python catalog, a
    /// snapshot that does not exist is an error ([`CatalogErrorKind::NotFound`]), not "every
    /// entry changed".
    pub async fn get_changed_entries(
        &self,
        since: Option<&str>,
    ) -> Result<Vec<Entry>, CatalogError> {
        let client = self.pool().await?.get().await?;
        let rows = match since {
            None => {
                let sql = format!(
                    "SELECT {ENTRY_COLUMNS} FROM ltm_entries e
                     ORDER BY e.updated_at DESC NULLS LAST, e.id"
                );
                client.query(&sql, &[]).await?
            }
            Some(snapshot) => {
                let exists = client
                    .query_opt("SELECT 1 FROM ltm_snapshots WHERE id = $1", &[&snapshot])
                    .await?;
                if exists.is_none() {
                    return Err(CatalogError::new(
                        CatalogErrorKind::NotFound,
                        ErrorClass::Other,
                        format!("no snapshot with id {snapshot:?}"),
                    ));
                }
                let sql = format!(
                    "SELECT {ENTRY_COLUMNS} FROM ltm_entries e
                     LEFT JOIN ltm_snapshot_entries se
                       ON se.entry_id = e.id AND se.snapshot_id = $1
                     WHERE se.entry_id IS NULL OR se.content_hash <> e.content_hash
                     ORDER BY e.updated_at DESC NULLS LAST, e.id"
                );
                client.query(&sql, &[&snapshot]).await?
            }
        };
        rows.iter()
            .map(|row| entry_from_row(&QueryRow::new("changed entries", row)))
            .collect()
    }

    /// Tracks many entries in one transaction, each under its own savepoint.
    ///
    /// `atomic`: all or nothing; on the first failure the transaction is rolled back and every
    /// other entry is reported [`BatchOutcome::RolledBack`]. Not atomic: a failing entry is
    /// rolled back to its savepoint alone and the rest are committed. (The savepoint also lets
    /// an entry that lost an insert race to a concurrent writer be retried as an update.)
    /// `Err` only when the batch as a whole could not run (no connection, commit failed).
    pub async fn store_batch(
        &self,
        entries: &[NewEntry],
        atomic: bool,
    ) -> Result<BatchReport, CatalogError> {
        if entries.is_empty() {
            return Ok(BatchReport { items: Vec::new() });
        }
        let mut client = self.pool().await?.get().await?;
        let mut tx = client.transaction().await?;
        let statement = tx.prepare(UPSERT).await?;
        let mut outcomes: Vec<BatchOutcome> = Vec::with_capacity(entries.len());
        let mut failed = false;
        for entry in entries {
            let id = entry_id(&entry.key);
            let params = upsert_params(&id, entry);
            match upsert_under_savepoint(&mut tx, &statement, &params).await? {
                Ok(created) => outcomes.push(BatchOutcome::Stored { created }),
                Err(e) => {
                    outcomes.push(BatchOutcome::Failed(e));
                    if atomic {
                        failed = true;
                        break;
                    }
                }
            }
        }
        if failed {
            tx.rollback().await?;
            for o in &mut outcomes {
                if matches!(o, BatchOutcome::Stored { .. }) {
                    *o = BatchOutcome::RolledBack;
                }
            }
            outcomes.resize(entries.len(), BatchOutcome::RolledBack);
        } else {
            tx.commit().await?;
        }
        let items = entries
            .iter()
            .zip(outcomes)
            .map(|(e, outcome)| BatchItem {
                key: e.key.clone(),
                outcome,
            })
            .collect();
        Ok(BatchReport { items })
    }

    /// The entries with these keys, in the order asked, `None` for a key with no entry.
    pub async fn retrieve_batch<S: AsRef<str>>(
        &self,
        keys: &[S],
    ) -> Result<Vec<(String, Option<Entry>)>, CatalogError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = keys.iter().map(|k| entry_id(k.as_ref())).collect();
        let client = self.pool().await?.get().await?;
        let sql = format!("SELECT {ENTRY_COLUMNS} FROM ltm_entries e WHERE e.id = ANY($1)");
        let rows = client.query(&sql, &[&ids]).await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let entry = entry_from_row(&QueryRow::new("retrieve batch", row))?;
            found.insert(entry.id.clone(), entry);
        }
        Ok(keys
            .iter()
            .zip(&ids)
            .map(|(k, id)| (k.as_ref().to_string(), found.get(id).cloned()))
            .collect())
    }

    /// Deletes at most `batch_limit` expired entries (oldest expiry first; rows another
    /// session is deleting are skipped) and says how many expired entries remain.
    pub async fn cleanup_expired(&self, batch_limit: i64) -> Result<Cleanup, CatalogError> {
        if batch_limit <= 0 {
            return Err(CatalogError::invalid(format!(
                "cleanup batch limit {batch_limit} must be positive"
            )));
        }
        let client = self.pool().await?.get().await?;
        // One statement, one snapshot: `expired` counts the rows before this delete.
        let row = client
            .query_one(
                "WITH doomed AS (
                     SELECT id FROM ltm_entries
                     WHERE expires_at IS NOT NULL AND expires_at < now()
                     ORDER BY expires_at
                     LIMIT $1
                     FOR UPDATE SKIP LOCKED
                 ), gone AS (
                     DELETE FROM ltm_entries e USING doomed d WHERE e.id = d.id RETURNING 1
                 )
                 SELECT (SELECT count(*) FROM gone) AS deleted,
                        (SELECT count(*) FROM ltm_entries
                         WHERE expires_at IS NOT NULL AND expires_at < now()) AS expired",
                &[&batch_limit],
            )
            .await?;
        let row = QueryRow::new("cleanup expired", &row);
        let deleted: i64 = row.get(0)?;
        let expired: i64 = row.get(1)?;
        // Counts from the server: a negative one is taken as 0, and the subtraction cannot
        // overflow whatever the server sent.
        Ok(Cleanup {
            deleted: deleted.max(0).unsigned_abs(),
            remaining: expired.saturating_sub(deleted).max(0).unsigned_abs(),
        })
    }

    /// Entry count, total bytes, snapshot count and schema version.
    pub async fn stats(&self) -> Result<CatalogStats, CatalogError> {
        let client = self.pool().await?.get().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM ltm_entries) AS entries,
                        (SELECT COALESCE(sum(byte_size), 0)::bigint FROM ltm_entries)
                            AS total_bytes,
                        (SELECT count(*) FROM ltm_snapshots) AS snapshots",
                &[],
            )
            .await?;
        let row = QueryRow::new("stats", &row);
        Ok(CatalogStats {
            entries: row.get(0)?,
            total_bytes: row.get(1)?,
            snapshots: row.get(2)?,
            schema_version: schema::current_version(&client).await?,
        })
    }

    /// Closes the catalog: its pool is closed (idle connections dropped) and every later
    /// operation fails with [`CatalogErrorKind::Closed`]. Clones share the state.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        if let Some(pool) = self.inner.ready.get() {
            pool.close();
        }
    }
}

/// Builds the pool for a plan (its future is `Send`: catalogs are used from spawned tasks).
async fn build_pool(plan: ConnectPlan, env: SharedEnv) -> Result<Pool, CatalogError> {
    Ok(Pool::builder(plan, env).build().await?)
}

/// How often an upsert is tried when it loses an insert race (see [`is_unique_race`]).
const UPSERT_ATTEMPTS: u32 = 5;

/// Whether the upsert lost an insert race: two sessions inserting the same new key at once.
/// `ON CONFLICT (id)` covers only its arbiter index; the table's other unique index (`key`)
/// is checked outside it, so the race shows as
/// - 23505 (unique violation) when the other session's row meets that index first: PostgreSQL
///   raises it after the other session commits instead of updating; or
/// - 40P01 (deadlock detected) when each session's speculative insertion waits for the other's
///   entry in the other index; PostgreSQL aborts one of them.
///
/// Either way the statement, run again (a savepoint rolled back releases what it locked), sees
/// the other session's row and updates it.
fn is_unique_race(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
        || e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
}

/// One upsert of a batch under a savepoint, retried after an insert race. The outer `Err` is a
/// failure of the transaction itself (the batch cannot go on); the inner one is this entry's
/// (an entry whose answer cannot be read is rolled back to its savepoint too).
async fn upsert_under_savepoint(
    tx: &mut tokio_postgres::Transaction<'_>,
    statement: &tokio_postgres::Statement,
    params: &UpsertParams<'_>,
) -> Result<Result<bool, CatalogError>, CatalogError> {
    let mut attempt = 1;
    loop {
        let sp = tx.savepoint("ltm_batch_entry").await?;
        let failure = match sp.query_one(statement, &params.as_slice()).await {
            Ok(row) => match QueryRow::new("batch upsert", &row).get(0) {
                Ok(created) => {
                    sp.commit().await?;
                    return Ok(Ok(created));
                }
                Err(e) => e,
            },
            Err(e) if attempt < UPSERT_ATTEMPTS && is_unique_race(&e) => {
                sp.rollback().await?;
                attempt += 1;
                continue;
            }
            Err(e) => e.into(),
        };
        sp.rollback().await?;
        return Ok(Err(failure));
    }
}

fn closed() -> CatalogError {
    CatalogError::new(
        CatalogErrorKind::Closed,
        ErrorClass::Other,
        "the catalog is closed",
    )
}

/// A `LIKE` pattern matching keys that start with `prefix` literally (escape character `\`).
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A random (version 4) UUID, as Python's `uuid.uuid4()` writes it.
fn new_uuid() -> Result<String, CatalogError> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 16];
    SystemRandom::new().fill(&mut b).map_err(|_| {
        CatalogError::new(
            CatalogErrorKind::Database,
            ErrorClass::Other,
            "no randomness for a snapshot id",
        )
    })?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

fn upsert_params<'a>(id: &'a String, entry: &'a NewEntry) -> UpsertParams<'a> {
    UpsertParams {
        id,
        entry,
        inlined: entry.inlined_value.as_ref().map(Value::to_string),
        metadata: Value::Object(entry.metadata.clone()).to_string(),
    }
}

/// The parameters of [`UPSERT`], with the JSON texts they borrow.
struct UpsertParams<'a> {
    id: &'a String,
    entry: &'a NewEntry,
    inlined: Option<String>,
    metadata: String,
}

impl<'a> UpsertParams<'a> {
    fn as_slice(&'a self) -> [&'a (dyn ToSql + Sync); 8] {
        [
            self.id,
            &self.entry.key,
            &self.entry.content_hash,
            &self.entry.storage_uri,
            &self.entry.byte_size,
            &self.inlined,
            &self.metadata,
            &self.entry.expires_at,
        ]
    }
}

fn entry_from_row(row: &QueryRow<'_>) -> Result<Entry, CatalogError> {
    Ok(Entry {
        id: row.get(0)?,
        key: row.get(1)?,
        content_hash: row.get(2)?,
        storage_uri: row.get(3)?,
        byte_size: row.get(4)?,
        inlined_value: row.json(5)?,
        metadata: row.json(6)?.unwrap_or(Value::Object(Map::new())),
        expires_at: row.get(7)?,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
    })
}

fn snapshot_from_row(row: &QueryRow<'_>) -> Result<Snapshot, CatalogError> {
    Ok(Snapshot {
        id: row.get(0)?,
        name: row.get(1)?,
        entry_count: row.get(2)?,
        total_bytes: row.get(3)?,
        created_at: row.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_prefixes_are_literal() {
        assert_eq!(like_prefix("a%"), "a\\%%");
        assert_eq!(like_prefix("a_b\\c"), "a\\_b\\\\c%");
        assert_eq!(like_prefix(""), "%");
    }

    #[test]
    fn uuids_are_version_4() {
        let id = new_uuid().expect("randomness");
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, new_uuid().expect("randomness"));
    }

    #[test]
    fn debug_of_an_entry_hides_its_value() {
        let e = NewEntry::inline("k", serde_json::json!({"secret": "s3cr3t-value"}));
        let shown = format!("{e:?}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("\"k\""), "{shown}");
    }
}
