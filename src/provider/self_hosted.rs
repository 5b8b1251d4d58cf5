//! Any PostgreSQL server: host, port, database and user as written. The host defaults to
//! `localhost` over TCP (as TEA's Python catalog does), not libpq's default unix socket; the
//! sslmode defaults to libpq's `prefer`.

use super::Target;
use crate::config::{CatalogConfig, Provider};
use crate::plan::{DEFAULT_PORT, PlanKind, Source};
use crate::sslmode::SslMode;

/// The host used when none is written.
pub(super) const DEFAULT_HOST: &str = "localhost";

pub(crate) fn target(config: &CatalogConfig) -> Target {
    // libpq's own default; a self-hosted server may well have no TLS at all.
    let mut target = Target::new(PlanKind::Provider(Provider::SelfHosted), SslMode::Prefer);
    target.set("host", config.host.as_deref().unwrap_or(DEFAULT_HOST));
    target.set("port", config.port.unwrap_or(DEFAULT_PORT).to_string());
    if let Some(db) = &config.database {
        target.set("dbname", db.clone());
    }
    if let Some(user) = &config.user {
        target.set("user", user.clone());
        target.user_source = Source::Literal;
    }
    target
}
