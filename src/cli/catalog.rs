//! `tea-pgcloud catalog FILE migrate|stats`: the operator's view of the LTM catalog.

use std::sync::Arc;

use serde_json::json;

use tea_pgcloud::catalog::schema::{self, latest_version};
use tea_pgcloud::catalog::{CatalogError, CatalogErrorKind, CatalogOptions, PostgresCatalog};
use tea_pgcloud::env::{Environment, ProcessEnv};
use tea_pgcloud::error::ErrorClass;
use tea_pgcloud::pool::{Pool, PoolOptions};
use tea_pgcloud::text::Escaped;

/// `connect_timeout` when the configuration sets none: an operator's command should not wait
/// forever on a server that accepts and never answers.
const DEFAULT_TIMEOUT_SECS: u32 = 10;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Create or upgrade the schema (under an advisory lock; safe while agents run).
    Migrate,
    /// Entries, bytes, snapshots and the schema version.
    Stats,
}

async fn open(file: &str) -> Result<PostgresCatalog, CatalogError> {
    let env: Arc<dyn Environment> = Arc::new(ProcessEnv);
    let config = tea_pgcloud::config::load_file(file, env.as_ref())?;
    let mut plan = tea_pgcloud::provider::plan(&config, env.as_ref())?;
    if plan.params.get("connect_timeout").is_none() {
        plan.set_connect_timeout(DEFAULT_TIMEOUT_SECS);
    }
    let pool = Pool::builder(plan, env)
        .options(PoolOptions {
            min_size: 1,
            max_size: 1,
            ..PoolOptions::default()
        })
        .build()
        .await?;
    PostgresCatalog::from_pool(
        pool,
        CatalogOptions {
            auto_migrate: false,
            lazy: false,
        },
    )
    .await
}

/// Runs the action; exit 0 on success, 1 on failure (the error, with its class, on stderr).
pub fn run(file: &str, action: Action, as_json: bool) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async {
        let catalog = open(file).await?;
        let out = match action {
            Action::Migrate => {
                let report = catalog.migrate().await?;
                let text = if report.applied.is_empty() {
                    format!("schema at version {}: nothing to do", report.to)
                } else {
                    format!(
                        "schema migrated from version {} to {} (applied {:?})",
                        report.from, report.to, report.applied
                    )
                };
                (
                    json!({"from": report.from, "to": report.to, "applied": report.applied}),
                    text,
                )
            }
            Action::Stats => {
                let pool = catalog.pool().await?;
                let client = pool.get().await?;
                let Some(version) = schema::current_version(&client).await? else {
                    return Err(CatalogError::new(
                        CatalogErrorKind::Schema,
                        ErrorClass::Config,
                        format!(
                        "no catalog schema in this database: run `tea-pgcloud catalog {file} migrate` (or start an agent with auto_migrate)"
                        ),
                    ));
                };
                drop(client);
                let stats = catalog.stats().await?;
                (
                    json!({
                        "entries": stats.entries,
                        "total_bytes": stats.total_bytes,
                        "snapshots": stats.snapshots,
                        "schema_version": version,
                        "latest_schema_version": latest_version(),
                    }),
                    format!(
                        "entries   {}\nbytes     {}\nsnapshots {}\nschema    version {version} (this build knows up to {})",
                        stats.entries,
                        stats.total_bytes,
                        stats.snapshots,
                        latest_version()
                    ),
                )
            }
        };
        catalog.close();
        Ok::<_, CatalogError>(out)
    });
    match result {
        Ok((value, text)) => {
            if as_json {
                println!("{value}");
            } else {
                println!("{text}");
            }
            0
        }
        Err(e) => {
            eprintln!("{}: {}: {e}", Escaped(file), e.class());
            1
        }
    }
}
