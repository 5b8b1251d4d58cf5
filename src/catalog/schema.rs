//! Versioned migrations of the catalog schema.
//!
//! The version table `ltm_schema_version (version, applied_at, description)` records each
//! migration once. Migrations run in one transaction under a transaction-scoped advisory lock
//! ([`MIGRATION_LOCK_KEY`]), so two processes starting together against a fresh database
//! migrate it once: the second waits for the lock, then finds the work done.
//!
//! Migration 1 is TEA's Python catalog schema, statement for statement, with `IF NOT EXISTS`
//! throughout: a database the Python catalog already set up is adopted as it stands (its rows
//! untouched) and recorded as version 1.

use tokio_postgres::{Client, GenericClient};

use super::CatalogError;
use super::read::QueryRow;

/// The advisory lock key held while migrating (`pg_advisory_xact_lock`): the first eight bytes
/// of `sha256("tea-pgcloud ltm schema")` as a big-endian `i64`. Other tools that migrate the
/// same database can take it too.
pub const MIGRATION_LOCK_KEY: i64 = -3_720_669_561_858_633_321;

/// One schema migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its version; migrations run in ascending order, each once.
    pub version: i32,
    /// What it does, recorded in `ltm_schema_version.description`.
    pub description: &'static str,
    /// The SQL, run as one batch inside the migration transaction.
    pub sql: &'static str,
}

/// Every migration this build knows, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "LTM catalog schema of TEA's Python PostgresCatalog",
    sql: SCHEMA_V1,
}];

/// The newest schema version this build knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The version found (0: no version table or an empty one).
    pub from: i32,
    /// The version now.
    pub to: i32,
    /// The versions applied by this call, in order (empty when there was nothing to do).
    pub applied: Vec<i32>,
}

/// The version table. Created under the lock, so concurrent first runs cannot race on it.
const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS ltm_schema_version (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    description TEXT NOT NULL
)";

/// TEA's Python catalog DDL (`SCHEMA_SQL` of `catalog_postgres.py`), unchanged.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS ltm_entries (
    id VARCHAR(64) PRIMARY KEY,
    key VARCHAR(1024) NOT NULL UNIQUE,
    content_hash VARCHAR(72) NOT NULL,
    storage_uri VARCHAR(2048),
    byte_size INTEGER NOT NULL,
    inlined_value JSONB,
    metadata JSONB NOT NULL DEFAULT '{}',
    expires_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE INDEX IF NOT EXISTS idx_ltm_entries_key ON ltm_entries(key);
CREATE INDEX IF NOT EXISTS idx_ltm_entries_expires ON ltm_entries(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_ltm_entries_metadata ON ltm_entries USING GIN(metadata);
CREATE INDEX IF NOT EXISTS idx_ltm_entries_updated ON ltm_entries(updated_at);

CREATE TABLE IF NOT EXISTS ltm_snapshots (
    id VARCHAR(64) PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    entry_count INTEGER NOT NULL,
    total_bytes BIGINT NOT NULL,
    created_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS ltm_snapshot_entries (
    snapshot_id VARCHAR(64) NOT NULL,
    entry_id VARCHAR(64) NOT NULL,
    content_hash VARCHAR(72) NOT NULL,
    PRIMARY KEY (snapshot_id, entry_id),
    FOREIGN KEY (snapshot_id) REFERENCES ltm_snapshots(id) ON DELETE CASCADE
);
";

/// Brings the schema to [`latest_version`]: idempotent, and safe to run from many processes at
/// once. Fails (and changes nothing) when the database is at a version this build does not
/// know.
pub async fn migrate(client: &mut Client) -> Result<MigrationReport, CatalogError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    tx.batch_execute(VERSION_TABLE).await?;
    let from = recorded_version(&tx).await?;
    let latest = latest_version();
    if from > latest {
        return Err(CatalogError::schema(format!(
            "the database's catalog schema is at version {from}, newer than this build knows \
             ({latest}); upgrade tea-pgcloud"
        )));
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > from) {
        tx.batch_execute(m.sql).await.map_err(|e| {
            CatalogError::from(e).context(&format!("migration {} failed", m.version))
        })?;
        tx.execute(
            "INSERT INTO ltm_schema_version (version, description) VALUES ($1, $2)",
            &[&m.version, &m.description],
        )
        .await?;
        applied.push(m.version);
    }
    tx.commit().await?;
    Ok(MigrationReport {
        from,
        to: from.max(latest),
        applied,
    })
}

/// The recorded schema version: `None` when there is no version table (never migrated by this
/// crate, e.g. a database only TEA's Python catalog has used).
pub async fn current_version(client: &Client) -> Result<Option<i32>, CatalogError> {
    // Two statements: a query naming a missing table fails at planning, whatever its CASE.
    let row = client
        .query_one(
            "SELECT to_regclass('ltm_schema_version') IS NOT NULL AS present",
            &[],
        )
        .await?;
    if !QueryRow::new("schema version table", &row).get::<bool>(0)? {
        return Ok(None);
    }
    Ok(Some(recorded_version(client).await?))
}

/// The highest version in the version table (0 when it is empty), by [`migrate`] (inside its
/// transaction) and [`current_version`] alike.
async fn recorded_version(client: &impl GenericClient) -> Result<i32, CatalogError> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) AS version FROM ltm_schema_version",
            &[],
        )
        .await?;
    QueryRow::new("schema version", &row).get(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_key_is_documented_truthfully() {
        let d = ring::digest::digest(&ring::digest::SHA256, b"tea-pgcloud ltm schema");
        let mut first = [0u8; 8];
        first.copy_from_slice(&d.as_ref()[..8]);
        assert_eq!(i64::from_be_bytes(first), MIGRATION_LOCK_KEY);
    }

    #[test]
    fn versions_ascend_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
        }
        assert_eq!(latest_version(), 1);
    }
}
